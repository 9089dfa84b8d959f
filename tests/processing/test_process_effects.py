"""trim, padding, rotate, flip, background and the filters on real fixture images.

Sizes come from the geometry spec (§2.4, §3.2, §6-§8.4) and imgproxy's option docs;
pixels are compared with libvips operations on the same source (rot, flip, extract_area),
or measured (alpha, colour, amount of detail), never byte for byte.
"""

from __future__ import annotations

from typing import Any

import pytest

from imgproxy_py.imagetype import ImageFormat
from tests.processing.process_helpers import (
    BENCH_H,
    BENCH_W,
    alpha_at,
    benchmark,
    fixture_bytes,
    full_diff,
    run_image,
    source_image,
)
from tests.support import mean_abs_diff

TRIM = "trim-mc.png"  # 200×240, transparent but for text in the box (13, 44) 179×123
ALPHA = "with-alpha.png"  # 256×192, a flat colour (91, 0, 194) at alpha 168 everywhere
PHOTO = "Landscape_1.jpg"  # 600×450, EXIF orientation 1


def detail(img: Any) -> float:
    """Mean absolute difference from a blurred copy: high for sharp images, low for soft ones."""
    img = img.colourspace("b-w")[0].cast("float")
    return float((img - img.gaussblur(1.5)).abs().avg())


def uniform(img: Any) -> bool:
    """Every pixel equal (per band)."""
    return all(float(img[b].deviate()) < 0.01 for b in range(img.bands))


# --- trim (§8.2) ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opts", "size"),
    [
        ("t:10", (179, 123)),  # smart: the top-left pixel (transparent) is the border colour
        ("t:10:FF00FF", (179, 123)),  # transparency is flattened onto magenta first
        # equal_hor: margins 13 and 8 → both 8 → left 8, width 179+5; equal_ver: 44 and 73 → 44
        ("t:10::1:1", (184, 152)),
        ("t:10::1", (184, 123)),
        ("t:10:::1", (179, 152)),
        ("t:10:000000", (200, 240)),  # black is not the border: nothing to trim
    ],
)
def test_trim_box(opts: str, size: tuple[int, int]) -> None:
    _, out = run_image(fixture_bytes(TRIM), f"{opts}/f:png")
    assert (out.width, out.height) == size


def test_trimmed_pixels_are_the_sources() -> None:
    _, out = run_image(fixture_bytes(TRIM), "t:10/f:png")
    expected = source_image(TRIM).extract_area(13, 44, 179, 123)
    assert full_diff(out, expected) < 0.5


def test_geometry_is_recomputed_after_trim() -> None:
    # fit 179×123 into 100×100 → 100 × Round(123·100/179 = 68.7) = 100×69
    _, out = run_image(fixture_bytes(TRIM), "t:10/rs:fit:100:100/f:png")
    assert (out.width, out.height) == (100, 69)
    # a crop after trim is taken from the trimmed image (the north-west corner of the box)
    _, corner = run_image(fixture_bytes(TRIM), "t:10/c:60:40:nowe/f:png")
    assert full_diff(corner, source_image(TRIM).extract_area(13, 44, 60, 40)) < 0.5


def test_trim_of_a_jpeg_with_shrink_on_load_disabled() -> None:
    """Trim decodes the whole image, then the resize works on the trimmed size (no shrink-on-load)."""
    data = benchmark("jpeg")
    result, out = run_image(data, "t:5/rs:fit:300:300")
    assert result.format is ImageFormat.JPEG
    assert max(out.width, out.height) == 300
    assert out.width <= BENCH_W and out.height <= BENCH_H


# --- padding (§7) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opts", "size"),
    [
        ("pd:10", (276, 212)),
        ("pd:10:20", (296, 212)),  # top/bottom 10, right/left 20
        ("pd:10:20:30", (296, 232)),
        ("pd:1:2:3:4", (262, 196)),
    ],
)
def test_padding_size_in_css_order(opts: str, size: tuple[int, int]) -> None:
    _, out = run_image(fixture_bytes(ALPHA), f"{opts}/f:png")
    assert (out.width, out.height) == size


def test_padding_is_transparent_for_alpha_formats() -> None:
    _, out = run_image(fixture_bytes(ALPHA), "pd:1:2:3:4/f:png")
    assert alpha_at(out, 0, 0) == 0  # padding
    assert alpha_at(out, 3, 0) == 0  # left padding is 4 wide
    assert alpha_at(out, 4, 1) == 168  # the image starts at (4, 1)
    assert alpha_at(out, 261, 195) == 0
    assert alpha_at(out, 259, 192) == 168  # right padding 2, bottom 3


def test_padding_is_white_without_alpha_and_the_background_colour_with_bg() -> None:
    _, jpeg = run_image(fixture_bytes(PHOTO), "rs:fit:200:200/pd:10")
    assert (jpeg.width, jpeg.height) == (220, 170)
    assert min(jpeg.getpoint(2, 2)) > 245  # white
    _, red = run_image(fixture_bytes(ALPHA), "pd:10/bg:ff0000/f:png")
    assert not red.hasalpha()
    r, g, b = red.getpoint(2, 2)
    assert r > 250 and g < 5 and b < 5


