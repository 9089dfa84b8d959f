"""JPEG XL in and out through imagecodecs (libjxl, BSD-licensed; the bundled libvips has no jxlload/jxlsave).

The size is read here from the codestream's SizeHeader (a few bits after the signature,
inside the ``jxlc``/``jxlp`` box of the container form): imagecodecs only offers a full
decode, and the resolution limit must hold before any pixel is decoded. libjxl applies the
orientation and converts to the image's colour encoding (sRGB for nearly every photo).
"""

from __future__ import annotations

import struct
from typing import Any

import imagecodecs
import numpy as np

from imgproxy_py.errors import BrokenImageError
from imgproxy_py.processing.codecs import Decoded, Header

_CODESTREAM = b"\xff\x0a"
_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}


class _Bits:
    """LSB-first bit reader, as the JPEG XL codestream is written."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int) -> int:
        value = 0
        for i in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise BrokenImageError("jxl: truncated header")
            value |= ((self.data[byte] >> (self.pos & 7)) & 1) << i
            self.pos += 1
        return value

    def size(self) -> int:  # U32(1 + u(9), 1 + u(13), 1 + u(18), 1 + u(30))
        return 1 + self.read((9, 13, 18, 30)[self.read(2)])


def codestream_head(data: bytes) -> bytes:
    """The first bytes of the codestream, from a bare codestream or the ISOBMFF container."""
    if data.startswith(_CODESTREAM):
        return data[2:64]
    if not data.startswith(_CONTAINER):
        raise BrokenImageError("jxl: no signature")
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1 and pos + 16 <= len(data):
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = len(data) - pos
        if size < header:
            break
        start = pos + header + (4 if kind == b"jxlp" else 0)  # jxlp: a 4-byte part index first
        if kind in (b"jxlc", b"jxlp"):
            head = data[start : start + 64]
            if not head.startswith(_CODESTREAM):
                break
            return head[2:]
        pos += size
    raise BrokenImageError("jxl: no codestream in the container")


def probe(data: bytes) -> Header:
    bits = _Bits(codestream_head(data))
    small = bits.read(1)
    height = (1 + bits.read(5)) * 8 if small else bits.size()
    ratio = bits.read(3)
    if ratio:
        num, den = _RATIOS[ratio]
        width = height * num // den
    else:
        width = (1 + bits.read(5)) * 8 if small else bits.size()
    return Header(width, height)  # before orientation; the pixel count is what the limit needs


def decode(data: bytes) -> Decoded:
    try:
        arr = imagecodecs.jpegxl_decode(data, index=0, numthreads=1)  # the first frame of an animation
    except Exception as exc:  # libjxl's errors and anything a hostile stream triggers in the binding
        raise BrokenImageError(f"jxl: {type(exc).__name__}: {str(exc)[:200]}") from None
    if arr.ndim == 2:
        arr = arr[:, :, np.newaxis]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise BrokenImageError(f"jxl: unexpected pixel layout {arr.shape}")
    if arr.dtype == np.uint8:
        depth = 8
    elif arr.dtype == np.uint16:
        depth = 16
    else:  # float (HDR or high-precision): the 0..1 range scaled to 16 bits
        arr = (np.clip(arr.astype(np.float32), 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
        depth = 16
    height, width, bands = arr.shape
    return Decoded(np.ascontiguousarray(arr), int(width), int(height), int(bands), depth)


def distance(quality: int) -> float:
    """libjxl's JxlEncoderDistanceFromQuality: the butteraugli distance a libjpeg-like quality means."""
    if quality >= 100:
        return 0.0
    if quality >= 30:
        return 0.1 + (100 - quality) * 0.09
    return 53.0 / 3000.0 * quality * quality - 23.0 / 20.0 * quality + 25.0


def encode(pixels: Any, width: int, height: int, bands: int, depth: int, quality: int, effort: int) -> bytes:
    """Interleaved 8/16-bit grey or RGB (± alpha) → a bare JPEG XL codestream."""
    arr = np.frombuffer(pixels, dtype=np.uint16 if depth > 8 else np.uint8).reshape(height, width, bands)
    if bands == 1:
        arr = arr[:, :, 0]
    lossless = quality >= 100
    return bytes(
        imagecodecs.jpegxl_encode(
            arr,
            effort=effort,
            distance=None if lossless else distance(quality),
            lossless=lossless,
            numthreads=1,
        )
    )
