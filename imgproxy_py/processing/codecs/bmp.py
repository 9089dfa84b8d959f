"""BMP input through Pillow: 1/4/8-bit palettes, 16/24/32-bit, RLE4/RLE8 and bit-field masks.

The libvips in pyvips[binary] reads BMP only through ImageMagick, which it does not bundle.
Pillow's reader is the well-fuzzed one every Python image tool uses; its header parse gives
the size without touching the pixels, so the resolution limit is checked before decoding.
"""

from __future__ import annotations

import io

from PIL import Image

from imgproxy_py.errors import BrokenImageError
from imgproxy_py.processing.codecs import Decoded, Header

# Pillow's own decompression-bomb guard (a warning at 89 MP, an error at twice that) would
# replace ours: the configured limit is checked on the probed size, before ``load``.
Image.MAX_IMAGE_PIXELS = None

_FORMATS = ["BMP"]


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=_FORMATS)
    except Exception as exc:  # a hostile header can make the parser raise anything: it is the file's fault
        raise BrokenImageError(f"bmp: {type(exc).__name__}: {str(exc)[:200]}") from None


def probe(data: bytes) -> Header:
    with _open(data) as im:
        width, height = im.size
    return Header(width, height)


def decode(data: bytes) -> Decoded:
    with _open(data) as im:
        try:
            im.load()  # raises on truncated pixel data (LOAD_TRUNCATED_IMAGES stays off)
            out = _normalise(im)
            pixels = out.tobytes()
        except Exception as exc:  # as in _open: a decode error is a broken file, not a server fault
            raise BrokenImageError(f"bmp: {type(exc).__name__}: {str(exc)[:200]}") from None
    bands = len(out.getbands())
    return Decoded(pixels, out.width, out.height, bands, 8)


def _normalise(im: Image.Image) -> Image.Image:
    """8-bit grey, grey+alpha, RGB or RGBA: the layouts libvips takes as they are."""
    if im.mode in ("L", "LA", "RGB", "RGBA"):
        return im
    if im.mode == "1":
        return im.convert("L")
    if im.mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    return im.convert("RGBA" if "A" in im.getbands() else "RGB")
