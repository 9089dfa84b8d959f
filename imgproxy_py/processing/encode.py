"""Save the processed image: per-format encoder settings and quality resolution."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imgproxy_py.errors import UnsupportedFormatError
from imgproxy_py.imagetype import SAVABLE, ImageFormat
from imgproxy_py.options.model import ProcessingOptions
from imgproxy_py.processing import vips
from imgproxy_py.settings import OptionSettings


@dataclass(frozen=True, slots=True)
class EncoderSettings:
    jpeg_progressive: bool = False
    png_interlaced: bool = False
    webp_effort: int = 4
    avif_speed: int = 8  # imgproxy's IMGPROXY_AVIF_SPEED: libvips effort = 9 - speed


def resolve_quality(fmt: ImageFormat, po: ProcessingOptions, defaults: OptionSettings) -> int:
    """``q`` > ``fq`` > IMGPROXY_FORMAT_QUALITY > IMGPROXY_QUALITY."""
    if po.quality > 0:
        return po.quality
    for option_fmt, quality in po.format_quality:
        if option_fmt is fmt and quality > 0:
            return quality
    return defaults.format_quality.get(fmt, defaults.quality)


def save_options(
    fmt: ImageFormat, quality: int, keep_metadata: bool, enc: EncoderSettings
) -> tuple[str, dict[str, Any]]:
    # Stripping metadata keeps the ICC profile (imgproxy stripMetadata): an image only still
    # has one here when strip_color_profile is off; otherwise colorspace_to_result removed it.
    keep = "all" if keep_metadata else "icc"
    if fmt is ImageFormat.JPEG:
        return ".jpg", {
            "Q": quality,
            "optimize_coding": True,
            "interlace": enc.jpeg_progressive,
            "subsample_mode": "auto",
            "keep": keep,
        }
    if fmt is ImageFormat.PNG:
        return ".png", {"interlace": enc.png_interlaced, "compression": 6, "filter": "none", "keep": keep}
    if fmt is ImageFormat.WEBP:
        return ".webp", {"Q": quality, "effort": enc.webp_effort, "keep": keep}
    if fmt is ImageFormat.AVIF:
        return ".avif", {
            "Q": quality,
            "compression": "av1",
            "effort": max(0, min(9, 9 - enc.avif_speed)),
            "bitdepth": 8,
            "keep": keep,
        }
    if fmt is ImageFormat.GIF:
        return ".gif", {"keep": keep}
    raise UnsupportedFormatError(f"cannot save {fmt.value}")


def encode(img: Any, fmt: ImageFormat, quality: int, keep_metadata: bool, enc: EncoderSettings) -> bytes:
    if fmt not in SAVABLE:
        raise UnsupportedFormatError(f"cannot save {fmt.value}")
    suffix, options = save_options(fmt, quality, keep_metadata, enc)
    return vips.save(img, suffix, **options)
