"""Turn the request path into (signature, options, source URL), as imgproxy v4 does."""

from __future__ import annotations

from dataclasses import dataclass, replace

from imgproxy_py.errors import InvalidOptionError, InvalidURLError
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.options.appliers import ParseState, apply_option, apply_preset
from imgproxy_py.options.model import ProcessingOptions, ResizingType
from imgproxy_py.options.presets import parse_presets, split_option, validate_presets
from imgproxy_py.options.source_url import URLRewriter, decode_source, repair_scheme
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
    """Built once per process from settings: presets are parsed and validated here, not per request."""

    def __init__(self, settings: OptionSettings) -> None:
        self._settings = settings
        sep = settings.arguments_separator
        self._sep = sep
        self._presets = parse_presets(settings.presets, separator=sep)
        origins = dict.fromkeys(self._presets, "IMGPROXY_PRESETS")
        file_presets = parse_presets(settings.preset_file, "IMGPROXY_PRESETS_PATH", separator=sep)
        origins.update(dict.fromkeys(file_presets, "IMGPROXY_PRESETS_PATH"))
        self._presets.update(file_presets)  # the file is read after the variable: it wins on a clash
        validate_presets(self._presets, allow_security=settings.allow_security_options, origins=origins)
        self._allowed = settings.allowed_processing_options
        self._rewriter = URLRewriter(settings.url_replacements, settings.base_url)
        self._base = ProcessingOptions(
            auto_rotate=settings.auto_rotate,
            strip_metadata=settings.strip_metadata,
            keep_copyright=settings.keep_copyright,
            strip_color_profile=settings.strip_color_profile,
            enforce_thumbnail=settings.enforce_thumbnail,
            skip_processing=settings.skip_processing_formats,
        )

    @property
    def preset_names(self) -> frozenset[str]:
        return frozenset(self._presets)

    def parse(self, path: str) -> ParsedURL:
        """Parse ``/<options>/.../<source>`` (the part after the signature)."""
        segments = path.lstrip("/").split("/")
        state = ParseState(self._base, self._presets, allow_security=self._settings.allow_security_options)
        if "default" in self._presets:
            apply_preset(state, ["default"])
        if self._settings.only_presets:
            # IMGPROXY_ONLY_PRESETS: the first segment is a list of preset names, whatever it looks like.
            apply_preset(state, segments[0].split(self._sep))
            index = 1
        else:
            index = self._apply_url_options(state, segments)
        source_url, ext = decode_source(segments[index:])
        if self._rewriter.active:
            source_url = self._rewriter.rewrite(source_url)
        po = state.po
        if ext:
            fmt = ImageFormat.from_name(ext)
            if fmt is None:
                raise InvalidURLError(f"unknown output extension {ext!r}")
            po = replace(po, format=fmt)
        return ParsedURL(po, source_url)

    def _apply_url_options(self, state: ParseState, segments: list[str]) -> int:
        """Apply the option segments; return the index of the first source URL segment."""
        sep, allowed = self._sep, self._allowed
        index = 0
        for index, segment in enumerate(segments):  # noqa: B007 - index is used after the loop
            if sep not in segment:
                break
            name, args = split_option(segment, sep)
            if allowed and name not in allowed:  # names as written: an alias is a different name
                raise InvalidOptionError(f"processing option {name!r} is not allowed")
            apply_option(state, name, args)
        else:
            raise InvalidURLError("source URL is missing")
        if index == 0 and segments[0] in _RESIZING_TYPES:
            raise InvalidURLError("the basic URL format is not supported; use processing options")
        return index
