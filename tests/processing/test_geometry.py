"""Pure geometry, checked against imgproxy's (upstream processing/*.go, imgproxy v4).

The § marks number imgproxy's processing steps (upstream Go source, imgproxy v4):
§2 calcScale/calcSizes (processing/prepare.go), §3 crop and gravity (processing/crop.go,
calc_position.go), §4 shrink-on-load (processing/scale_on_load.go), §7 extend and
extend_aspect_ratio (processing/extend.go), §8 flatten/format limits, §9 format choice
(../shared/reference/imgproxy.md §3.3), §10 the worked examples for the 2725×2225 photo
that the tests below reproduce row by row.

The worked-examples table (§10) is reproduced with the spec's own size model: crop size →
calcScale → calcSizes → final = MinNonZero(ResultCrop, Scaled) per axis, then extend /
extend_aspect_ratio canvases (§7). Shrink-on-load factors use the §4 preshrink formula.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from imgproxy_py.options.model import Gravity, GravityType, ProcessingOptions
from imgproxy_py.options.parser import Parser
from imgproxy_py.processing.geometry import (
    Scales,
    Sizes,
    calc_position,
    calc_scale,
    calc_sizes,
    crop_size,
    jpeg_shrink_factor,
    min_non_zero,
    orientation_to_angle_flip,
    rotate_gravity,
    round_even,
    round_half_away,
    scale_even,
    scale_int,
    shrink_int,
)
from imgproxy_py.settings import OptionSettings

G = GravityType
PARSER = Parser(OptionSettings())
SRC_W, SRC_H = 2725, 2225


def po(opts: str) -> ProcessingOptions:
    prefix = f"/{opts}" if opts else ""
    return PARSER.parse(f"{prefix}/plain/http://example.com/a.jpg").options


# --------------------------------------------------------------------------------------------
# Rounding helpers (§0)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "away", "even"),
    [
        (0.0, 0, 0),
        (0.4, 0, 0),
        (0.5, 1, 0),
        (1.5, 2, 2),
        (2.5, 3, 2),
        (3.5, 4, 4),
        (2.49999, 2, 2),
        (1112.5, 1113, 1112),
        (-0.5, -1, 0),
        (-1.5, -2, -2),
        (-2.5, -3, -2),
        (-2.4, -2, -2),
    ],
)
def test_rounding_modes(x: float, away: int, even: int) -> None:
    assert round_half_away(x) == away
    assert round_even(x) == even


@pytest.mark.parametrize(
    ("a", "s", "scaled", "scaled_even"),
    [(0, 0.5, 0, 0), (0, 100.0, 0, 0), (3, 0.5, 2, 2), (5, 0.5, 3, 2)]
    + [(2225, 0.5, 1113, 1112), (300, 1.0, 300, 300)],
)
def test_scale_helpers(a: int, s: float, scaled: int, scaled_even: int) -> None:
    assert scale_int(a, s) == scaled
    assert scale_even(a, s) == scaled_even


@pytest.mark.parametrize(
    ("a", "k", "expected"), [(0, 3.0, 0), (1000, 4.00147, 250), (5, 2.0, 3), (7, 2.0, 4), (9, 4.0, 2)]
)
def test_shrink_int(a: int, k: float, expected: int) -> None:
    assert shrink_int(a, k) == expected


@pytest.mark.parametrize(("a", "b", "expected"), [(0, 0, 0), (0, 5, 5), (5, 0, 5), (3, 5, 3), (5, 3, 3), (4, 4, 4)])
def test_min_non_zero(a: int, b: int, expected: int) -> None:
    assert min_non_zero(a, b) == expected


@pytest.mark.parametrize(
    ("orientation", "angle", "flip"),
    [(0, 0, False), (1, 0, False), (2, 0, True), (3, 180, False), (4, 180, True)]
    + [(5, 90, True), (6, 90, False), (7, 270, True), (8, 270, False), (9, 0, False)],
)
def test_orientation_to_angle_flip(orientation: int, angle: int, flip: bool) -> None:
    assert orientation_to_angle_flip(orientation) == (angle, flip)


@pytest.mark.parametrize(
    ("orig", "value", "expected"),
    [
        (2725, 0.0, 0),  # no crop on that axis
        (2725, 1.0, 1),  # ≥1: absolute
        (2725, 1000.0, 1000),
        (2725, 100.7, 100),  # truncated
        (2725, 5000.0, 5000),  # not clamped here
        (2725, 0.5, 1363),  # <1: relative, Round(1362.5)
        (2225, 0.5, 1113),
        (100, 0.0001, 1),  # at least 1 px
        (100, 0.999, 100),
    ],
)
def test_crop_size(orig: int, value: float, expected: int) -> None:
    assert crop_size(orig, value) == expected


@pytest.mark.parametrize(
    ("preshrink", "k"),
    [(0.5, 1), (1.0, 1), (1.999, 1), (2.0, 2), (3.99, 2), (4.0, 4), (7.9, 4), (8.0, 8), (20.0, 8)],
)
def test_jpeg_shrink_factor(preshrink: float, k: int) -> None:
    assert jpeg_shrink_factor(preshrink) == k


# --------------------------------------------------------------------------------------------
# §10 worked examples, source 2725×2225
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    opts: str
    wscale: float
    dpr_scale: float
    scaled: tuple[int, int] | None
    target: tuple[int, int] | None
    result_crop: tuple[int, int] | None
    result: tuple[int, int]
    sol: int  # JPEG shrink-on-load factor ("–" in the table = 1)
    hscale: float | None = None  # only where the table gives a separate value (force)
    src: tuple[int, int] = (SRC_W, SRC_H)


E = Example
EXAMPLES = [
    E("rs:fill:300:200", 0.110092, 1, (300, 245), (300, 200), (300, 200), (300, 200), 8),
    E("rs:fit:300:300", 0.110092, 1, (300, 245), (300, 300), (300, 300), (300, 245), 8),
    E("rs:fit:300:0", 0.110092, 1, (300, 245), (300, 0), (300, 0), (300, 245), 8),
    E("rs:fill:300:0", 0.110092, 1, (300, 245), (300, 0), (300, 0), (300, 245), 8),
    E("rs:fit:0:300", 0.134831, 1, (367, 300), (0, 300), (0, 300), (367, 300), 4),
    E("rs:auto:300:200", 0.110092, 1, (300, 245), (300, 200), None, (300, 200), 8),
    E("rs:auto:200:300", 0.073394, 1, (200, 163), (200, 300), None, (200, 163), 8),
    E("rs:fill:5000:200", 1, 1, (2725, 2225), (5000, 200), (5000, 200), (2725, 200), 1),
    E("rs:fill-down:5000:200", 1, 1, (2725, 2225), (5000, 200), (2725, 109), (2725, 109), 1),
    E("rs:fill-down:5000:200/el:1", 1.834862, 1, (5000, 4083), (5000, 200), (5000, 200), (5000, 200), 1),
    E("rs:fill-down:1000:2000", 0.898876, 1, (2449, 2000), (1000, 2000), (1000, 2000), (1000, 2000), 1),
    E("rs:force:300:0", 0.110092, 1, (300, 2225), (300, 0), None, (300, 2225), 1, hscale=1),
    E("rs:force:300:200", 0.110092, 1, (300, 200), (300, 200), None, (300, 200), 8, hscale=0.089888),
    E("rs:force:5000:200", 1, 1, (2725, 109), (5000, 200), None, (2725, 109), 1, hscale=0.048989),
    E("w:0/h:0", 1, 1, (2725, 2225), (0, 0), None, (2725, 2225), 1),
    E("rs:fit:5000:5000", 1, 1, None, (5000, 5000), None, (2725, 2225), 1),
    E("rs:fit:5000:5000/el:1", 1.834862, 1, None, None, None, (5000, 4083), 1),
    E("rs:fit:300:300/dpr:2", 0.220183, 2, (600, 490), (600, 600), None, (600, 490), 4),
    E("rs:fill:300:200/dpr:2", 0.220183, 2, (600, 490), (600, 400), (600, 400), (600, 400), 4),
    E("rs:fit:2000:2000/dpr:2", 1, 1.3625, (2725, 2225), (2725, 2725), None, (2725, 2225), 1),
    E("rs:fit:2000:2000/dpr:2/el:1", 1.467890, 2, (4000, 3266), (4000, 4000), None, (4000, 3266), 1),
    E("rs:fill:2000:1000/dpr:2", 1, 1.3625, (2725, 2225), (2725, 1363), (2725, 1363), (2725, 1363), 1),
    E("rs:fit:5000:5000/dpr:2/ex:1", 1, 1, None, (5000, 5000), None, (5000, 5000), 1),
    E("dpr:2", 1, 1, None, (0, 0), None, (2725, 2225), 1),
    E("z:0.5", 0.5, 1, (1363, 1113), (0, 0), None, (1363, 1113), 1),
    E("rs:fit:300:300/z:2", 0.220183, 1, (600, 490), (600, 600), None, (600, 490), 4),
    E("c:1000:1000/rs:fit:200:200", 0.2, 1, (200, 200), (200, 200), None, (200, 200), 4),
    E("c:0.5:0.5/rs:fit:200:0", 0.146735, 1, (200, 163), (200, 0), None, (200, 163), 4),
    E("rs:fit:300:300/mw:400", 0.146789, 1, (400, 327), (300, 300), (300, 300), (300, 300), 4),
    E("rs:fit:300:300/mh:400", 0.179775, 1, (490, 400), (300, 300), (300, 300), (300, 300), 4),
    E("rs:fill:300:200/mw:3000", 1.100917, 1, (3000, 2450), (300, 200), None, (300, 200), 1),
    E("rs:fit:300:300/ex:1", 0.110092, 1, (300, 245), (300, 300), None, (300, 300), 8),
    E("rs:fit:300:300/exar:1", 0.110092, 1, (300, 245), (300, 300), None, (300, 300), 8),
    # rot:90 is not an option here, but geometry works in the oriented frame: the same as a
    # 2225×2725 source (§1), which is what the table row "rs:fit:300:200/rot:90" computes.
    E("rs:fit:300:200", 0.073394, 1, (163, 200), (300, 200), None, (163, 200), 8, src=(SRC_H, SRC_W)),
]
# Not covered: the padding rows (pd is not implemented by this server).


@dataclass(frozen=True)
class Prediction:
    scales: Scales
    sizes: Sizes
    result: tuple[int, int]
    preshrink: float


def predict(src: tuple[int, int], options: ProcessingOptions, *, is_vector: bool = False) -> Prediction:
    """The spec's size model (§2.1-§2.3, §4, §7) with no rotation and no padding."""
    src_w, src_h = src
    width_to_scale = min_non_zero(crop_size(src_w, options.crop.width), src_w)
    height_to_scale = min_non_zero(crop_size(src_h, options.crop.height), src_h)
    scales = calc_scale(width_to_scale, height_to_scale, options, is_vector=is_vector)
    sizes = calc_sizes(width_to_scale, height_to_scale, scales, options)
    w = min_non_zero(sizes.result_crop_width, sizes.scaled_width)
    h = min_non_zero(sizes.result_crop_height, sizes.scaled_height)
    if options.extend.enabled:
        canvas_w, canvas_h = sizes.target_width or w, sizes.target_height or h
        if canvas_w > w or canvas_h > h:
            w, h = canvas_w, canvas_h
    ear = options.extend_aspect_ratio.enabled and sizes.ear_width > 0 and sizes.ear_height > 0
    if ear and (sizes.ear_width > w or sizes.ear_height > h):
        w, h = sizes.ear_width, sizes.ear_height
    preshrink = min(src_w / scale_int(src_w, scales.wscale), src_h / scale_int(src_h, scales.hscale))
    return Prediction(scales, sizes, (w, h), preshrink)


