"""scan_count_bound: single-scan JPEGs cost a header walk; every other kind is counted."""

from __future__ import annotations

import pytest
import pyvips

from imgproxy_py.processing.jpeg_scans import scan_count_bound
from tests.security import hostile
from tests.support import fixture_path


def _jpeg(**options: object) -> bytes:
    img = pyvips.Image.black(64, 48, bands=3) + 128
    return bytes(img.jpegsave_buffer(**options))


def test_baseline_files_are_one_scan_whatever_their_metadata_holds() -> None:
    assert scan_count_bound(_jpeg()) == 1
    # an EXIF thumbnail carries SOS markers of its own; they are never decoded as scans
    data = fixture_path("320x240.jpg").read_bytes()
    assert data.count(b"\xff\xda") > 1 and scan_count_bound(data) == 1


def test_progressive_files_are_counted() -> None:
    data = _jpeg(interlace=True)
    assert scan_count_bound(data) == data.count(b"\xff\xda") > 1
    assert scan_count_bound(hostile.many_scan_jpeg(64, 64)) > 100


@pytest.mark.parametrize("data", [b"", b"\xff\xd8", b"\xff\xd8\xff\xc0\x00", b"\xff\xd8garbage\xff\xda"])
def test_malformed_headers_fall_back_to_counting(data: bytes) -> None:
    assert scan_count_bound(data) == data.count(b"\xff\xda")


def test_libjpeg_ignores_scans_after_a_complete_single_scan_image() -> None:
    """Why counting can stop at the header: libjpeg ignores what follows a complete single scan."""
    img = pyvips.Image.black(1000, 1000, bands=3) + 128
    data = bytes(img.jpegsave_buffer())
    scan = data[data.index(b"\xff\xda") : -2]
    padded = data[:-2] + scan * 300 + b"\xff\xd9"
    assert scan_count_bound(padded) == 1 and padded.count(b"\xff\xda") == 301
    out = pyvips.Image.new_from_buffer(padded, "", fail_on="truncated")
    assert out.avg() == pytest.approx(img.avg(), abs=1)  # decoded once, correctly
