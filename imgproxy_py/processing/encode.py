"""Save the processed image: per-format encoder settings and quality resolution."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imgproxy_py.errors import UnsupportedFormatError
from imgproxy_py.imagetype import SAVABLE, ImageFormat
from imgproxy_py.options.model import ProcessingOptions
from imgproxy_py.processing import bmp_writer, external, ico, vips
from imgproxy_py.processing.codecs import ENCODED_HERE
from imgproxy_py.processing.geometry import round_half_away
from imgproxy_py.processing.job import ResultSink
from imgproxy_py.settings import OptionSettings


@dataclass(frozen=True, slots=True)
class EncoderSettings:
    jpeg_progressive: bool = False
    png_interlaced: bool = False
    webp_effort: int = 4
    avif_speed: int = 8  # imgproxy's IMGPROXY_AVIF_SPEED: libvips effort = 9 - speed (HEIC: x265 preset)
    jxl_effort: int = 4


def resolve_quality(fmt: ImageFormat, po: ProcessingOptions, defaults: OptionSettings) -> int:
    """``q`` > ``fq`` > IMGPROXY_FORMAT_QUALITY > IMGPROXY_QUALITY."""
    if po.quality > 0:
        return po.quality
    for option_fmt, quality in po.format_quality:
        if option_fmt is fmt and quality > 0:
            return quality
    return defaults.format_quality.get(fmt, defaults.quality)


def save_options(
    fmt: ImageFormat, quality: int, keep_metadata: bool, enc: EncoderSettings, keep_exif: bool = False
) -> tuple[str, dict[str, Any]]:
    # Stripping metadata keeps the ICC profile (imgproxy stripMetadata): an image only still
    # has one here when strip_color_profile is off; otherwise colorspace_to_result removed it.
    # EXIF is then only written when strip_metadata left a copyright notice (keep_exif).
    keep = "all" if keep_metadata else ("icc:exif" if keep_exif else "icc")
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
        # Identical consecutive frames stay separate, so frame counts and delays round-trip exactly.
        return ".gif", {"keep": keep, "keep_duplicate_frames": True}
    if fmt is ImageFormat.TIFF:
        return ".tif", {"Q": quality, "keep": keep}  # Q only matters for JPEG-compressed TIFF, as in imgproxy
    if fmt is ImageFormat.ICO:
        return ".png", {"compression": 6, "filter": "none", "keep": "none"}  # wrapped by ico.wrap_png
    if fmt is ImageFormat.BMP:
        return ".bmp", {}  # written by bmp.encode, never by libvips
    raise UnsupportedFormatError(f"cannot save {fmt.value}")


def encode(
    img: Any, fmt: ImageFormat, quality: int, keep_metadata: bool, enc: EncoderSettings, sink: ResultSink | None = None
) -> bytes:
    """``fmt``'s bytes of ``img``; with a ``sink`` (PNG only, see processing/output.py) they also go
    there as libvips produces them."""
    if fmt not in SAVABLE:
        raise UnsupportedFormatError(f"cannot save {fmt.value}")
    if fmt is ImageFormat.BMP:
        return bmp_writer.encode(img)
    if fmt in ENCODED_HERE:  # HEIC, JPEG XL: metadata is not written (the default strips it anyway)
        return external.encode(img, fmt, quality, jxl_effort=enc.jxl_effort, heic_speed=enc.avif_speed)
    keep_exif = vips.has_field(img, "exif-data")  # after strip_metadata: only a kept copyright notice
    suffix, options = save_options(fmt, quality, keep_metadata, enc, keep_exif)
    if img.format == "ushort":  # preserve_hdr kept 16 bits: ask the saver not to drop them
        if fmt is ImageFormat.PNG:
            options["bitdepth"] = 16
        elif fmt is ImageFormat.AVIF:
            options["bitdepth"] = 12
    if sink is not None and fmt is ImageFormat.PNG:
        chunks: list[bytes] = []

        def write(chunk: bytes) -> None:
            chunks.append(chunk)
            sink.write(chunk)

        sink.begin(fmt)
        vips.save_streaming(img, suffix, write, **options)
        return b"".join(chunks)
    data = vips.save(img, suffix, **options)
    if fmt is ImageFormat.ICO:
        return ico.wrap_png(data, img.width, img.height)
    return data


def encode_to_fit(
    img: Any,
    fmt: ImageFormat,
    quality: int,
    max_bytes: int,
    keep_metadata: bool,
    enc: EncoderSettings,
    sink: ResultSink | None = None,
) -> bytes:
    """``max_bytes``: save again at lower quality until the result fits or quality reaches 10 (save_fit_bytes).

    The quality drops by a quarter, a half or three quarters depending on how far over the
    limit the last try was, and by at least one step. Formats without a quality setting are
    saved once; the result may then be larger than the limit, as in imgproxy.
    """
    if max_bytes <= 0 or not fmt.supports_quality:
        return encode(img, fmt, quality, keep_metadata, enc, sink)
    img = vips.pixels(img)  # saved several times: decode the pipeline once
    while True:
        data = encode(img, fmt, quality, keep_metadata, enc)
        if len(data) <= max_bytes or quality <= 10:
            return data
        over = len(data) / max_bytes
        factor = 0.25 if over > 3 else 0.5 if over > 1.5 else 0.75
        quality = max(1, min(quality - 1, round_half_away(quality * factor)))
