"""Turn the request path into (signature, options, source URL), as imgproxy v4 does."""

from __future__ import annotations

from dataclasses import dataclass, replace

from imgproxy_py.errors import InvalidURLError
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.options.appliers import ParseState, apply_option, apply_preset
from imgproxy_py.options.model import ProcessingOptions, ResizingType
from imgproxy_py.options.presets import parse_presets, split_option, validate_presets
from imgproxy_py.options.source_url import decode_source, repair_scheme
from imgproxy_py.settings import OptionSettings

_RESIZING_TYPES = {t.value for t in ResizingType}


@dataclass(frozen=True, slots=True)
class ParsedURL:
    options: ProcessingOptions
    source_url: str


def split_signature(raw_path: str, prefix: str = "") -> tuple[str, str]:
    """Split ``/<signature>/<rest>`` (after the configured prefix) into signature and ``/<rest>``.

    CDN and proxy re-normalisation is undone before the signature is checked, so a
    mangled URL still verifies: ``%3A`` in the options part becomes ``:`` again and a
    plain source URL's ``https:/host`` becomes ``https://host``.
    """
    if prefix:
        if not raw_path.startswith(prefix + "/"):
            raise InvalidURLError("path does not start with the configured prefix")
        raw_path = raw_path[len(prefix) :]
    path = raw_path.removeprefix("/")  # one slash only: "//sig/..." has an empty signature
    signature, sep, rest = path.partition("/")
    if not sep or not signature or not rest:
        raise InvalidURLError("path must be /<signature>/<options>/<source>")
    return signature, "/" + _normalise_options_part(rest)


def _normalise_options_part(rest: str) -> str:
    if rest.startswith("plain/"):
        head, sep, tail = "", "plain/", rest[6:]
    else:
        head, sep, tail = rest.partition("/plain/")
    head = head.replace("%3A", ":")
    if sep:
        tail = repair_scheme(tail)
    return head + sep + tail


class Parser:
    """Built once per process: presets are parsed and validated here, not per request."""

    def __init__(self, settings: OptionSettings) -> None:
        self._settings = settings
        self._presets = parse_presets(settings.presets)
        validate_presets(self._presets)
        self._base = ProcessingOptions(auto_rotate=settings.auto_rotate, strip_metadata=settings.strip_metadata)

    @property
    def preset_names(self) -> frozenset[str]:
        return frozenset(self._presets)

    def parse(self, path: str) -> ParsedURL:
        """Parse ``/<options>/.../<source>`` (the part after the signature)."""
        segments = path.lstrip("/").split("/")
        state = ParseState(self._base, self._presets)
        if "default" in self._presets:
            apply_preset(state, ["default"])
        index = 0
        for index, segment in enumerate(segments):  # noqa: B007 - index is used after the loop
            if ":" not in segment:
                break
            name, args = split_option(segment)
            apply_option(state, name, args)
        else:
            raise InvalidURLError("source URL is missing")
        if index == 0 and segments[0] in _RESIZING_TYPES:
            raise InvalidURLError("the basic URL format is not supported; use processing options")
        source_url, ext = decode_source(segments[index:])
        po = state.po
        if ext:
            fmt = ImageFormat.from_name(ext)
            if fmt is None:
                raise InvalidURLError(f"unknown output extension {ext!r}")
            po = replace(po, format=fmt)
        return ParsedURL(po, source_url)