@pytest.mark.parametrize(
    ("opts", "size"),
    [
        # §10: fit 300×300 → 300×225, dpr 2 → 600×450, padding ScaleToEven(10·2) per side
        ("rs:fit:300:300/pd:10:20/dpr:2", (680, 490)),
        # dpr 1.5: 450×338 (337.5 rounds away from zero); ScaleToEven(3·1.5 = 4.5) = 4, half to even
        ("rs:fit:300:300/pd:3/dpr:1.5", (458, 346)),
        # ScaleToEven(5·1.5 = 7.5) = 8
        ("rs:fit:300:300/pd:5/dpr:1.5", (466, 354)),
    ],
)
def test_padding_follows_the_dpr_with_half_to_even_rounding(opts: str, size: tuple[int, int]) -> None:
    _, out = run_image(fixture_bytes(PHOTO), opts)
    assert (out.width, out.height) == size


def test_padding_on_the_benchmark_matches_the_spec_table() -> None:
    _, out = run_image(benchmark("jpeg"), "rs:fit:300:300/pd:10:20")
    assert (out.width, out.height) == (340, 265)
    _, out = run_image(benchmark("jpeg"), "rs:fit:300:300/pd:10:20/dpr:2")
    assert (out.width, out.height) == (680, 530)


def test_padding_asks_for_a_format_with_alpha() -> None:
    """§9: padding expects transparency, so a TIFF source (not a preferred format) becomes PNG."""
    plain, _ = run_image(fixture_bytes("G31D.TIF"), "rs:fit:100:100")
    padded, out = run_image(fixture_bytes("G31D.TIF"), "rs:fit:100:100/pd:5")
    assert plain.format is ImageFormat.JPEG
    assert padded.format is ImageFormat.PNG and out.hasalpha()
    with_bg, _ = run_image(fixture_bytes("G31D.TIF"), "rs:fit:100:100/pd:5/bg:fff")
    assert with_bg.format is ImageFormat.JPEG  # a background removes the need for alpha


def test_filters_run_before_padding() -> None:
    """Pipeline order: a blur must not soften the padding edge."""
    _, out = run_image(fixture_bytes(ALPHA), "pd:10/bl:5/f:png")
    assert alpha_at(out, 9, 50) == 0
    assert alpha_at(out, 10, 50) == 168


# --- rotate and flip (§1, §3.2, §6) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("opts", "reference"),
    [
        ("rot:90", lambda img: img.rot90()),
        ("rot:180", lambda img: img.rot180()),
        ("rot:270", lambda img: img.rot270()),
        ("rot:-90", lambda img: img.rot270()),
        ("fl:1", lambda img: img.fliphor()),
        ("fl:0:1", lambda img: img.flipver()),
        ("fl:1:1", lambda img: img.rot180()),
        ("rot:90/fl:1", lambda img: img.rot90().fliphor()),  # rotation first, then the flips
    ],
)
def test_rotate_and_flip_match_libvips(opts: str, reference: Any) -> None:
    _, out = run_image(fixture_bytes(PHOTO), f"{opts}/f:png")
    assert full_diff(out, reference(source_image(PHOTO))) < 0.5


def test_user_rotation_comes_after_the_exif_orientation() -> None:
    """Landscape_6 stores the picture turned (EXIF 6): rot:90 turns the *upright* picture.

    Each Landscape_N is its own JPEG encode with its own profile, so "same picture" is a
    perceptual bound (see test_process_orientation), not pixel identity.
    """
    upright_turned = run_image(fixture_bytes(PHOTO), "rot:90")[1]
    upright = run_image(fixture_bytes(PHOTO), "")[1]
    out = run_image(fixture_bytes("Landscape_6.jpg"), "rot:90")[1]
    assert (out.width, out.height) == (450, 600)
    assert mean_abs_diff(out, upright_turned) < 5
    raw = run_image(fixture_bytes("Landscape_6.jpg"), "ar:0/rot:90")[1]  # the stored pixels turned back
    assert (raw.width, raw.height) == (600, 450)
    assert mean_abs_diff(raw, upright) < 5


@pytest.mark.parametrize(
    ("opts", "size"), [("rs:fit:300:200/rot:90", (163, 200)), ("rs:fill:300:200/rot:90", (300, 200))]
)
def test_rotation_swaps_the_axes_before_resizing(opts: str, size: tuple[int, int]) -> None:
    """§10 row ``rs:fit:300:200/rot:90``: the target applies to the rotated (2225×2725) image."""
    _, out = run_image(benchmark("jpeg"), opts)
    assert (out.width, out.height) == size


