"""Defaults and policy for the URL option parser and format negotiation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from imgproxy_py.errors import SettingsError
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.settings.env import _Env


@dataclass(frozen=True, slots=True)
class OptionSettings:
    """Defaults and policy the URL parser and the format negotiation need."""

    quality: int = 80
    format_quality: Mapping[ImageFormat, int] = field(
        default_factory=lambda: {ImageFormat.WEBP: 79, ImageFormat.AVIF: 63, ImageFormat.JXL: 77}
    )
    auto_rotate: bool = True
    strip_metadata: bool = True
    presets: tuple[str, ...] = ()
    auto_webp: bool = False
    auto_avif: bool = False
    enforce_webp: bool = False
    enforce_avif: bool = False
    auto_jxl: bool = False  # IMGPROXY_AUTO_JXL: image/jxl in Accept picks JPEG XL (never without it)
    enforce_jxl: bool = False
    preferred_formats: tuple[ImageFormat, ...] = (ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.GIF)
    client_hints: bool = False  # IMGPROXY_ENABLE_CLIENT_HINTS: DPR / Width headers set dpr and width
    preserve_hdr: bool = False  # IMGPROXY_PRESERVE_HDR: the ``ph`` option's default
    video_thumbnail_second: float | None = (
        None  # IMGPROXY_VIDEO_THUMBNAIL_SECOND: ``vts``' default (None: first keyframe)
    )
    keep_copyright: bool = True
    strip_color_profile: bool = True
    enforce_thumbnail: bool = False
    skip_processing_formats: frozenset[ImageFormat] = frozenset()
    preset_file: tuple[str, ...] = ()  # the lines of IMGPROXY_PRESETS_PATH
    only_presets: bool = False
    allowed_processing_options: frozenset[str] = frozenset()  # empty: every option
    allow_security_options: bool = False
    base_url: str = ""
    url_replacements: tuple[tuple[str, str], ...] = ()  # (wildcard pattern, Go-style replacement)
    arguments_separator: str = ":"

    @property
    def negotiates_format(self) -> bool:
        return any(
            (self.auto_webp, self.auto_avif, self.auto_jxl, self.enforce_webp, self.enforce_avif, self.enforce_jxl)
        )

    @property
    def vary(self) -> str | None:
        """The Vary header every image response carries: what request headers change it."""
        parts = (["Accept"] if self.negotiates_format else []) + (
            ["Sec-CH-DPR", "DPR", "Sec-CH-Width", "Width"] if self.client_hints else []
        )
        return ", ".join(parts) or None

    @classmethod
    def from_env(cls, env: _Env) -> OptionSettings:
        defaults = cls()
        return cls(
            quality=env.get_int("IMGPROXY_QUALITY", 80, min_value=1, max_value=100),
            format_quality=env.format_quality("IMGPROXY_FORMAT_QUALITY", defaults.format_quality),
            auto_rotate=env.get_bool("IMGPROXY_AUTO_ROTATE", True),
            strip_metadata=env.get_bool("IMGPROXY_STRIP_METADATA", True),
            presets=env.get_list("IMGPROXY_PRESETS", sep=env.get_str("IMGPROXY_PRESETS_SEPARATOR", ",")),
            auto_webp=env.get_bool("IMGPROXY_AUTO_WEBP", env.get_bool("IMGPROXY_ENABLE_WEBP_DETECTION", False)),
            auto_avif=env.get_bool("IMGPROXY_AUTO_AVIF", env.get_bool("IMGPROXY_ENABLE_AVIF_DETECTION", False)),
            enforce_webp=env.get_bool("IMGPROXY_ENFORCE_WEBP", False),
            enforce_avif=env.get_bool("IMGPROXY_ENFORCE_AVIF", False),
            auto_jxl=env.get_bool("IMGPROXY_AUTO_JXL", False),
            enforce_jxl=env.get_bool("IMGPROXY_ENFORCE_JXL", False),
            preferred_formats=env.formats("IMGPROXY_PREFERRED_FORMATS", defaults.preferred_formats),
            client_hints=env.get_bool("IMGPROXY_ENABLE_CLIENT_HINTS", False),
            preserve_hdr=env.get_bool("IMGPROXY_PRESERVE_HDR", False),
            video_thumbnail_second=_video_thumbnail_second(env),
            keep_copyright=env.get_bool("IMGPROXY_KEEP_COPYRIGHT", True),
            strip_color_profile=env.get_bool("IMGPROXY_STRIP_COLOR_PROFILE", True),
            enforce_thumbnail=env.get_bool("IMGPROXY_ENFORCE_THUMBNAIL", False),
            skip_processing_formats=_format_names(env, "IMGPROXY_SKIP_PROCESSING_FORMATS"),
            preset_file=_preset_file(env),
            only_presets=env.get_bool("IMGPROXY_ONLY_PRESETS", False),
            allowed_processing_options=frozenset(env.get_list("IMGPROXY_ALLOWED_PROCESSING_OPTIONS")),
            allow_security_options=env.get_bool("IMGPROXY_ALLOW_SECURITY_OPTIONS", False),
            base_url=env.get_str("IMGPROXY_BASE_URL", ""),
            url_replacements=_url_replacements(env),
            arguments_separator=_arguments_separator(env),
        )


def _video_thumbnail_second(env: _Env) -> float | None:
    """Unset: the first keyframe (imgproxy Pro defaults to second 1; a keyframe costs least)."""
    if env.raw("IMGPROXY_VIDEO_THUMBNAIL_SECOND") is None:
        return None
    return env.get_float("IMGPROXY_VIDEO_THUMBNAIL_SECOND", 0, min_value=0, max_value=1e9)


def _format_names(env: _Env, name: str) -> frozenset[ImageFormat]:
    """Any known format name (unlike the preferred formats, these need not be savable)."""
    result = set()
    for item in env.get_list(name):
        fmt = ImageFormat.from_name(item)
        if fmt is None:
            raise SettingsError(f"{name}: unknown image format {item!r}")
        result.add(fmt)
    return frozenset(result)


def _preset_file(env: _Env) -> tuple[str, ...]:
    """IMGPROXY_PRESETS_PATH: one ``name=options`` per line; read here so a missing file stops start-up."""
    path = env.raw("IMGPROXY_PRESETS_PATH")
    if path is None:
        return ()
    try:
        with open(path, encoding="utf-8") as file:
            return tuple(file.read().splitlines())
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"IMGPROXY_PRESETS_PATH: cannot read {path!r}: {exc}") from None


def _url_replacements(env: _Env) -> tuple[tuple[str, str], ...]:
    """``pattern=replacement;…`` (imgproxy's format); each entry is split at its first ``=``."""
    value = env.raw("IMGPROXY_URL_REPLACEMENTS")
    if value is None:
        return ()
    pairs = []
    for item in value.split(";"):
        if not item.strip():
            continue
        pattern, sep, replacement = item.partition("=")
        if not sep:
            raise SettingsError(f"IMGPROXY_URL_REPLACEMENTS: expected pattern=replacement, got {item!r}")
        pairs.append((pattern, replacement))
    return tuple(pairs)


def _arguments_separator(env: _Env) -> str:
    value = env.get_str("IMGPROXY_ARGUMENTS_SEPARATOR", ":")
    if "/" in value:
        raise SettingsError("IMGPROXY_ARGUMENTS_SEPARATOR: must not contain '/', which separates options")
    return value