@pytest.mark.parametrize("ex", EXAMPLES, ids=[f"{e.opts}@{e.src[0]}x{e.src[1]}" for e in EXAMPLES])
def test_worked_example(ex: Example) -> None:
    p = predict(ex.src, po(ex.opts))
    assert p.scales.wscale == pytest.approx(ex.wscale, abs=1e-6)
    hscale = ex.wscale if ex.hscale is None else ex.hscale
    assert p.scales.hscale == pytest.approx(hscale, abs=1e-6)
    assert p.scales.dpr_scale == pytest.approx(ex.dpr_scale, abs=1e-6)
    if ex.scaled is not None:
        assert (p.sizes.scaled_width, p.sizes.scaled_height) == ex.scaled
    if ex.target is not None:
        assert (p.sizes.target_width, p.sizes.target_height) == ex.target
    if ex.result_crop is not None:
        assert (p.sizes.result_crop_width, p.sizes.result_crop_height) == ex.result_crop
    assert p.result == ex.result
    assert jpeg_shrink_factor(p.preshrink) == ex.sol


def test_extend_aspect_ratio_canvas_from_the_table() -> None:
    sizes = predict((SRC_W, SRC_H), po("rs:fit:300:300/exar:1")).sizes
    assert (sizes.ear_width, sizes.ear_height) == (300, 300)


