"""Formats the bundled libvips cannot decode or encode, handled by well-kept PyPI codecs.

- BMP in: Pillow (every bit depth and RLE; libvips has no BMP loader without ImageMagick);
- HEIC/HEIF (HEVC) in and out: pillow-heif (libheif with libde265 and x265);
- JPEG XL in and out: imagecodecs (libjxl);
- video stills: PyAV (FFmpeg), see ``video``.

Every codec has the same two steps: ``probe`` reads the dimensions from the header (no
pixels), so the resolution limit is checked before anything is decoded, and ``decode``
returns plain pixels that processing/vips.py turns into a libvips image; from there the
image goes through the same pipeline as any other. Nothing here imports pyvips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imgproxy_py.imagetype import ImageFormat


@dataclass(frozen=True, slots=True)
class Header:
    """What a codec learns from the header alone."""

    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Decoded:
    """Pixels, interleaved, top row first, 8 or 16 bits per sample, sRGB or grey (± alpha)."""

    pixels: Any  # a C-contiguous buffer: bytes, memoryview or numpy array
    width: int
    height: int
    bands: int  # 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA
    depth: int = 8  # 8 or 16
    icc: bytes | None = None
    exif: bytes | None = None
    xmp: bytes | None = None
    orientation: int = 1  # EXIF orientation still to apply (1: already upright)
    bits: int = 0  # significant bits per sample when fewer than ``depth`` (10-bit HEIC: 10)

    @property
    def band_format(self) -> str:
        return "ushort" if self.depth > 8 else "uchar"

    @property
    def interpretation(self) -> str:
        if self.bands < 3:
            return "grey16" if self.depth > 8 else "b-w"
        return "rgb16" if self.depth > 8 else "srgb"


# Formats always decoded here; HEIC only when it is HEVC-coded (an AV1 HEIF is libvips' job).
DECODED_HERE = frozenset({ImageFormat.BMP, ImageFormat.HEIC, ImageFormat.JXL})
ENCODED_HERE = frozenset({ImageFormat.HEIC, ImageFormat.JXL})


def decodes(data: bytes, fmt: ImageFormat) -> bool:
    """Whether ``data`` (sniffed as ``fmt``) is decoded by a codec here rather than by libvips."""
    if fmt is ImageFormat.HEIC:
        from imgproxy_py.processing.codecs import heif

        return heif.is_hevc(data)
    return fmt in DECODED_HERE


def probe(data: bytes, fmt: ImageFormat) -> Header:
    header: Header = _module(fmt).probe(data)
    return header


def decode(data: bytes, fmt: ImageFormat, thumbnail: bool = False) -> Decoded:
    """``thumbnail``: the embedded thumbnail instead of the image, where the format has one (HEIC)."""
    decoded: Decoded = _module(fmt).decode(data, thumbnail) if fmt is ImageFormat.HEIC else _module(fmt).decode(data)
    return decoded


def _module(fmt: ImageFormat) -> Any:
    # Imported on first use: each codec library loads its native code only when needed.
    if fmt is ImageFormat.BMP:
        from imgproxy_py.processing.codecs import bmp

        return bmp
    if fmt is ImageFormat.HEIC:
        from imgproxy_py.processing.codecs import heif

        return heif
    if fmt is ImageFormat.JXL:
        from imgproxy_py.processing.codecs import jxl

        return jxl
    raise ValueError(f"no codec here for {fmt.value}")
