"""BMP output, written here: the bundled libvips has no BMP saver.

Uncompressed, bottom-up rows: 24-bit BGR (BITMAPINFOHEADER) for opaque images and 32-bit
BGRA with explicit channel masks (BITMAPV4HEADER, BI_BITFIELDS) when there is alpha, which
is what browsers and imgproxy's BMP writer produce.
"""

from __future__ import annotations

import struct
from typing import Any

from imgproxy_py.processing import vips

_FILE_HEADER = struct.Struct("<2sIHHI")
_INFO_HEADER = struct.Struct("<IiiHHIIiiII")  # BITMAPINFOHEADER (40 bytes)
_V4_EXTRA = struct.Struct("<IIIII36sIII")  # masks, colour space, endpoints, gammas (68 bytes)
_LCS_SRGB = 0x73524742  # 'sRGB'
_BI_RGB, _BI_BITFIELDS = 0, 3


def encode(img: Any) -> bytes:
    """``img`` is 8-bit sRGB or grey, with or without alpha (the finalize pipeline's output)."""
    if img.bands in (1, 2):  # grey (+alpha) → sRGB: BMP has no grey type without a palette
        img = img.colourspace("srgb")
    alpha = img.bands == 4
    bgr = vips.pixels(img[2].bandjoin([img[1], img[0]] + ([img[3]] if alpha else [])).cast("uchar").flipver())
    width, height = img.width, img.height
    pixels: bytes = bgr.write_to_memory()
    row = width * (4 if alpha else 3)
    padded = (row + 3) & ~3
    if padded != row:
        pad = bytes(padded - row)
        pixels = b"".join(pixels[i : i + row] + pad for i in range(0, len(pixels), row))
    info_size = _INFO_HEADER.size + (_V4_EXTRA.size if alpha else 0)
    offset = _FILE_HEADER.size + info_size
    file_header = _FILE_HEADER.pack(b"BM", offset + len(pixels), 0, 0, offset)
    dpm = 2835  # 72 dpi in pixels per metre
    info = _INFO_HEADER.pack(
        info_size,
        width,
        height,
        1,
        32 if alpha else 24,
        _BI_BITFIELDS if alpha else _BI_RGB,
        len(pixels),
        dpm,
        dpm,
        0,
        0,
    )
    if alpha:
        info += _V4_EXTRA.pack(0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000, _LCS_SRGB, bytes(36), 0, 0, 0)
    return file_header + info + pixels