def test_extend_positions_from_the_table() -> None:
    """§10: rs:fit:300:300/ex:1 → image at top=28; rs:fit:5000:5000/dpr:2/ex:1 → at (1138, 1388)."""
    assert calc_position(300, 300, 300, 245, Gravity(), 1.0) == (0, 28)
    assert calc_position(5000, 5000, 2725, 2225, Gravity(), 1.0) == (1138, 1388)


def test_fill_down_keeps_the_target_ratio_at_the_image_height() -> None:
    """§2.3 second branch (dH > dW > ...): ResultCrop = (Scale(ScaledHeight, TW/TH), ScaledHeight)."""
    p = predict((SRC_W, SRC_H), po("rs:fill-down:200:5000"))
    assert (p.sizes.scaled_width, p.sizes.scaled_height) == (2725, 2225)
    assert (p.sizes.result_crop_width, p.sizes.result_crop_height) == (89, 2225)  # Scale(2225, 0.04)
    assert p.result == (89, 2225)


def test_fill_down_with_enlarge_is_plain_fill() -> None:
    assert predict((SRC_W, SRC_H), po("rs:fill-down:200:5000/el:1")).result == (200, 5000)


@pytest.mark.parametrize(
    ("src", "opts", "result"),
    [
        ((1000, 1000), "rs:auto:200:100", (200, 100)),  # square counts as landscape → fill
        ((1000, 1000), "rs:auto:100:200", (100, 100)),  # portrait target → fit
        ((1000, 2000), "rs:auto:100:200", (100, 200)),  # both portrait → fill
        ((1000, 2000), "rs:auto:200:100", (50, 100)),  # different orientation → fit
    ],
)
def test_auto_resizing_type(src: tuple[int, int], opts: str, result: tuple[int, int]) -> None:
    assert predict(src, po(opts)).result == result