# Crops whose free space is a multiple of 4 on both axes, so the centring is exact both ways.
@pytest.mark.parametrize(
    "gravity", ["no", "so", "ea", "we", "noea", "nowe", "soea", "sowe", "ce", "no:20:8", "soea:12:4"]
)
@pytest.mark.parametrize(
    ("turn", "reference"),
    [
        ("rot:90", lambda img: img.rot90()),
        ("rot:180", lambda img: img.rot180()),
        ("rot:270", lambda img: img.rot270()),
        ("fl:1", lambda img: img.fliphor()),
        ("fl:0:1", lambda img: img.flipver()),
        ("rot:90/fl:1:1", lambda img: img.rot90().rot180()),
    ],
)
def test_crop_gravity_is_in_the_rotated_frame(gravity: str, turn: str, reference: Any) -> None:
    """Cropping happens before the turn; the gravity is transformed so the result is the same as turning first."""
    turned = reference(source_image(PHOTO))
    width, height = turned.width - 200, turned.height - 200
    _, out = run_image(fixture_bytes(PHOTO), f"c:{width}:{height}:{gravity}/{turn}/f:png")
    _, expected = run_image(_png(turned), f"c:{width}:{height}:{gravity}/f:png")
    assert (out.width, out.height) == (width, height)
    assert full_diff(out, expected) < 0.5


def _png(img: Any) -> bytes:
    return bytes(img.pngsave_buffer(compression=1))


# --- background and flatten (§8.4) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("opts", "fmt", "rgb"),
    [
        # (91, 0, 194) at alpha 168/255 over the background
        ("bg:ff0000", ImageFormat.PNG, (147, 0, 128)),  # bg flattens even for PNG
        ("bg:255:0:0", ImageFormat.PNG, (147, 0, 128)),
        ("bg:f00", ImageFormat.PNG, (147, 0, 128)),
        ("f:jpg", ImageFormat.JPEG, (147, 87, 215)),  # no bg and no alpha in JPEG: white
        ("bg:000/f:jpg", ImageFormat.JPEG, (60, 0, 128)),
    ],
)
def test_background_colour(opts: str, fmt: ImageFormat, rgb: tuple[int, int, int]) -> None:
    result, out = run_image(fixture_bytes(ALPHA), opts)
    assert result.format is fmt
    assert not out.hasalpha()
    got = out.getpoint(100, 100)
    assert all(abs(g - e) <= 3 for g, e in zip(got, rgb, strict=True)), got


def test_empty_background_keeps_alpha() -> None:
    result, out = run_image(fixture_bytes(ALPHA), "bg:ff0000/bg:")
    assert result.format is ImageFormat.PNG
    assert out.hasalpha() and alpha_at(out, 10, 10) == 168


def test_grey_image_stays_grey_on_a_grey_background_only() -> None:
    _, grey = run_image(fixture_bytes("16-bit-grey-alpha.png"), "bg:808080")
    _, colour = run_image(fixture_bytes("16-bit-grey-alpha.png"), "bg:ff0000")
    assert grey.bands == 1
    assert colour.bands == 3


# --- blur, sharpen, pixelate (applyFilters) ---------------------------------------------------


def test_blur_removes_detail_the_more_the_larger_sigma() -> None:
    plain = detail(run_image(fixture_bytes(PHOTO), "f:png")[1])
    soft = detail(run_image(fixture_bytes(PHOTO), "bl:1/f:png")[1])
    softer = detail(run_image(fixture_bytes(PHOTO), "bl:5/f:png")[1])
    assert softer < soft < plain * 0.7


def test_blur_is_a_gaussian_blur_of_the_result() -> None:
    _, out = run_image(fixture_bytes(PHOTO), "rs:fit:300:300/bl:3/f:png")
    _, plain = run_image(fixture_bytes(PHOTO), "rs:fit:300:300/f:png")
    assert full_diff(out, plain.gaussblur(3).cast("uchar")) < 1.0


def test_sharpen_adds_detail() -> None:
    plain = detail(run_image(fixture_bytes(PHOTO), "rs:fit:300:300/f:png")[1])
    sharp = detail(run_image(fixture_bytes(PHOTO), "rs:fit:300:300/sh:2/f:png")[1])
    assert sharp > plain * 1.1


def test_pixelate_makes_uniform_blocks() -> None:
    _, out = run_image(fixture_bytes(PHOTO), "pix:20/f:png")
    assert (out.width, out.height) == (600, 450)
    for bx, by in [(0, 0), (5, 3), (29, 21)]:  # block (29, 22) would be the partial bottom row
        assert uniform(out.extract_area(bx * 20, by * 20, 20, 20))
    # the last row is 10 px of a mirrored 20 px block: uniform as well
    assert uniform(out.extract_area(0, 440, 20, 10))
    assert not uniform(out.extract_area(10, 10, 20, 20))  # straddles four blocks
    assert detail(out) < detail(source_image(PHOTO)) * 0.5
    assert mean_abs_diff(out, source_image(PHOTO), size=30) < 8  # still the same picture at 1/20


def test_pixelate_larger_than_the_image_is_one_block() -> None:
    _, out = run_image(fixture_bytes(PHOTO), "rs:fit:50:50/pix:1000/f:png")
    assert uniform(out)


def test_filters_keep_alpha() -> None:
    _, out = run_image(fixture_bytes(TRIM), "bl:2/f:png")
    assert out.hasalpha()
    assert alpha_at(out, 0, 0) == 0
    _, px = run_image(fixture_bytes(ALPHA), "pix:8/f:png")
    assert alpha_at(px, 3, 3) == 168
