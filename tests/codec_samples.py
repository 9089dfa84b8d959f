"""Sample HEIC, JPEG XL and BMP files made by the tests themselves (no binary fixtures needed).

HEIC comes from pillow-heif's x265 encoder, JPEG XL from imagecodecs' libjxl, BMP from Pillow's
writer or, for the layouts Pillow does not write (4-bit, 16-bit, RLE), from the bytes the BMP
specification lays down. ``decode_any`` reads every output format back for comparisons.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import imagecodecs
import numpy as np
import pillow_heif
from PIL import Image

from imgproxy_py.imagetype import ImageFormat, sniff
from imgproxy_py.processing import codecs, external, vips


def array_of(img: Any) -> Any:
    """A libvips image's pixels as an (h, w, bands) array."""
    dtype = np.uint16 if img.format == "ushort" else np.uint8
    return np.frombuffer(img.write_to_memory(), dtype=dtype).reshape(img.height, img.width, img.bands)


def heic(
    img: Any,
    *,
    quality: int = 90,
    exif_orientation: int | None = None,
    icc: bytes | None = None,
    extra: list[Any] | None = None,
    primary: int = 0,
    thumbnail: int = 0,
) -> bytes:
    """``img`` (8- or 16-bit RGB(A) libvips image; 16-bit is stored as 10-bit) as HEIC.

    ``extra`` images are stored too; ``primary`` picks which one is the primary image.
    """
    images = [img, *(extra or [])]

    def mode(one: Any) -> str:
        return ("RGBA" if one.bands == 4 else "RGB") + (";16" if one.format == "ushort" else "")

    heif = pillow_heif.from_bytes(mode(img), (img.width, img.height), array_of(img).tobytes())
    for one in images[1:]:
        heif.add_frombytes(mode(one), (one.width, one.height), array_of(one).tobytes())
    if icc:
        for one in heif:
            one.info["icc_profile"] = icc
    kwargs: dict[str, Any] = {"quality": quality, "primary_index": primary}
    if thumbnail:
        kwargs["thumbnails"] = [thumbnail]  # an embedded thumbnail, ``thumbnail`` px on its longer side
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    out = io.BytesIO()
    heif.save(out, **kwargs)
    return out.getvalue()


def jxl(img: Any, *, lossless: bool = False, container: bool = False) -> bytes:
    arr = array_of(img)
    if arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return bytes(
        imagecodecs.jpegxl_encode(arr, lossless=lossless, distance=None if lossless else 1.0, usecontainer=container)
    )


def pillow_bmp(img: Any, mode: str) -> bytes:
    """Pillow's BMP writer: mode 1 (1-bit), L/P (8-bit palette), RGB (24-bit), RGBA (32-bit)."""
    arr = array_of(img)
    pil = Image.fromarray(arr[:, :, :3] if img.bands >= 3 else arr[:, :, 0])
    if mode == "RGBA":
        pil = Image.fromarray(arr if arr.shape[2] == 4 else np.dstack([arr, np.full(arr.shape[:2], 255, np.uint8)]))
    elif mode == "P":
        pil = pil.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    else:
        pil = pil.convert(mode)
    out = io.BytesIO()
    pil.save(out, format="BMP")
    return out.getvalue()


def raw_bmp(width: int, height: int, bits: int, pixels: bytes, *, palette: bytes = b"", compression: int = 0) -> bytes:
    """A BMP (BITMAPINFOHEADER) around rows or RLE data exactly as given, bottom-up."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, compression, len(pixels), 2835, 2835, 0, 0)
    offset = 14 + len(info) + len(palette)
    head = struct.pack("<2sIHHI", b"BM", offset + len(pixels), 0, 0, offset)
    return head + info + palette + pixels


def grey_palette(n: int) -> bytes:
    return b"".join(bytes([v, v, v, 0]) for v in np.linspace(0, 255, n).astype(int))


def bmp_4bit(width: int, height: int) -> bytes:
    """Vertical stripes of palette entries 0..15 (4 bits a pixel, rows padded to 4 bytes)."""
    row = bytes(((2 * x) % 16) << 4 | ((2 * x + 1) % 16) for x in range((width + 1) // 2))
    row += bytes(-len(row) % 4)
    return raw_bmp(width, height, 4, row * height, palette=grey_palette(16))


def bmp_16bit(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """X1R5G5B5, the 16-bit BI_RGB layout, one flat colour."""
    r, g, b = (c >> 3 for c in rgb)
    row = struct.pack("<H", r << 10 | g << 5 | b) * width
    row += bytes(-len(row) % 4)
    return raw_bmp(width, height, 16, row * height)


def bmp_rle8(width: int, height: int) -> bytes:
    """RLE8: each row a run of palette entry (row * 16 % 256), end-of-line, then end-of-bitmap."""
    data = b"".join(bytes([width, (y * 16) % 256, 0, 0]) for y in range(height)) + b"\x00\x01"
    return raw_bmp(width, height, 8, data, palette=grey_palette(256), compression=1)


def bmp_rle4(width: int, height: int) -> bytes:
    """RLE4: each row a run alternating palette entries 3 and 12, then end-of-bitmap."""
    data = b"".join(bytes([width, 0x3C, 0, 0]) for _ in range(height)) + b"\x00\x01"
    return raw_bmp(width, height, 4, data, palette=grey_palette(16), compression=2)


def decode_any(data: bytes) -> Any:
    """Any output of the server as a libvips image (HEIC, JPEG XL and BMP through the codecs)."""
    fmt = sniff(data)
    if fmt is not None and codecs.decodes(data, fmt):
        return external.load(data, fmt, 1 << 40)
    if fmt is ImageFormat.ICO:
        raise AssertionError("decode ICO entries with processing.ico")
    return vips.open_source(data)