def test_never_below_one_pixel() -> None:
    """§2.2 last step: each shrink is clamped to the source size."""
    p = predict((10000, 2), po("rs:fit:1:1"))
    assert p.scales.hscale == pytest.approx(0.5)
    assert p.result == (1, 1)


def test_vector_sources_ignore_enlarge() -> None:
    options = po("rs:fit:5000:5000")
    assert predict((SRC_W, SRC_H), options).result == (2725, 2225)
    assert predict((SRC_W, SRC_H), options, is_vector=True).result == (5000, 4083)


def test_force_with_one_side_upscaling_shrinks_the_other_further() -> None:
    """§2.2 note: force 5000×200 on 2725×2225 → 2725×109."""
    assert predict((SRC_W, SRC_H), po("rs:force:5000:200")).result == (2725, 109)


def test_min_width_can_enlarge() -> None:
    """§2.2 note: min-width/height are applied after the enlarge clamp, so they can upscale."""
    p = predict((100, 50), po("mw:400"))
    assert p.scales.wscale == pytest.approx(4.0)
    assert p.result == (400, 200)


def test_dpr_compensation_for_a_clamped_upscale_is_skipped_with_extend() -> None:
    """§2.2: when the enlarge clamp divides the shrinks by m, DprScale is divided by m too, unless
    extend is on. Visible only with dpr < 1: rs:fit:5000:5000 on 2725×2225 gives m = 2725/5000."""
    m = SRC_W / 5000
    p = predict((SRC_W, SRC_H), po("rs:fit:5000:5000/dpr:0.5"))
    assert p.scales.dpr_scale == pytest.approx(0.5 / m)
    assert (p.sizes.target_width, p.sizes.target_height) == (4587, 4587)  # Scale(5000, 0.917431)
    assert p.result == (2500, 2041)  # the image fits the 2500-wide (dpr 0.5) box
    p = predict((SRC_W, SRC_H), po("rs:fit:5000:5000/dpr:0.5/ex:1"))
    assert p.scales.dpr_scale == pytest.approx(0.5)
    assert (p.sizes.scaled_width, p.sizes.scaled_height) == (1363, 1113)
    assert p.result == (2500, 2500)  # extended to Scale(5000, 0.5)


