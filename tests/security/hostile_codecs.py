"""Hostile HEIC, JPEG XL, BMP and video files for the battery in hostile.py.

Valid samples are made by the codec libraries (tests/codec_samples.py) from a fixture photo,
then truncated or given headers that lie about their size, palette or duration. Each case has
one right answer; random bit flips of these encoders' output (whose bytes may change with a
library update) are left to the fuzz harness (benchmarks/fuzz.py), which seeds them too.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import av

from benchmarks.codec_seeds import encode_clip
from imgproxy_py.processing import vips
from tests import codec_samples as samples
from tests.support import fixture_path


def _photo() -> Any:
    return vips.Image.new_from_file(str(fixture_path("320x240.jpg"))).thumbnail_image(96).copy_memory()


def with_box_values(data: bytes, box: bytes, offset: int, fmt: str, values: tuple[int, ...]) -> bytes:
    """Overwrite fields ``offset`` bytes into every ``box`` payload (ISOBMFF): size and duration lies."""
    out = bytearray(data)
    start = 0
    while (found := out.find(box, start)) >= 0:
        struct.pack_into(fmt, out, found + 4 + offset, *values)
        start = found + 4
    return bytes(out)


def jxl_claiming(width: int, height: int) -> bytes:
    """A bare JPEG XL codestream whose SizeHeader claims ``width``×``height``, and nothing after it."""
    bits: list[int] = []

    def put(value: int, n: int) -> None:
        bits.extend((value >> i) & 1 for i in range(n))

    put(0, 1)  # not a multiple-of-8 "small" size
    put(3, 2)  # U32 selector: 1 + u(30)
    put(height - 1, 30)
    put(0, 3)  # no aspect ratio: the width follows
    put(3, 2)
    put(width - 1, 30)
    bits.extend([0] * (-len(bits) % 8))
    body = bytes(sum(bit << i for i, bit in enumerate(bits[k : k + 8])) for k in range(0, len(bits), 8))
    return b"\xff\x0a" + body + bytes(64)


def clip(container: str = "mp4", codec: str = "libx264", frames: int = 10, size: tuple[int, int] = (64, 48)) -> bytes:
    def flat() -> Iterator[av.VideoFrame]:
        for i in range(frames):
            frame = av.VideoFrame(size[0], size[1], "yuv420p")  # no RGB conversion: fast even at 59 MP
            for plane in frame.planes:
                plane.update(bytes([(i * 20 + 16) % 256]) * plane.buffer_size)
            yield frame

    options = {"preset": "ultrafast"} if codec == "libx264" else {}
    return encode_clip(flat(), size, container, codec, rate=10, options=options)


def cases() -> Iterator[tuple[str, bytes, int, str]]:
    """(file name, data, status, why a 200 is right)."""
    photo = _photo()

    heic = samples.heic(photo)
    yield "valid.heic", heic, 200, "a valid HEIC (HEVC): the control case"
    for cut in (16, 40, 300, len(heic) // 2, len(heic) - 10):
        yield f"truncated-heic-{cut}.heic", heic[:cut], 422, ""
    yield "ispe-60000.heic", with_box_values(heic, b"ispe", 4, ">II", (60000, 60000)), 422, ""
    yield "ispe-zero.heic", with_box_values(heic, b"ispe", 4, ">II", (0, 0)), 422, ""
    # An HEVC HEIF branded AVIF goes to libvips, which has no HEVC decoder: 422, not a crash.
    yield "hvcc-heic-as-avif.avif", heic.replace(b"heic", b"avif", 1), 422, ""

    jxl = samples.jxl(photo)
    yield "valid.jxl", jxl, 200, "a valid JPEG XL: the control case"
    for cut in (2, 5, 40, len(jxl) // 2, len(jxl) - 4):
        yield f"truncated-jxl-{cut}.jxl", jxl[:cut], 422, ""
    yield "size-60000.jxl", jxl_claiming(60000, 60000), 422, ""
    yield "size-1x1000000000.jxl", jxl_claiming(1, 1_000_000_000), 422, ""
    container = samples.jxl(photo, container=True)
    yield "container-truncated.jxl", container[:60], 422, ""
    yield "container-no-codestream.jxl", container[:32] + b"\x00\x00\x00\x10junk" + bytes(8), 422, ""

    bmp = samples.pillow_bmp(photo, "RGB")
    yield "valid.bmp", bmp, 200, "a valid 24-bit BMP: the control case"
    for cut in (2, 14, 30, 60, len(bmp) // 2):
        yield f"truncated-bmp-{cut}.bmp", bmp[:cut], 422, ""
    yield "bmp-60000.bmp", samples.raw_bmp(60000, 60000, 24, bytes(64)), 422, ""
    yield "bmp-top-down-60000.bmp", samples.raw_bmp(60000, -60000, 24, bytes(64)), 422, ""
    yield "bmp-wide.bmp", samples.raw_bmp(400000, 100, 24, bytes(64)), 422, ""
    yield "bmp-bits-7.bmp", samples.raw_bmp(16, 16, 7, bytes(1024)), 422, ""
    palette_lie = bytearray(samples.bmp_rle8(16, 16))
    struct.pack_into("<I", palette_lie, 46, 2**31)  # biClrUsed: two thousand million colours
    yield "bmp-palette-lie.bmp", bytes(palette_lie), 422, ""  # Pillow refuses the palette size
    runaway = samples.raw_bmp(16, 16, 8, bytes([255, 7] * 2000), palette=samples.grey_palette(256), compression=1)
    yield "bmp-rle-overflow.bmp", runaway, 422, ""  # runs past the end of the image: not enough data
    yield (
        "bmp-rle-bad-delta.bmp",
        samples.raw_bmp(16, 16, 8, b"\x00\x02\xff\xff" * 8, palette=samples.grey_palette(256), compression=1),
        200,
        "RLE delta moves past the image end the bitmap in Pillow's decoder: a valid, blank image",
    )

    mp4 = clip()
    yield "valid.mp4", mp4, 200, "a valid H.264 MP4 (video stills on): the control case"
    for cut in (12, 100, len(mp4) // 3, len(mp4) // 2):
        yield f"truncated-mp4-{cut}.mp4", mp4[:cut], 422, ""  # the muxer writes moov last: every cut loses it
    # Durations claimed in the movie and media headers: days, not the clip's second.
    long_claim = with_box_values(mp4, b"mvhd", 16, ">I", (0xFFFFFFF0,))
    long_claim = with_box_values(long_claim, b"mdhd", 16, ">I", (0xFFFFFFF0,))
    yield "duration-lie.mp4", long_claim, 200, "FFmpeg takes the duration from the sample table, not the headers"
    webm = clip("webm", "libvpx-vp9", frames=5)
    yield "valid.webm", webm, 200, "a valid VP9 WebM (video stills on): the control case"
    yield "truncated.webm", webm[:40], 422, ""  # inside the EBML and segment headers
    yield "stream-7680x7680.mp4", clip(frames=1, size=(7680, 7680)), 422, ""  # 59 MP, refused from the header
    yield "ffv1.mkv", clip("matroska", "ffv1", frames=3, size=(32, 32)), 422, ""
    yield "hls.mp4", b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nhttp://127.0.0.1:9/a.ts\n#EXT-X-ENDLIST\n", 422, ""
    yield "concat.mkv", b"ffconcat version 1.0\nfile 'file:/etc/passwd'\n", 422, ""
    dref = mp4.replace(b"ftypisom", b"ftypqt  ", 1).replace(b"url ", b"alis", 1)
    yield (
        "mov-dref.mov",
        dref,
        200,
        "the data reference is never followed (enable_drefs off): samples come from the file",
    )
