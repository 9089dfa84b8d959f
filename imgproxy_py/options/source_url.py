"""Decoding the source part of the path: ``plain/<url>@<ext>`` or base64url chunks ``.<ext>``."""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote

from imgproxy_py.errors import InvalidURLError

_SCHEME_ONE_SLASH = re.compile(r"^([a-z][a-z0-9+.-]*):/(?!/)", re.IGNORECASE)
_BASE64_CHARS = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def decode_source(segments: list[str]) -> tuple[str, str]:
    """Return ``(source_url, extension)`` from the path segments after the options.

    ``segments`` are the raw (still percent-encoded) path segments starting at ``plain``
    or at the first base64 chunk. The extension is ``""`` when none was given.
    """
    if not segments or segments[0] == "":
        raise InvalidURLError("source URL is missing")
    if segments[0] == "plain":
        return _decode_plain("/".join(segments[1:]))
    if segments[0] == "enc":
        raise InvalidURLError("encrypted source URLs are not supported")
    return _decode_base64("".join(segments))


def _decode_plain(raw: str) -> tuple[str, str]:
    url, sep, ext = raw.partition("@")  # an empty extension after "@" means none, as in imgproxy
    if sep and "@" in ext:
        raise InvalidURLError("multiple formats are specified")
    if not url:
        raise InvalidURLError("source URL is missing")
    if "%" in url:
        if _BAD_ESCAPE.search(url):  # Go's url.PathUnescape refuses these; unquote would keep them
            raise InvalidURLError("invalid percent-encoding in the source URL")
        try:
            url = unquote(url, errors="strict")
        except UnicodeDecodeError:
            raise InvalidURLError("the percent-decoded source URL is not UTF-8") from None
    return url, ext


def repair_scheme(url: str) -> str:
    """Undo CDN/proxy path normalisation: ``https:/host`` → ``https://host``, ``local:/x`` → ``local:///x``."""
    match = _SCHEME_ONE_SLASH.match(url)
    if not match:
        return url
    scheme = match.group(1)
    rest = url[match.end() :]
    if scheme.lower() == "local":
        return f"{scheme}:///{rest}"
    return f"{scheme}://{rest}"


def _decode_base64(joined: str) -> tuple[str, str]:
    encoded, sep, ext = joined.partition(".")  # an empty extension after "." means none
    if sep and "." in ext:
        raise InvalidURLError("multiple formats are specified")
    encoded = encoded.rstrip("=")
    if not encoded or not _BASE64_CHARS.fullmatch(encoded) or len(encoded) % 4 == 1:
        raise InvalidURLError("invalid base64 source URL")
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        url = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidURLError("invalid base64 source URL") from None
    if not url:
        raise InvalidURLError("source URL is missing")
    return url, ext