def test_dpr_scale_is_capped_without_enlarge() -> None:
    s = calc_scale(SRC_W, SRC_H, po("rs:fit:2000:2000/dpr:2"), is_vector=False)
    assert s.dpr_scale == pytest.approx(SRC_W / 2000)
    s = calc_scale(SRC_W, SRC_H, po("rs:fit:300:300/dpr:2"), is_vector=False)
    assert s.dpr_scale == pytest.approx(2.0)


# --------------------------------------------------------------------------------------------
# calc_position (§3.1)
# --------------------------------------------------------------------------------------------

# Centre split table: free space d → left
CENTRE_TABLE = [(0, 0), (1, 1), (2, 2), (3, 2), (4, 2), (5, 3), (6, 4), (7, 4)]


@pytest.mark.parametrize(("free", "left"), CENTRE_TABLE)
def test_centring_table(free: int, left: int) -> None:
    assert calc_position(100 + free, 50, 100, 50, Gravity(), 1.0) == (left, 0)
    assert calc_position(50, 100 + free, 50, 100, Gravity(), 1.0) == (0, left)


@pytest.mark.parametrize("free", range(0, 40))
def test_centre_is_half_to_even_of_free_plus_one_over_two(free: int) -> None:
    expected = round((free + 1) / 2)  # Python's round is half-to-even
    assert calc_position(100 + free, 10, 100, 10, Gravity(), 1.0)[0] == expected


# outer 300×245, inner 100×45: free 200 × 200; centre = RoundToEven(201/2) = 100 on both axes
COMPASS = [
    (G.CENTER, (100, 100)),
    (G.NORTH, (100, 0)),
    (G.SOUTH, (100, 200)),
    (G.EAST, (200, 100)),
    (G.WEST, (0, 100)),
    (G.NORTH_EAST, (200, 0)),
    (G.NORTH_WEST, (0, 0)),
    (G.SOUTH_EAST, (200, 200)),
    (G.SOUTH_WEST, (0, 200)),
]


@pytest.mark.parametrize(("gtype", "expected"), COMPASS)
def test_compass_positions(gtype: GravityType, expected: tuple[int, int]) -> None:
    assert calc_position(300, 245, 100, 45, Gravity(gtype), 1.0) == expected


# offsets 10 px / 20 px: the centre adds them, edges measure inwards from their edge
COMPASS_OFFSETS = [
    (G.CENTER, (110, 120)),
    (G.NORTH, (110, 20)),
    (G.SOUTH, (110, 180)),
    (G.EAST, (190, 120)),
    (G.WEST, (10, 120)),
    (G.NORTH_EAST, (190, 20)),
    (G.NORTH_WEST, (10, 20)),
    (G.SOUTH_EAST, (190, 180)),
    (G.SOUTH_WEST, (10, 180)),
]


@pytest.mark.parametrize(("gtype", "expected"), COMPASS_OFFSETS)
def test_compass_positions_with_offsets(gtype: GravityType, expected: tuple[int, int]) -> None:
    assert calc_position(300, 245, 100, 45, Gravity(gtype, 10, 20), 1.0) == expected


def test_pixel_offsets_follow_the_offset_scale_relative_ones_do_not() -> None:
    # |x| ≥ 1: RoundToEven(x * offScale)
    assert calc_position(300, 245, 100, 45, Gravity(G.NORTH_WEST, 10, 20), 2.0) == (20, 40)
    assert calc_position(300, 245, 100, 45, Gravity(G.NORTH_WEST, 1.25, 1.25), 2.0) == (2, 2)  # 2.5 → 2
    # |x| < 1: a fraction of the outer size, offScale ignored
    assert calc_position(300, 245, 100, 45, Gravity(G.NORTH_WEST, 0.1, 0.1), 2.0) == (30, 24)  # 24.5 → 24
    # negative relative offsets move the other way (then clamp)
    assert calc_position(300, 245, 100, 45, Gravity(G.CENTER, -0.1, 0), 1.0) == (70, 100)


