"""Limits and bad input: decompression bombs, oversized sources, broken and non-image data."""

from __future__ import annotations

import random
import time

import pytest

from imgproxy_py.errors import (
    BrokenImageError,
    ImageError,
    InvalidImageError,
    RequestTimeoutError,
)
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.processing import Job, Limits, ProcessingConfig, Processor
from tests.processing.process_helpers import fixture_bytes, options, run, run_image

FAST = 0.5  # seconds: a header check, no pixels decoded


def test_decompression_bomb_is_refused_from_the_header() -> None:
    data = fixture_bytes("65536-uint32-limit.png")  # 512 KB that decodes to 65536×65536
    start = time.monotonic()
    with pytest.raises(InvalidImageError) as info:
        run(data, "rs:fit:100:100")
    assert time.monotonic() - start < FAST
    assert info.value.status_code == 422
    assert info.value.public_message == "Source image resolution is too big"  # imgproxy's text


def test_decompression_bomb_is_refused_under_a_raised_limit() -> None:
    # 65536² = 4.3 GP: over any sane limit, e.g. the 300 MP that admits giant-image.jpg.
    data = fixture_bytes("65536-uint32-limit.png")
    start = time.monotonic()
    with pytest.raises(InvalidImageError):
        run(data, "rs:fit:100:100", ProcessingConfig(limits=Limits(max_src_resolution=300_000_000)))
    assert time.monotonic() - start < FAST


def test_giant_image_over_the_default_limit() -> None:
    data = fixture_bytes("giant-image.jpg")  # 20000×14000 = 280 MP > 50 MP
    start = time.monotonic()
    with pytest.raises(InvalidImageError):
        run(data, "rs:fit:200:200")
    assert time.monotonic() - start < FAST


def test_giant_image_under_a_bigger_limit() -> None:
    data = fixture_bytes("giant-image.jpg")
    result, out = run_image(data, "rs:fit:200:200", ProcessingConfig(limits=Limits(max_src_resolution=300_000_000)))
    # fit: wshrink = 20000/200 = 100 > hshrink = 70 → 200 × Round(140) (§2.2)
    assert (out.width, out.height) == (200, 140)
    assert (result.source_width, result.source_height) == (20000, 14000)
    assert result.format is ImageFormat.JPEG
    assert out.bands == 1


def test_resolution_limit_is_inclusive() -> None:
    # 600×450 = 270000 px: allowed at exactly that limit, refused one pixel below.
    data = fixture_bytes("Landscape_1.jpg")
    assert run(data, "rs:fit:100:100", ProcessingConfig(limits=Limits(max_src_resolution=270_000))).width == 100
    with pytest.raises(InvalidImageError):
        run(data, "rs:fit:100:100", ProcessingConfig(limits=Limits(max_src_resolution=269_999)))


@pytest.mark.parametrize("name", ["truncated.jpg", "truncated.png", "corrupt-header.jpg"])
@pytest.mark.parametrize("opts", ["", "rs:fit:100:100", "rs:fill:50:50/f:png"])
def test_broken_images_are_422(name: str, opts: str) -> None:
    with pytest.raises(ImageError) as info:
        run(fixture_bytes(name), opts)
    assert info.value.status_code == 422


def test_broken_image_detail_is_not_the_public_message() -> None:
    with pytest.raises(BrokenImageError) as info:
        run(fixture_bytes("truncated.jpg"), "rs:fit:100:100")
    assert "libvips" not in info.value.public_message


@pytest.mark.parametrize(
    "data",
    [
        b"",
        random.Random(20240601).randbytes(4096),
        b"<html><body>not an image</body></html>",
        b"\x89PNG\r\n\x1a\n",  # a PNG signature and nothing else
    ],
    ids=["empty", "random", "html", "png-signature-only"],
)
def test_non_images_are_invalid(data: bytes) -> None:
    with pytest.raises(ImageError) as info:
        run(data, "rs:fit:100:100")
    assert info.value.status_code == 422
    if not data.startswith(b"\x89PNG"):
        assert isinstance(info.value, InvalidImageError)


def test_unsupported_source_format_is_invalid() -> None:
    # ICO is sniffed but not loadable here.
    with pytest.raises(InvalidImageError):
        run(b"\x00\x00\x01\x00" + b"\x00" * 64, "")


def test_past_deadline_stops_processing() -> None:
    with pytest.raises(RequestTimeoutError):
        Processor(ProcessingConfig()).process(
            Job(fixture_bytes("Landscape_1.jpg"), options("rs:fit:100:100"), deadline=time.monotonic() - 1)
        )
