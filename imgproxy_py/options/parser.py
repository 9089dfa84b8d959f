"""Turn the request path into (signature, options, source URL), as imgproxy v4 does."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from imgproxy_py.errors import ImgproxyError, InvalidOptionError, InvalidURLError
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.options.appliers import ParseState, apply_option, apply_preset
from imgproxy_py.options.model import DEFAULT_OPTIONS, ProcessingOptions, ResizingType, evolve
from imgproxy_py.options.presets import parse_presets, split_option, validate_presets
from imgproxy_py.options.source_url import URLRewriter, decode_source, repair_scheme
from imgproxy_py.settings import OptionSettings

_RESIZING_TYPES = {t.value for t in ResizingType}
_SHORT_NAME = re.compile(r"[A-Za-z0-9]{1,10}")


@dataclass(frozen=True, slots=True)
class ParsedURL:
    options: ProcessingOptions
    source_url: str
    presets: tuple[str, ...] = ()  # every preset applied (``default`` included), for experiment scopes
    experiment: str = ""  # ``name=arm`` when an experiment arm's options were appended (imgproxy_py.experiments)


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


@dataclass(frozen=True, slots=True)
class ClientHints:
    """``Sec-CH-DPR``/``DPR`` and ``Sec-CH-Width``/``Width`` request headers, already validated."""

    dpr: float | None = None
    width: int | None = None

    VARY = "Sec-CH-DPR, DPR, Sec-CH-Width, Width"

    @classmethod
    def from_headers(cls, dpr: str | None, width: str | None) -> ClientHints | None:
        parsed_dpr = _hint_number(dpr, float)
        if parsed_dpr is not None and not 0 < parsed_dpr <= 8:
            parsed_dpr = None
        width_number = _hint_number(width, int)
        parsed_width = int(width_number) if width_number is not None and 0 < width_number <= 100_000 else None
        if parsed_dpr is None and parsed_width is None:
            return None
        return cls(parsed_dpr, parsed_width)

    def key(self) -> str:
        return f"{self.dpr or ''}x{self.width or ''}"

    def apply(self, po: ProcessingOptions) -> ProcessingOptions:
        dpr = self.dpr or po.dpr
        changes: dict[str, object] = {}
        if self.dpr is not None:
            changes["dpr"] = self.dpr
        if self.width is not None:  # the hint is in device pixels; width is in CSS pixels
            changes["width"] = max(1, math.floor(self.width / dpr + 0.5))
        return evolve(po, **changes)


def _hint_number(value: str | None, kind: type[float] | type[int]) -> float | int | None:
    if not value:
        return None
    try:
        number = kind(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


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
        self._base = evolve(
            DEFAULT_OPTIONS,
            auto_rotate=settings.auto_rotate,
            strip_metadata=settings.strip_metadata,
            keep_copyright=settings.keep_copyright,
            strip_color_profile=settings.strip_color_profile,
            enforce_thumbnail=settings.enforce_thumbnail,
            skip_processing=settings.skip_processing_formats,
            preserve_hdr=settings.preserve_hdr,
            video_thumbnail_second=settings.video_thumbnail_second,
        )

    @property
    def preset_names(self) -> frozenset[str]:
        return frozenset(self._presets)

    def parse(self, path: str, hints: ClientHints | None = None, extra: Sequence[str] = ()) -> ParsedURL:
        """Parse ``/<options>/.../<source>`` (the part after the signature).

        Client hints (when enabled) are defaults: the ``default`` preset and the URL's own
        options override them, as in imgproxy. ``extra`` option segments (an experiment arm's,
        from the operator, not the URL) are applied after the URL's own options.
        """
        segments = path.lstrip("/").split("/")
        base = self._base if hints is None else hints.apply(self._base)
        state = ParseState(base, self._presets, allow_security=self._settings.allow_security_options)
        if "default" in self._presets:
            apply_preset(state, ["default"])
        if self._settings.only_presets:
            # IMGPROXY_ONLY_PRESETS: the first segment is a list of preset names, whatever it looks like.
            apply_preset(state, segments[0].split(self._sep))
            index = 1
        else:
            index = self._apply_url_options(state, segments)
        for segment in extra:
            apply_option(state, *split_option(segment, self._sep))
        source_url, ext = decode_source(segments[index:])
        if self._rewriter.active:
            source_url = self._rewriter.rewrite(source_url)
        raw = state.current("raw")
        if ext and not raw and ext.lower() == "best":
            state.set(format=None, format_best=True)
        elif ext and not raw:  # raw ignores the extension, as imgproxy does
            fmt = ImageFormat.from_name(ext)
            if fmt is None:
                # Echo only what looks like an extension: after an unescaped '@' in a plain URL
                # this is the rest of the source URL, which may carry credentials.
                shown = repr(ext) if _SHORT_NAME.fullmatch(ext) else "after '@'"
                raise InvalidURLError(
                    f"unknown output extension {shown} (an '@' in a plain source URL must be written %40)",
                    hint="expected one of jpg, png, webp, avif, gif, ico, tiff, bmp, svg",
                )
            state.set(format=fmt, format_best=False)
        return ParsedURL(state.po, source_url, tuple(state.applied_presets))  # the options are built here, once

    def check_options(self, segments: Sequence[str]) -> None:
        """Apply option segments to default options: raises the option's error if one is invalid."""
        state = ParseState(self._base, self._presets, allow_security=self._settings.allow_security_options)
        for segment in segments:
            apply_option(state, *split_option(segment, self._sep))

    def parse_restricted(
        self, path: str, allowed: frozenset[str], refuse: Callable[[str], ImgproxyError]
    ) -> tuple[ProcessingOptions, str, str]:
        """(options, source URL, extension) of ``/<options>/.../<source>`` taking only ``allowed``
        option names (``refuse(name)`` is raised for any other), from blank options: no presets,
        no configured defaults. An endpoint with a few options of its own (/info) parses with this."""
        segments = path.lstrip("/").split("/")
        state = ParseState(ProcessingOptions(), {})
        index = self._apply_options(state, segments, allowed, refuse)
        source_url, ext = decode_source(segments[index:])
        if self._rewriter.active:
            source_url = self._rewriter.rewrite(source_url)
        return state.po, source_url, ext

    def _apply_url_options(self, state: ParseState, segments: list[str]) -> int:
        """Apply the option segments; return the index of the first source URL segment."""
        allowed = self._allowed

        def refuse(name: str) -> ImgproxyError:  # names as written: an alias is a different name
            return InvalidOptionError(
                f"processing option {name!r} is not allowed",
                hint=f"IMGPROXY_ALLOWED_PROCESSING_OPTIONS allows only {', '.join(sorted(allowed))}",
            )

        index = self._apply_options(state, segments, allowed, refuse)
        if index == 0 and segments[0] in _RESIZING_TYPES:
            raise InvalidURLError("the basic URL format is not supported; use processing options")
        return index

    def _apply_options(
        self,
        state: ParseState,
        segments: list[str],
        allowed: frozenset[str],
        refuse: Callable[[str], ImgproxyError],
    ) -> int:
        """Apply the option segments (only ``allowed`` names, when not empty); the index of the source's first."""
        sep = self._sep
        index = 0
        for index, segment in enumerate(segments):  # noqa: B007 - index is used after the loop
            if sep not in segment:
                break
            name, args = split_option(segment, sep)
            if allowed and name not in allowed:
                raise refuse(name)
            apply_option(state, name, args)
        else:
            raise InvalidURLError("source URL is missing")
        return index