def test_result_crop_examples_from_the_spec() -> None:
    """§10 step detail for rs:fill:300:200 (resized 300×245, result crop 300×200)."""
    assert calc_position(300, 245, 300, 200, Gravity(), 1.0) == (0, 23)
    assert calc_position(300, 245, 300, 200, Gravity(G.SOUTH), 1.0) == (0, 45)
    assert calc_position(300, 245, 300, 200, Gravity(G.NORTH, 0, 10), 1.0) == (0, 10)
    assert calc_position(300, 245, 300, 200, Gravity(G.CENTER, 0, 0.1), 1.0) == (0, 45)  # 23+24 → clamped
    assert calc_position(300, 245, 300, 200, Gravity(G.FOCUS_POINT, 0.5, 0.3), 1.0) == (0, 0)  # 74-100


def test_crop_example_from_the_spec() -> None:
    """§10: 250×250 crop of a 681×556 (shrunk-on-load) image, centred → (216, 154)."""
    assert calc_position(681, 556, 250, 250, Gravity(), 1.0) == (216, 154)


def test_focus_point() -> None:
    # left = RoundToEven(outerW*X) - innerW//2
    assert calc_position(1000, 800, 200, 100, Gravity(G.FOCUS_POINT, 0.5, 0.5), 1.0) == (400, 350)
    assert calc_position(1000, 800, 201, 101, Gravity(G.FOCUS_POINT, 0.5, 0.5), 1.0) == (400, 350)
    assert calc_position(1000, 800, 200, 100, Gravity(G.FOCUS_POINT, 0.25, 0.75), 1.0) == (150, 550)
    assert calc_position(1000, 800, 200, 100, Gravity(G.FOCUS_POINT, 0.0, 1.0), 1.0) == (0, 700)  # clamped
    # RoundToEven(5 * 0.5 = 2.5) = 2
    assert calc_position(5, 5, 1, 1, Gravity(G.FOCUS_POINT, 0.5, 0.5), 1.0) == (2, 2)


def test_clamping_and_overflow() -> None:
    g = Gravity(G.NORTH_WEST, 500, -30)
    assert calc_position(300, 245, 100, 45, g, 1.0) == (200, 0)
    assert calc_position(300, 245, 100, 45, g, 1.0, overflow=True) == (500, -30)
    assert calc_position(300, 245, 100, 45, Gravity(G.SOUTH_EAST, -10, -10), 1.0, overflow=True) == (210, 210)


# --------------------------------------------------------------------------------------------
# rotate_gravity (§3.2)
# --------------------------------------------------------------------------------------------

ALL_COMPASS = [G.NORTH, G.SOUTH, G.EAST, G.WEST, G.NORTH_EAST, G.NORTH_WEST, G.SOUTH_EAST, G.SOUTH_WEST]

