"""HEIC/HEIF (HEVC) in and out through pillow-heif: libheif with libde265 (decoder) and x265 (encoder).

The libheif inside pyvips[binary] has neither, so an iPhone photo would be "broken" there.
``open_heif`` parses the container only: the primary image's size (after the container's
rotation and mirroring, which libheif applies when decoding) is known before any pixel is
decoded. 10-bit images are decoded to 16 bits per sample. AV1-coded HEIF (AVIF) stays with
libvips, which has an AV1 decoder; ``is_hevc`` tells them apart.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np
import pillow_heif

from imgproxy_py.errors import BrokenImageError
from imgproxy_py.processing.codecs import Decoded, Header

pillow_heif.options.DECODE_THREADS = 1  # one worker thread per image, like VIPS_CONCURRENCY=1
pillow_heif.options.DEPTH_IMAGES = False  # never decoded: do not even index them
pillow_heif.options.AUX_IMAGES = False

# x265 presets from fastest to slowest, indexed by imgproxy's IMGPROXY_AVIF_SPEED (9 = fastest),
# which imgproxy also applies to HEIC (both go through libvips' heifsave there).
_PRESETS = ("placebo", "veryslow", "slower", "slow", "medium", "fast", "faster", "veryfast", "superfast", "ultrafast")


def is_hevc(data: bytes) -> bool:
    """The file's ``meta`` box declares an HEVC configuration (``hvcC``): libheif here decodes it."""
    pos, end = 0, min(len(data), 1 << 24)
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1 and pos + 16 <= end:
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header:
            return False
        if kind == b"meta":
            return b"hvcC" in data[pos + header : min(pos + size, end)]
        pos += size
    return False


def _open(data: bytes) -> Any:
    try:
        return pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
    except Exception as exc:  # libheif reports a hostile container in several exception types
        raise BrokenImageError(f"heif: {type(exc).__name__}: {str(exc)[:200]}") from None


def probe(data: bytes) -> Header:
    width, height = _open(data).size  # the primary image
    return Header(int(width), int(height))


_MODES = {"L": (1, 8), "LA": (2, 8), "RGB": (3, 8), "RGBA": (4, 8)}


def decode(data: bytes, thumbnail: bool = False) -> Decoded:
    """The primary image, or with ``thumbnail`` its largest embedded thumbnail when it has one."""
    heif = _open(data)
    primary = heif
    try:
        thumbnails = heif[heif.primary_index].info.get("thumbnails") or [] if thumbnail else []
        if thumbnails:
            largest = max(range(len(thumbnails)), key=lambda i: int(thumbnails[i]))
            heif = primary[primary.primary_index].get_thumbnail(largest)
        mode = str(heif.mode)
        base, _, deep = mode.partition(";")
        bands, depth = _MODES.get(base, (0, 8))
        if not bands:
            raise ValueError(f"unexpected pixel layout {mode}")
        if deep:
            depth = 16
        width, height = (int(v) for v in heif.size)
        raw = heif.data  # decodes the primary image (HEVC) here
        stride = int(heif.stride)
    except BrokenImageError:
        raise
    except Exception as exc:  # a corrupt bitstream fails inside libde265/libheif
        raise BrokenImageError(f"heif: {type(exc).__name__}: {str(exc)[:200]}") from None
    dtype = np.uint16 if depth == 16 else np.uint8
    row = width * bands
    pixels = np.frombuffer(raw, dtype=dtype)
    if stride != row * pixels.itemsize:  # rows padded for alignment: drop the padding
        pixels = np.ascontiguousarray(pixels.reshape(height, stride // pixels.itemsize)[:, :row])
    info = primary.info  # metadata and profile belong to the image (a thumbnail is a scaled copy)
    return Decoded(
        pixels,
        width,
        height,
        bands,
        depth,
        icc=_blob(info.get("icc_profile")),
        exif=_blob(info.get("exif")),
        xmp=_blob(info.get("xmp")),
        bits=int(info.get("bit_depth") or 0),
        orientation=1,  # libheif applied the container's irot/imir; the EXIF tag is informational
    )


def _blob(value: Any) -> bytes | None:
    return bytes(value) if value else None


def encode(pixels: Any, width: int, height: int, bands: int, depth: int, quality: int, speed: int) -> bytes:
    """8- or 16-bit RGB(A) pixels → HEIC (16-bit input is stored as 10-bit)."""
    mode = ("RGBA" if bands == 4 else "RGB") + (";16" if depth > 8 else "")
    heif = pillow_heif.from_bytes(mode, (width, height), pixels)
    out = io.BytesIO()
    preset = _PRESETS[max(0, min(len(_PRESETS) - 1, speed))]
    heif.save(out, quality=quality, enc_params={"preset": preset})
    return out.getvalue()
