"""Decoding the source part of the path: ``plain/<url>@<ext>`` or base64url chunks ``.<ext>``."""

from __future__ import annotations

import base64
import binascii
import functools
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


# --- IMGPROXY_URL_REPLACEMENTS and IMGPROXY_BASE_URL ---------------------------------------

_Part = str | int  # literal text, or the number of a wildcard group


def wildcard_regex(pattern: str) -> re.Pattern[str]:
    """imgproxy's wildcard: anchored at the start (a prefix match), each ``*`` matching ``[^/]*``."""
    return re.compile("^" + re.escape(pattern).replace(r"\*", "([^/]*)"))


_TEMPLATE_NAME = re.compile(r"[A-Za-z0-9_]+")


def _parse_go_template(template: str) -> list[_Part]:
    """Go's Regexp.Expand syntax: ``$1``/``${1}`` a group, ``$$`` a dollar, a malformed ``$`` stays literal.

    A name that is not all digits (``$1x`` is the name ``1x``) refers to no group and expands to
    nothing, as in Go; the wildcard patterns have no named groups.
    """
    parts: list[_Part] = []
    rest = template
    while True:
        before, dollar, rest = rest.partition("$")
        parts.append(before)
        if not dollar:
            break
        if rest.startswith("$"):
            parts.append("$")
            rest = rest[1:]
            continue
        braced = rest.startswith("{")
        match = _TEMPLATE_NAME.match(rest, 1 if braced else 0)
        if match is None or (braced and not rest.startswith("}", match.end())):
            parts.append("$")  # malformed: the dollar is plain text
            continue
        name = match.group()
        rest = rest[match.end() + (1 if braced else 0) :]
        parts.append(int(name) if name.isdigit() else "")
    return [p for p in parts if p != ""]


class URLRewriter:
    """Applies the replacements, then the base URL; built once, as part of the Parser."""

    def __init__(self, replacements: tuple[tuple[str, str], ...], base_url: str) -> None:
        self._rules = [(wildcard_regex(pattern), _parse_go_template(repl)) for pattern, repl in replacements]
        self._base_url = base_url

    @property
    def active(self) -> bool:
        return bool(self._rules or self._base_url)

    def rewrite(self, url: str) -> str:
        for regex, parts in self._rules:
            url = regex.sub(functools.partial(_expand, parts=parts), url, count=1)
        if self._base_url and not url.startswith(self._base_url):
            url = self._base_url + url
        return url


def _expand(match: re.Match[str], parts: list[_Part]) -> str:
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif 0 <= part <= (match.re.groups or 0):
            out.append(match.group(part) or "")
    return "".join(out)