TYPE_MAPS: dict[str, dict[GravityType, GravityType]] = {
    "flip_x": {G.EAST: G.WEST, G.WEST: G.EAST, G.NORTH_EAST: G.NORTH_WEST, G.NORTH_WEST: G.NORTH_EAST,
               G.SOUTH_EAST: G.SOUTH_WEST, G.SOUTH_WEST: G.SOUTH_EAST, G.NORTH: G.NORTH, G.SOUTH: G.SOUTH},
    "flip_y": {G.NORTH: G.SOUTH, G.SOUTH: G.NORTH, G.NORTH_EAST: G.SOUTH_EAST, G.SOUTH_EAST: G.NORTH_EAST,
               G.NORTH_WEST: G.SOUTH_WEST, G.SOUTH_WEST: G.NORTH_WEST, G.EAST: G.EAST, G.WEST: G.WEST},
    "90": {G.NORTH: G.WEST, G.EAST: G.NORTH, G.SOUTH: G.EAST, G.WEST: G.SOUTH, G.NORTH_WEST: G.SOUTH_WEST,
           G.NORTH_EAST: G.NORTH_WEST, G.SOUTH_WEST: G.SOUTH_EAST, G.SOUTH_EAST: G.NORTH_EAST},
    "180": {G.NORTH: G.SOUTH, G.SOUTH: G.NORTH, G.EAST: G.WEST, G.WEST: G.EAST, G.NORTH_WEST: G.SOUTH_EAST,
            G.SOUTH_EAST: G.NORTH_WEST, G.NORTH_EAST: G.SOUTH_WEST, G.SOUTH_WEST: G.NORTH_EAST},
    "270": {G.NORTH: G.EAST, G.EAST: G.SOUTH, G.SOUTH: G.WEST, G.WEST: G.NORTH, G.NORTH_WEST: G.NORTH_EAST,
            G.NORTH_EAST: G.SOUTH_EAST, G.SOUTH_WEST: G.NORTH_WEST, G.SOUTH_EAST: G.SOUTH_WEST},
}  # fmt: skip

TRANSFORMS: dict[str, tuple[int, bool, bool]] = {
    "flip_x": (0, True, False),
    "flip_y": (0, False, True),
    "90": (90, False, False),
    "180": (180, False, False),
    "270": (270, False, False),
}


@pytest.mark.parametrize("name", list(TRANSFORMS))
@pytest.mark.parametrize("gtype", ALL_COMPASS)
def test_rotate_gravity_type_maps(name: str, gtype: GravityType) -> None:
    angle, flip_x, flip_y = TRANSFORMS[name]
    assert rotate_gravity(Gravity(gtype), angle, flip_x, flip_y).type is TYPE_MAPS[name][gtype]


X, Y = 3.0, 7.0


@pytest.mark.parametrize(
    ("gtype", "angle", "flip_x", "flip_y", "expected"),
    [
        # flip_x: ce/no/so → X=-X; fp → X=1-X; others unchanged
        (G.CENTER, 0, True, False, Gravity(G.CENTER, -X, Y)),
        (G.NORTH, 0, True, False, Gravity(G.NORTH, -X, Y)),
        (G.SOUTH, 0, True, False, Gravity(G.SOUTH, -X, Y)),
        (G.EAST, 0, True, False, Gravity(G.WEST, X, Y)),
        (G.NORTH_EAST, 0, True, False, Gravity(G.NORTH_WEST, X, Y)),
        # flip_y: ce/ea/we → Y=-Y; others unchanged
        (G.CENTER, 0, False, True, Gravity(G.CENTER, X, -Y)),
        (G.EAST, 0, False, True, Gravity(G.EAST, X, -Y)),
        (G.WEST, 0, False, True, Gravity(G.WEST, X, -Y)),
        (G.NORTH, 0, False, True, Gravity(G.SOUTH, X, Y)),
        (G.SOUTH_WEST, 0, False, True, Gravity(G.NORTH_WEST, X, Y)),
        # 90: mapped ce/ea/we → (Y, -X); others → (Y, X)
        (G.CENTER, 90, False, False, Gravity(G.CENTER, Y, -X)),
        (G.SOUTH, 90, False, False, Gravity(G.EAST, Y, -X)),  # so → ea
        (G.NORTH, 90, False, False, Gravity(G.WEST, Y, -X)),  # no → we
        (G.EAST, 90, False, False, Gravity(G.NORTH, Y, X)),  # ea → no
        (G.NORTH_WEST, 90, False, False, Gravity(G.SOUTH_WEST, Y, X)),
        # 180: ce → (-X, -Y); no/so → X=-X; ea/we → Y=-Y; corners unchanged
        (G.CENTER, 180, False, False, Gravity(G.CENTER, -X, -Y)),
        (G.NORTH, 180, False, False, Gravity(G.SOUTH, -X, Y)),
        (G.EAST, 180, False, False, Gravity(G.WEST, X, -Y)),
        (G.NORTH_EAST, 180, False, False, Gravity(G.SOUTH_WEST, X, Y)),
        # 270: mapped ce/no/so → (-Y, X); others → (Y, X)
        (G.CENTER, 270, False, False, Gravity(G.CENTER, -Y, X)),
        (G.WEST, 270, False, False, Gravity(G.NORTH, -Y, X)),  # we → no
        (G.EAST, 270, False, False, Gravity(G.SOUTH, -Y, X)),  # ea → so
        (G.NORTH, 270, False, False, Gravity(G.EAST, Y, X)),  # no → ea
        (G.SOUTH_EAST, 270, False, False, Gravity(G.SOUTH_WEST, Y, X)),
        # angles are taken modulo 360
        (G.CENTER, 450, False, False, Gravity(G.CENTER, Y, -X)),
        (G.NORTH, 360, False, False, Gravity(G.NORTH, X, Y)),
        # flips first, then the rotation
        (G.EAST, 90, True, False, Gravity(G.SOUTH, Y, X)),  # ea → we (flip) → so (90): (Y, X)
    ],
)
def test_rotate_gravity_offsets(gtype: GravityType, angle: int, flip_x: bool, flip_y: bool, expected: Gravity) -> None:
    assert rotate_gravity(Gravity(gtype, X, Y), angle, flip_x, flip_y) == expected


