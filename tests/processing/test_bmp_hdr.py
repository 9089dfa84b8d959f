"""BMP output (our own writer) and preserve_hdr (16 bits kept where the format stores them)."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from imgproxy_py.options.parser import Parser
from imgproxy_py.processing import Job, ProcessingConfig, Processor, vips
from imgproxy_py.settings import OptionSettings
from tests.support import fixture_path, mean_abs_diff

_parser = Parser(OptionSettings())


def run(name: str, options: str) -> tuple[bytes, Any]:
    vips.init()
    po = _parser.parse(f"/{options}/plain/local:///{name}").options
    result = Processor(ProcessingConfig()).process(Job(fixture_path(name).read_bytes(), po))
    return result.data, result


def read_bmp(data: bytes) -> Any:
    """An independent BMP reader: headers by the spec, pixels into a libvips image."""
    magic, size, _, _, offset = struct.unpack_from("<2sIHHI", data)
    assert magic == b"BM" and size == len(data)
    header_size, width, height, planes, bits, compression = struct.unpack_from("<IiiHHI", data, 14)
    assert planes == 1 and bits in (24, 32) and height > 0  # bottom-up rows
    assert compression == (3 if bits == 32 else 0)
    if bits == 32:
        masks = struct.unpack_from("<IIII", data, 14 + 40)
        assert masks == (0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000)
    bands = bits // 8
    row = (width * bands + 3) & ~3
    rows = [data[offset + y * row : offset + y * row + width * bands] for y in range(height)]
    pixels = b"".join(reversed(rows))
    img = vips.Image.new_from_memory(pixels, width, height, bands, "uchar")
    order = [2, 1, 0] + ([3] if bands == 4 else [])
    return img[order[0]].bandjoin([img[i] for i in order[1:]]).copy(interpretation="srgb")


@pytest.mark.parametrize(
    ("name", "size"), [("flowers.jpeg", (101, 57)), ("with-alpha.png", (101, 76)), ("concert.jpg", (101, 67))]
)
def test_bmp_matches_png_of_the_same_options(name: str, size: tuple[int, int]) -> None:
    bmp, result = run(name, "rs:fit:101:77/f:bmp")
    assert result.format.value == "bmp" and (result.width, result.height) == size
    decoded = read_bmp(bmp)
    png, _ = run(name, "rs:fit:101:77/f:png")
    reference = vips.open_source(png)
    assert (decoded.width, decoded.height) == size
    assert decoded.bands == (4 if reference.hasalpha() else 3)
    assert mean_abs_diff(decoded, reference.colourspace("srgb")) < 1.0


def test_preserve_hdr_keeps_16_bits_only_where_the_format_can() -> None:
    name = "16-bit-grey-alpha.png"
    for options, fmt in [
        ("ph:1/f:png", "ushort"),
        ("ph:1/f:tiff", "ushort"),
        ("ph:1/f:avif", "ushort"),
        ("f:png", "uchar"),
        ("ph:1/f:webp", "uchar"),
        ("ph:1/f:jpg", "uchar"),
    ]:
        data, _ = run(name, f"rs:fit:50:50/{options}")
        assert vips.open_source(data).format == fmt, options
    hdr, _ = run(name, "ph:1/rs:fit:50:50/f:png")
    plain, _ = run(name, "rs:fit:50:50/f:png")
    as_8_bit = vips.open_source(hdr).colourspace("b-w")
    assert mean_abs_diff(as_8_bit, vips.open_source(plain)) < 1.0  # the same picture, with more depth
    eight_bit, _ = run("flowers.jpeg", "ph:1/rs:fit:50:50/f:png")
    assert vips.open_source(eight_bit).format == "uchar"  # nothing to preserve in an 8-bit source
