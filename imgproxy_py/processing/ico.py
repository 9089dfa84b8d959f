"""The ICO container, which libvips cannot write or read: one PNG inside a 22-byte header.

Saving wraps a PNG (PNG-in-ICO, valid since Windows Vista and what imgproxy writes).
Loading picks the largest entry and hands its bytes to the normal loaders, so only
PNG entries are readable here (legacy BMP entries would need a BMP loader).
"""

from __future__ import annotations

import struct

from imgproxy_py.errors import InvalidImageError

MAX_SIZE = 256
_ICONDIR = struct.Struct("<HHH")  # reserved, type (1 = icon), image count
_ENTRY = struct.Struct("<BBBBHHII")  # width, height, colours, reserved, planes, bpp, size, offset


def wrap_png(png: bytes, width: int, height: int, bits_per_pixel: int = 32) -> bytes:
    """An ICO holding ``png``; a side of 256 is stored as 0, as the format requires."""
    if not (0 < width <= MAX_SIZE and 0 < height <= MAX_SIZE):
        raise ValueError(f"ICO images are at most {MAX_SIZE}x{MAX_SIZE}, got {width}x{height}")
    offset = _ICONDIR.size + _ENTRY.size
    header = _ICONDIR.pack(0, 1, 1)
    entry = _ENTRY.pack(width % MAX_SIZE, height % MAX_SIZE, 0, 0, 1, bits_per_pixel, len(png), offset)
    return header + entry + png


def largest_image(data: bytes) -> bytes:
    """The bytes of the largest image in an ICO file (InvalidImageError if the directory is broken)."""
    if len(data) < _ICONDIR.size:
        raise InvalidImageError("ICO file is truncated")
    reserved, kind, count = _ICONDIR.unpack_from(data)
    if reserved != 0 or kind != 1 or count == 0 or len(data) < _ICONDIR.size + count * _ENTRY.size:
        raise InvalidImageError("not a valid ICO directory")
    best: tuple[int, int, int] | None = None  # (pixels, offset, size)
    for i in range(count):
        width, height, _, _, _, _, size, offset = _ENTRY.unpack_from(data, _ICONDIR.size + i * _ENTRY.size)
        pixels = (width or MAX_SIZE) * (height or MAX_SIZE)
        if size == 0 or offset + size > len(data):
            continue
        if best is None or pixels > best[0]:
            best = (pixels, offset, size)
    if best is None:
        raise InvalidImageError("ICO file has no readable image")
    _, offset, size = best
    return data[offset : offset + size]