FX, FY = 0.25, 0.75


@pytest.mark.parametrize(
    ("angle", "flip_x", "flip_y", "expected"),
    [
        (0, False, False, (FX, FY)),
        (0, True, False, (1 - FX, FY)),
        (0, False, True, (FX, 1 - FY)),
        (0, True, True, (1 - FX, 1 - FY)),
        (90, False, False, (FY, 1 - FX)),
        (180, False, False, (1 - FX, 1 - FY)),
        (270, False, False, (1 - FY, FX)),
    ],
)
def test_rotate_gravity_focus_point(angle: int, flip_x: bool, flip_y: bool, expected: tuple[float, float]) -> None:
    g = rotate_gravity(Gravity(G.FOCUS_POINT, FX, FY), angle, flip_x, flip_y)
    assert g.type is G.FOCUS_POINT
    assert (g.x, g.y) == pytest.approx(expected)


def test_smart_gravity_is_unaffected() -> None:
    for angle in (0, 90, 180, 270):
        assert rotate_gravity(Gravity(G.SMART), angle, True, True) == Gravity(G.SMART)


def _rotate_point_cw(x: float, y: float, w: float, h: float, angle: int) -> tuple[float, float]:
    """A point of a w×h image after rotating the image clockwise by angle."""
    for _ in range((angle % 360) // 90):
        x, y, w, h = h - y, x, h, w
    return x, y


@pytest.mark.parametrize("angle", [0, 90, 180, 270])
@pytest.mark.parametrize("flip_x", [False, True])
@pytest.mark.parametrize("flip_y", [False, True])
def test_focus_point_follows_the_pixel(angle: int, flip_x: bool, flip_y: bool) -> None:
    """Crop-then-rotate equals rotate-then-crop: the transformed focus point is the source pixel
    that lands on the requested point once the image is rotated and then flipped (§6 order)."""
    w, h = 400.0, 300.0
    fx, fy = 0.2, 0.7
    g = rotate_gravity(Gravity(G.FOCUS_POINT, fx, fy), angle, flip_x, flip_y)
    rx, ry = _rotate_point_cw(g.x * w, g.y * h, w, h, angle)
    rw, rh = (h, w) if angle % 180 else (w, h)
    if flip_x:
        rx = rw - rx
    if flip_y:
        ry = rh - ry
    assert (rx / rw, ry / rh) == pytest.approx((fx, fy))


def test_jpeg_shrink_on_load_sizes_from_the_spec() -> None:
    """§4: libjpeg shrink k gives floor(W/k) × floor(H/k); the crop is then Shrink(crop, wpre)."""
    k = jpeg_shrink_factor(SRC_W / 545)  # c:1000:1000/rs:fit:200:200: preshrink 5 → 4
    assert k == 4
    loaded_w, loaded_h = SRC_W // k, SRC_H // k
    assert (loaded_w, loaded_h) == (681, 556)
    wpre = SRC_W / loaded_w
    assert shrink_int(1000, wpre) == 250
    assert math.isclose(wpre, 4.00147, abs_tol=1e-5)
