"""Seed files for the formats no shared fixture has (HEIC, JPEG XL, BMP, video), made on the spot.

The fuzzer (benchmarks/fuzz.py) mutates them like the fixture images; the benchmark
(benchmarks/codecs.py) times them. They come from one fixture photo, encoded by the same
libraries the server decodes them with (pillow-heif, imagecodecs, Pillow, PyAV).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import Any

import av
import imagecodecs
import numpy as np
import pillow_heif
from PIL import Image


def _rgb(photo: bytes, width: int) -> Any:
    img = Image.open(io.BytesIO(photo)).convert("RGB")
    img.thumbnail((width, width))
    return img


def heic(photo: bytes, width: int = 256, ten_bit: bool = False, quality: int = 80) -> bytes:
    img = _rgb(photo, width)
    if ten_bit:
        arr = np.asarray(img).astype(np.uint16) * 257
        heif = pillow_heif.from_bytes("RGB;16", img.size, arr.tobytes())
    else:
        heif = pillow_heif.from_pillow(img)
    out = io.BytesIO()
    heif.save(out, quality=quality, enc_params={"preset": "superfast"})
    return out.getvalue()


def jxl(photo: bytes, width: int = 256, container: bool = False) -> bytes:
    arr = np.asarray(_rgb(photo, width))
    return bytes(imagecodecs.jpegxl_encode(arr, distance=1.0, effort=3, usecontainer=container))


def bmp(photo: bytes, mode: str, width: int = 128) -> bytes:
    img = _rgb(photo, width)
    img = img.convert("P", palette=Image.Palette.ADAPTIVE) if mode == "P" else img.convert(mode)
    out = io.BytesIO()
    img.save(out, format="BMP")
    return out.getvalue()


def bmp_rle8(width: int = 64, height: int = 32) -> bytes:
    half = width // 2
    rows = b"".join(bytes([half, y * 8 % 256, width - half, 255 - y * 8 % 256, 0, 0]) for y in range(height))
    data = rows + b"\x00\x01"
    palette = b"".join(bytes([v, v, v, 0]) for v in range(256))
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(data), 2835, 2835, 256, 0)
    offset = 14 + 40 + len(palette)
    return struct.pack("<2sIHHI", b"BM", offset + len(data), 0, 0, offset) + info + palette + data


def encode_clip(
    frames: Iterable[av.VideoFrame],
    size: tuple[int, int],
    container: str = "mp4",
    codec: str = "libx264",
    rate: int = 10,
    gop: int | None = None,
    options: dict[str, str] | None = None,
) -> bytes:
    """Mux these frames (numbered 0, 1, … at ``rate`` fps) into a yuv420p clip.

    The one encoding loop shared by the seeds below and the tests that make their own clips.
    """
    out = io.BytesIO()
    with av.open(out, mode="w", format=container) as box:
        stream: Any = box.add_stream(codec, rate=rate, options=options or {})  # a video stream; stubs: a union
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if gop is not None:
            stream.codec_context.gop_size = gop
        stream.codec_context.time_base = Fraction(1, rate)
        for i, frame in enumerate(frames):
            frame.pts = i
            for packet in stream.encode(frame):
                box.mux(packet)
        for packet in stream.encode():
            box.mux(packet)
    return out.getvalue()


def clip(photo: bytes, container: str = "mp4", codec: str = "libx264", frames: int = 20, width: int = 160) -> bytes:
    """A short clip panning over the photo (10 fps, keyframe every 5 frames)."""
    base = np.asarray(_rgb(photo, width * 2))
    height = min(base.shape[0], width * 9 // 16) // 2 * 2

    def pan() -> Iterator[av.VideoFrame]:
        for i in range(frames):
            x = min(i * 4, base.shape[1] - width)
            yield av.VideoFrame.from_ndarray(np.ascontiguousarray(base[:height, x : x + width]), format="rgb24")

    return encode_clip(pan(), (width, height), container, codec, rate=10, gop=5)


def seeds(photo: bytes) -> dict[str, bytes]:
    """Name → bytes of every generated seed (names carry the extension the server would see)."""
    return {
        "gen-photo.heic": heic(photo),
        "gen-photo-10bit.heic": heic(photo, ten_bit=True),
        "gen-photo.jxl": jxl(photo),
        "gen-photo-container.jxl": jxl(photo, container=True),
        "gen-photo-24.bmp": bmp(photo, "RGB"),
        "gen-photo-8.bmp": bmp(photo, "P"),
        "gen-photo-1.bmp": bmp(photo, "1"),
        "gen-rle8.bmp": bmp_rle8(),
        "gen-clip.mp4": clip(photo),
        "gen-clip.webm": clip(photo, "webm", "libvpx-vp9", frames=10),
    }
