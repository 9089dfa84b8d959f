"""processing/describe.py: the facts and colour summaries /info reports, on the real fixtures."""

from __future__ import annotations

import itertools
import json
import math
import time
from typing import Any

import blurhash
import pytest

from imgproxy_py.errors import BrokenImageError, InvalidImageError
from imgproxy_py.imagetype import ImageFormat, sniff
from imgproxy_py.processing import vips
from imgproxy_py.processing.describe import (
    _small_srgb,
    blurhash_encode,
    hamming,
    image_info,
    info_json,
    phash,
)
from tests.processing.process_helpers import fixture_bytes
from tests.support import mean_abs_diff

LIMIT = 50_000_000


def info(name: str) -> dict[str, Any]:
    return image_info(fixture_bytes(name), LIMIT)


def rgb(hex_colour: str) -> tuple[int, int, int]:
    value = int(hex_colour.lstrip("#"), 16)
    return value >> 16, (value >> 8) & 255, value & 255


def close(a: str, b: tuple[float, float, float], tolerance: float) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(rgb(a), b, strict=True))


# --- header facts -------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_reported_and_applied_to_the_size(orientation: int) -> None:
    """Landscape_N is the same 600×450 picture stored with EXIF orientation N."""
    result = info(f"Landscape_{orientation}.jpg")
    assert result["orientation"] == orientation
    assert (result["width"], result["height"]) == (600, 450)
    portrait = info(f"Portrait_{orientation}.jpg")
    assert (portrait["width"], portrait["height"]) == (450, 600)


def test_sideways_jpeg_swaps_width_and_height() -> None:
    stored = vips.open_source(fixture_bytes("Landscape_6.jpg"))
    assert (stored.width, stored.height) == (450, 600)  # as stored, on its side
    result = info("Landscape_6.jpg")
    assert (result["width"], result["height"], result["orientation"]) == (600, 450, 6)
    # The colour summaries see the picture upright too: the same hash as the upright original.
    assert hamming(result["phash"], info("Landscape_1.jpg")["phash"]) <= 4


def test_jpeg_facts() -> None:
    data = fixture_bytes("2569067123_aca715a2ee_o.jpg")
    result = image_info(data, LIMIT)
    assert result["format"] == "jpeg"
    assert result["mime_type"] == "image/jpeg"
    assert result["file_size"] == len(data)
    assert (result["width"], result["height"]) == (2725, 2225)
    assert result["pages"] == 1 and result["animation"] is None
    assert (result["alpha"], result["colorspace"], result["bit_depth"], result["bands"]) == (False, "srgb", 8, 3)
    assert result["metadata"] == {"exif": False, "icc": False, "xmp": False, "iptc": False}


def test_cmyk_jpeg() -> None:
    result = info("Channel_digital_image_CMYK_color.jpg")
    assert (result["colorspace"], result["bands"], result["alpha"]) == ("cmyk", 4, False)
    assert result["metadata"] == {"exif": True, "icc": True, "xmp": True, "iptc": True}
    # The colours are those of the picture shown through its profile, not raw ink values.
    reference = vips.open_source(fixture_bytes("Channel_digital_image_CMYK_color.jpg")).icc_transform(
        "srgb", embedded=True
    )
    assert close(result["average_color"], tuple(reference[i].avg() for i in range(3)), 3)


def test_alpha_png() -> None:
    result = info("with-alpha.png")
    assert (result["format"], result["alpha"], result["bands"], result["bit_depth"]) == ("png", True, 4, 8)
    img = vips.open_source(fixture_bytes("with-alpha.png"))
    alpha = img[3].cast("float")
    expected = tuple((img[i].cast("float") * alpha).avg() / alpha.avg() for i in range(3))
    assert close(result["average_color"], expected, 2)
    assert len(result["dominant_colors"]) == 1  # one flat colour
    assert result["dominant_colors"][0]["share"] == 1.0


def test_fully_transparent_image_has_no_colour() -> None:
    result = info("full-transparent.png")
    assert result["alpha"] is True
    assert result["average_color"] is None
    assert result["dominant_colors"] == []


def test_16_bit_grey_with_alpha() -> None:
    result = info("16-bit-grey-alpha.png")
    assert (result["colorspace"], result["bit_depth"], result["bands"], result["alpha"]) == ("grey16", 16, 2, True)


