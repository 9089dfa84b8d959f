"""Which sources stream: decided from their first bytes, on real encoder output."""

from __future__ import annotations

from typing import Any

import pytest
import pyvips

from imgproxy_py.processing.streamed import MAX_HEAD, Head, head_status
from tests.support import fixture_path


def _image() -> Any:
    return pyvips.Image.black(64, 48, bands=3).draw_rect([200, 10, 10], 8, 8, 20, 20, fill=True)


def _first_complete(data: bytes) -> tuple[Head, int]:
    """The status at the first prefix that is not MORE, and that prefix's length (in steps of 512 past 4 KiB)."""
    for n in [*range(1, 4096), *range(4096, len(data) + 512, 512)]:
        n = min(n, len(data))
        status = head_status(data[:n])
        if status is not Head.MORE:
            return status, n
    return Head.MORE, len(data)


@pytest.mark.parametrize(
    ("save", "expected"),
    [
        (lambda img: img.jpegsave_buffer(), Head.STREAM),
        (lambda img: img.jpegsave_buffer(interlace=True), Head.BUFFER),  # progressive
        (lambda img: img.pngsave_buffer(), Head.STREAM),
        (lambda img: img.pngsave_buffer(interlace=True), Head.BUFFER),  # Adam7
        (lambda img: img.webpsave_buffer(), Head.BUFFER),
        (lambda img: img.gifsave_buffer(), Head.BUFFER),
        (lambda img: img.tiffsave_buffer(), Head.BUFFER),
    ],
)
def test_status_from_the_first_bytes(save: Any, expected: Head) -> None:
    data = save(_image())
    status, used = _first_complete(data)
    assert status is expected
    if expected is Head.STREAM:
        assert used < len(data)  # decided before the pixel data arrived


@pytest.mark.parametrize("name", ["2569067123_aca715a2ee_o.jpg", "flowers.jpeg", "Landscape_6.jpg"])
def test_camera_jpegs_stream_once_their_header_is_in(name: str) -> None:
    data = fixture_path(name).read_bytes()
    status, used = _first_complete(data)
    assert status is Head.STREAM
    assert used < 32 * 1024 < len(data)  # a header (EXIF, tables), not the file


def test_a_jpeg_whose_icc_profile_outgrows_the_head_limit_is_buffered() -> None:
    data = fixture_path("Channel_digital_image_CMYK_color.jpg").read_bytes()  # ~560 KB of APP2 ICC
    assert _first_complete(data) == (Head.BUFFER, MAX_HEAD)


def test_a_header_that_never_ends_is_buffered() -> None:
    # an APP segment chain longer than the head limit: never a complete header within it
    segment = b"\xff\xe1\xff\xff" + bytes(0xFFFD)
    data = b"\xff\xd8" + segment * (MAX_HEAD // len(segment) + 2)
    assert head_status(data[: MAX_HEAD - 10]) is Head.MORE
    assert head_status(data[:MAX_HEAD]) is Head.BUFFER


def test_garbage_after_the_jpeg_signature_is_buffered_not_streamed() -> None:
    assert head_status(b"\xff\xd8\xff\xe0" + bytes(4096)) is Head.BUFFER
