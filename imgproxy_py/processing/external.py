"""The bridge between the codecs outside libvips (processing/codecs) and the libvips pipeline.

Decoding: the header is probed and every limit checked before a pixel is decoded; the
decode itself is one call into the codec that nothing can interrupt, so the cancel token is
checked right before and after it. Encoding: the finished image is evaluated (cancellable,
like every save) and its pixels handed to the codec.
"""

from __future__ import annotations

from typing import Any

from imgproxy_py.cancel import current_token
from imgproxy_py.errors import InvalidImageError
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.processing import codecs, vips
from imgproxy_py.processing.codecs import Decoded, Header
from imgproxy_py.processing.limits import check_raster


def probe(data: bytes, fmt: ImageFormat, max_src_resolution: int) -> Header:
    header = codecs.probe(data, fmt)
    check_raster(header.width, header.height, max_src_resolution)
    return header


def decode(data: bytes, fmt: ImageFormat, max_src_resolution: int, thumbnail: bool = False) -> Decoded:
    probe(data, fmt, max_src_resolution)
    _stop_if_cancelled()
    decoded = codecs.decode(data, fmt, thumbnail)
    check_raster(decoded.width, decoded.height, max_src_resolution)  # the header did not lie
    _stop_if_cancelled()
    return decoded


def load(data: bytes, fmt: ImageFormat, max_src_resolution: int, thumbnail: bool = False) -> Any:
    """A libvips image of the decoded source (or its embedded thumbnail), checked against the limits first."""
    return to_vips(decode(data, fmt, max_src_resolution, thumbnail))


def to_vips(decoded: Decoded) -> Any:
    return vips.from_pixels(
        decoded.pixels,
        decoded.width,
        decoded.height,
        decoded.bands,
        decoded.band_format,
        decoded.interpretation,
        icc=decoded.icc,
        exif=decoded.exif,
        xmp=decoded.xmp,
        orientation=decoded.orientation,
        bits=decoded.bits,
    )


def video_still(
    data: bytes, container: str, second: float | None, max_src_resolution: int, max_duration: float
) -> tuple[Any, Any]:
    """(header, libvips image) of a still from a video: duration and stream size checked first."""
    from imgproxy_py.processing.codecs import video

    def check(header: video.VideoHeader) -> None:
        if max_duration > 0 and header.duration > max_duration:
            raise InvalidImageError(f"video of {header.duration:.0f} s exceeds IMGPROXY_MAX_VIDEO_DURATION")
        check_raster(header.width, header.height, max_src_resolution)

    _stop_if_cancelled()
    header, decoded = video.still(data, container, second, check, _stop_if_cancelled)
    check_raster(decoded.width, decoded.height, max_src_resolution)
    return header, to_vips(decoded)


def _stop_if_cancelled() -> None:
    token = current_token.get()
    if token is not None and token.should_stop():
        raise token.error()


def encode(img: Any, fmt: ImageFormat, quality: int, *, jxl_effort: int, heic_speed: int) -> bytes:
    """HEIC or JPEG XL from the pipeline's final 8-bit (or preserve_hdr 16-bit) sRGB/grey image."""
    deep = img.format == "ushort"
    if fmt is ImageFormat.HEIC and img.bands < 3:
        img = img.colourspace("rgb16" if deep else "srgb")  # HEIC here is written as RGB(A)
    img = img.cast("ushort" if deep else "uchar")
    pixels = vips.pixels(img).write_to_memory()
    depth = 16 if deep else 8
    if fmt is ImageFormat.HEIC:
        from imgproxy_py.processing.codecs import heif

        return heif.encode(pixels, img.width, img.height, img.bands, depth, quality, heic_speed)
    if fmt is ImageFormat.JXL:
        from imgproxy_py.processing.codecs import jxl

        return jxl.encode(pixels, img.width, img.height, img.bands, depth, quality, jxl_effort)
    raise ValueError(f"no codec here for {fmt.value}")