def test_one_bit_tiff() -> None:
    result = info("G31D.TIF")
    assert (result["format"], result["bit_depth"], result["colorspace"]) == ("tiff", 1, "b-w")


@pytest.mark.parametrize(
    ("name", "frames", "loop"),
    [("animated-loop-3.gif", 10, 3), ("animated-loop-3.webp", 10, 3), ("rotating-squares.gif", 30, 0)],
)
def test_animations(name: str, frames: int, loop: int) -> None:
    result = info(name)
    assert result["pages"] == frames
    animation = result["animation"]
    assert animation["frames"] == frames
    assert animation["loop"] == loop
    assert len(animation["delays"]) == frames
    assert all(isinstance(d, int) and d >= 0 for d in animation["delays"])
    first = vips.open_source(fixture_bytes(name))
    assert (result["width"], result["height"]) == (first.width, first.height)  # one frame, not the strip


def test_avif() -> None:
    result = info("sdr_cosmos12920_cicp1-13-6_yuv444_full_qp10.avif")
    assert (result["format"], result["mime_type"]) == ("avif", "image/avif")
    assert (result["width"], result["height"], result["bit_depth"], result["bands"]) == (2048, 858, 8, 3)


def test_svg() -> None:
    result = info("check.svg")
    assert (result["format"], result["mime_type"]) == ("svg", "image/svg+xml")
    assert (result["width"], result["height"], result["alpha"]) == (100, 100, True)
    assert result["average_color"] == "#008000"  # the green tick; the transparent rest does not count
    assert close(result["dominant_colors"][0]["color"], (0, 128, 0), 2)


def test_metadata_presence() -> None:
    assert info("concert.jpg")["metadata"] == {"exif": True, "icc": True, "xmp": False, "iptc": True}
    assert info("flowers.jpeg")["metadata"]["xmp"] is True


def test_info_json_is_compact_json() -> None:
    data = fixture_bytes("320x240.jpg")
    body = info_json(data, LIMIT)
    assert b" " not in body.split(b'"dominant_colors"')[0]
    assert json.loads(body) == image_info(data, LIMIT)


# --- limits and broken input --------------------------------------------------------------


def test_decompression_bomb_is_refused_from_the_header() -> None:
    started = time.monotonic()
    with pytest.raises(InvalidImageError):
        info("65536-uint32-limit.png")
    assert time.monotonic() - started < 2  # decoding it would take minutes and 16 GB


def test_resolution_limit_applies() -> None:
    with pytest.raises(InvalidImageError):
        info("giant-image.jpg")  # 280 MP
    assert image_info(fixture_bytes("320x240.jpg"), 320 * 240)["width"] == 320  # inclusive
    with pytest.raises(InvalidImageError):
        image_info(fixture_bytes("320x240.jpg"), 320 * 240 - 1)


@pytest.mark.parametrize("name", ["truncated.jpg", "truncated.png", "corrupt-header.jpg"])
def test_broken_images_are_422(name: str) -> None:
    with pytest.raises(BrokenImageError) as exc:
        info(name)
    assert exc.value.status_code == 422


@pytest.mark.parametrize("data", [b"", b"hello world", b"<html></html>", b"\x00" * 100])
def test_non_images_are_422(data: bytes) -> None:
    with pytest.raises(InvalidImageError) as exc:
        image_info(data, LIMIT)
    assert exc.value.status_code == 422


# --- dominant colours ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["2569067123_aca715a2ee_o.jpg", "flowers.jpeg", "Landscape_1.jpg", "trim-mc.png"])
def test_dominant_colours_are_ordered_shares(name: str) -> None:
    colours = info(name)["dominant_colors"]
    assert 1 <= len(colours) <= 5
    shares = [c["share"] for c in colours]
    assert shares == sorted(shares, reverse=True)
    assert sum(shares) <= 1.0 + 1e-9
    assert all(c["color"].startswith("#") and len(c["color"]) == 7 for c in colours)


# --- pHash --------------------------------------------------------------------------------

PHOTOS = [
    "2569067123_aca715a2ee_o.jpg",
    "Landscape_1.jpg",
    "320x240.jpg",
    "concert.jpg",
    "4.webp",
    "sdr_cosmos12920_cicp1-13-6_yuv444_full_qp10.avif",
    "Channel_digital_image_CMYK_color.jpg",
]


@pytest.mark.parametrize("name", PHOTOS)
def test_phash_survives_reencoding(name: str) -> None:
    data = fixture_bytes(name)
    original = image_info(data, LIMIT)["phash"]
    img = vips.open_source(data)
    for reencoded in (bytes(img.jpegsave_buffer(Q=90)), bytes(img.resize(0.5).pngsave_buffer())):
        assert hamming(original, image_info(reencoded, LIMIT)["phash"]) <= 4


def test_phash_tells_different_pictures_apart() -> None:
    hashes = {name: info(name)["phash"] for name in PHOTOS}
    assert all(len(h) == 16 and int(h, 16) >= 0 for h in hashes.values())
    for a, b in itertools.combinations(PHOTOS, 2):
        assert hamming(hashes[a], hashes[b]) >= 16, (a, b)


def test_phash_is_the_textbook_dct() -> None:
    """The separable low-frequency DCT equals a direct 2-D DCT-II of the 32×32 luma."""
    pixels = bytes((x * 7 + y * 3 + (x * y) % 11) % 256 for y in range(32) for x in range(32) for _ in range(3))
    luma = [float(pixels[i]) for i in range(0, len(pixels), 3)]  # grey pixels: luma is the value
    coeffs = []
    for u, v in itertools.product(range(8), range(8)):
        coeffs.append(
            sum(
                luma[y * 32 + x] * math.cos(math.pi * u * (2 * y + 1) / 64) * math.cos(math.pi * v * (2 * x + 1) / 64)
                for y in range(32)
                for x in range(32)
            )
        )
    median = sorted(coeffs)[31] / 2 + sorted(coeffs)[32] / 2
    expected = int("".join("1" if c > median else "0" for c in coeffs), 2)
    assert phash(pixels) == f"{expected:016x}"


# --- BlurHash -----------------------------------------------------------------------------


def _pixels(img: Any) -> list[list[list[int]]]:
    data = bytes(img.write_to_memory())
    return [
        [list(data[(y * img.width + x) * 3 : (y * img.width + x) * 3 + 3]) for x in range(img.width)]
        for y in range(img.height)
    ]


@pytest.mark.parametrize("name", ["flowers.jpeg", "Portrait_1.jpg", "with-alpha.png", "check.svg"])
def test_blurhash_matches_the_reference_implementation(name: str) -> None:
    """The same pixels give the same string as the `blurhash` package (Wolt's algorithm)."""
    data = fixture_bytes(name)
    small = _small_srgb(data, sniff(data) or ImageFormat.JPEG)
    if small.bands == 4:
        small = small.flatten(background=[255, 255, 255])
    tiny = small.thumbnail_image(32, height=32, size="down")
    cx, cy = (4, 3) if tiny.width >= tiny.height else (3, 4)
    ours = blurhash_encode(bytes(tiny.write_to_memory()), tiny.width, tiny.height, cx, cy)
    assert ours == blurhash.encode(_pixels(tiny), cx, cy)
    assert info(name)["blurhash"] == ours


def _decoded(hash_: str, width: int, height: int) -> Any:
    rows = blurhash.decode(hash_, width, height)
    flat = bytes(int(c) for row in rows for px in row for c in px)
    return vips.Image.new_from_memory(flat, width, height, 3, "uchar")


@pytest.mark.parametrize("name", ["2569067123_aca715a2ee_o.jpg", "Landscape_1.jpg", "flowers.jpeg", "4.webp"])
def test_blurhash_decodes_to_the_pictures_colour_layout(name: str) -> None:
    result = info(name)
    assert len(result["blurhash"]) == 4 + 2 * 4 * 3
    picture = vips.open_source(fixture_bytes(name)).autorot()
    decoded = _decoded(result["blurhash"], 40, 30)
    # Compared at 4×4, about the detail 4×3 components carry: close to its own picture, far from others.
    own = mean_abs_diff(decoded, picture, size=4)
    assert own < 20
    for other in ("concert.jpg", "check.svg", "sdr_cosmos12920_cicp1-13-6_yuv444_full_qp10.avif"):
        other_picture = vips.open_source(fixture_bytes(other))
        assert mean_abs_diff(decoded, other_picture, size=4) > own + 15, other


def test_portrait_images_get_more_vertical_components() -> None:
    assert blurhash.components(info("Portrait_1.jpg")["blurhash"]) == (3, 4)
    assert blurhash.components(info("Landscape_1.jpg")["blurhash"]) == (4, 3)
