"""process() on the benchmark photo: exact result sizes, crop and gravity positions, extend.

Expected sizes come from imgproxy's geometry, mostly the worked examples (§10) for the
2725×2225 benchmark photo; the few other rows are derived in comments with imgproxy's
formulas (§2–§4, §7). The § marks number imgproxy's processing steps (upstream Go source, imgproxy v4):
§2 calcScale/calcSizes (processing/prepare.go), §3 crop and gravity (processing/crop.go,
calc_position.go), §4 shrink-on-load (processing/scale_on_load.go), §7 extend and
extend_aspect_ratio (processing/extend.go), §8 flatten/format limits, §9 format choice
(../shared/reference/imgproxy.md §3.3), §10 the worked examples for the 2725×2225 photo
that the tests below reproduce row by row.

Pixel positions are checked against
libvips operations on the same source (extract_area, resize, smartcrop), compared
perceptually, never byte for byte.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from imgproxy_py.imagetype import ImageFormat
from tests.processing.process_helpers import (
    BENCH_H,
    BENCH_W,
    alpha_at,
    benchmark,
    benchmark_image,
    full_diff,
    run,
    run_image,
)
from tests.support import mean_abs_diff

# --- exact sizes ------------------------------------------------------------------------

# (options, expected result size): the §10 worked examples, plus a few crop rows.
SIZE_CASES: list[tuple[str, tuple[int, int]]] = [
    ("rs:fill:300:200", (300, 200)),
    ("rs:fit:300:300", (300, 245)),
    ("rs:fit:300:0", (300, 245)),
    ("rs:fill:300:0", (300, 245)),
    ("rs:fit:0:300", (367, 300)),
    ("rs:auto:300:200", (300, 200)),  # same orientation → fill
    ("rs:auto:200:300", (200, 163)),  # orientation differs → fit
    ("rs:fill:5000:200", (2725, 200)),
    ("rs:fill-down:5000:200", (2725, 109)),
    ("rs:fill-down:5000:200/el:1", (5000, 200)),
    ("rs:fill-down:1000:2000", (1000, 2000)),
    ("rs:force:300:0", (300, 2225)),
    ("rs:force:300:200", (300, 200)),
    ("rs:force:5000:200", (2725, 109)),
    ("w:0/h:0", (2725, 2225)),
    ("rs:fit:5000:5000", (2725, 2225)),
    ("rs:fit:5000:5000/el:1", (5000, 4083)),
    ("rs:fit:300:300/dpr:2", (600, 490)),
    ("rs:fill:300:200/dpr:2", (600, 400)),
    ("rs:fit:2000:2000/dpr:2", (2725, 2225)),  # dpr never enlarges without el
    ("rs:fit:2000:2000/dpr:2/el:1", (4000, 3266)),
    ("rs:fill:2000:1000/dpr:2", (2725, 1363)),
    ("rs:fit:5000:5000/dpr:2/ex:1", (5000, 5000)),
    ("dpr:2", (2725, 2225)),
    ("z:0.5", (1363, 1113)),
    ("rs:fit:300:300/z:2", (600, 490)),
    ("c:1000:1000/rs:fit:200:200", (200, 200)),
    ("c:0.5:0.5/rs:fit:200:0", (200, 163)),
    ("rs:fit:300:300/mw:400", (300, 300)),
    ("rs:fit:300:300/mh:400", (300, 300)),
    ("rs:fill:300:200/mw:3000", (300, 200)),
    ("rs:fit:300:300/ex:1", (300, 300)),
    ("rs:fit:300:300/exar:1", (300, 300)),
    # Not in the table; §2.1 + §3.3. A relative crop rounds half away from zero:
    # Scale(2725, 0.5) = Round(1362.5) = 1363, Scale(2225, 0.5) = 1113.
    ("c:0.5:0.5", (1363, 1113)),
    # An absolute crop is truncated (int(600.9) = 600); gravity does not change the size.
    ("c:600.9:500:soea", (600, 500)),
    # A crop wider than the source: MinNonZero(3000, 2725) keeps the full width.
    ("c:3000:100", (2725, 100)),
    ("rs:fill:300:200/g:sm", (300, 200)),
    ("rs:fill:300:200/g:fp:0.5:0.3", (300, 200)),
    ("rs:fill:300:200/g:so:0:10", (300, 200)),
    # Force with enlarge: both axes independent, no clamp → exactly the target.
    ("rs:force:5000:200/el:1", (5000, 200)),
    # exar on a target larger than the image without el (§2.2, §2.3): the shrinks are
    # clamped to 1 (Scaled 2725×2225), Target 6000×4000; dW = 6000/2725 = 2.2018 >
    # dH = 4000/2225 = 1.7978 → EAR = (Scale(2225, 1.5), 2225) = (Round(3337.5), 2225).
    ("rs:fit:6000:4000/exar:1", (3338, 2225)),
]

# The PNG source has no shrink-on-load, so its sizes equal the table's (§10: "results are
# identical for a PNG source"). WebP shrinks on load by any factor, which can move a
# rounding by one pixel (§4). The single such row here, derived with §4:
#   c:0.5:0.5 → crop 1363×1113, WScale = HScale = 200/1363; preshrink =
#   min(2725/Scale(2725, s), 2225/Scale(2225, s)) = min(2725/400, 2225/326) = 6.8125;
#   webpload at 1/6.8125 gives RoundToEven(400.0)×RoundToEven(326.6) = 400×327;
#   wpre = 6.8125, hpre = 2225/327 = 6.80428; WScale' → exactly 1 (400 == Scale(400, WScale'));
#   crop = Shrink(1363, 6.8125)×Shrink(1113, 6.80428) = 200×Round(163.575) = 200×164;
#   height scaled by HScale' = 6.80428/6.815: Round(164 × 0.99845) = 164.
WEBP_SIZE_OVERRIDES = {"c:0.5:0.5/rs:fit:200:0": (200, 164)}

# Results of several megapixels are slow to encode; check those on the JPEG source only.
_BIG = {
    "w:0/h:0",
    "rs:fit:5000:5000",
    "rs:fit:5000:5000/el:1",
    "rs:fit:2000:2000/dpr:2",
    "rs:fit:2000:2000/dpr:2/el:1",
    "rs:fit:5000:5000/dpr:2/ex:1",
    "dpr:2",
    "rs:fit:6000:4000/exar:1",
}


@pytest.mark.parametrize(("opts", "expected"), SIZE_CASES, ids=[c[0] for c in SIZE_CASES])
def test_jpeg_result_size(opts: str, expected: tuple[int, int]) -> None:
    result = run(benchmark("jpeg"), opts + "/f:jpg")
    assert (result.width, result.height) == expected
    assert (result.source_width, result.source_height) == (BENCH_W, BENCH_H)
    assert result.source_format is ImageFormat.JPEG


_SMALL_CASES = [c for c in SIZE_CASES if c[0] not in _BIG]


@pytest.mark.parametrize("fmt", ["png", "webp"])
@pytest.mark.parametrize(("opts", "expected"), _SMALL_CASES, ids=[c[0] for c in _SMALL_CASES])
def test_png_and_webp_result_size(fmt: str, opts: str, expected: tuple[int, int]) -> None:
    if fmt == "webp":
        expected = WEBP_SIZE_OVERRIDES.get(opts, expected)
    result, _ = run_image(benchmark(fmt), opts + "/f:jpg")
    assert (result.width, result.height) == expected
    assert result.source_format is ImageFormat(fmt)


def test_no_options_keeps_the_source_pixels() -> None:
    src = benchmark_image()
    _, out = run_image(benchmark("png"), "f:png")
    assert full_diff(out, src) < 0.01


# --- crop position: c:W:H:gravity, before the resize -------------------------------------

# Crop 600×500 out of 2725×2225: free space 2125×1725. §3.1: centre left =
# RoundToEven((2125+1)/2) = 1063, top = RoundToEven((1725+1)/2) = 863; "ea" puts the box at
# outerW-innerW-offX, "so" at outerH-innerH-offY; relative offsets are fractions of the
# outer size (RoundToEven(2225 × 0.1) = RoundToEven(222.5) = 222); fp centres the box on
# (RoundToEven(W·x), RoundToEven(H·y)): 2725·0.25 = 681.25 → 681 - 300 = 381,
# 2225·0.75 = 1668.75 → 1669 - 250 = 1419.
CROP_POSITIONS: list[tuple[str, tuple[int, int]]] = [
    ("nowe", (0, 0)),
    ("no", (1063, 0)),
    ("noea", (2125, 0)),
    ("we", (0, 863)),
    ("ce", (1063, 863)),
    ("ea", (2125, 863)),
    ("sowe", (0, 1725)),
    ("so", (1063, 1725)),
    ("soea", (2125, 1725)),
    ("nowe:100:50", (100, 50)),
    ("soea:100:50", (2025, 1675)),
    ("ce:100:-50", (1163, 813)),
    ("no:0:0.1", (1063, 222)),
    ("fp:0.25:0.75", (381, 1419)),
    ("nowe:5000:5000", (2125, 1725)),  # offsets clamp the box inside the image
]


@pytest.mark.parametrize(("gravity", "pos"), CROP_POSITIONS, ids=[c[0] for c in CROP_POSITIONS])
def test_crop_gravity_position(gravity: str, pos: tuple[int, int]) -> None:
    src = benchmark_image()
    _, out = run_image(benchmark("png"), f"c:600:500:{gravity}/f:png")
    assert (out.width, out.height) == (600, 500)
    left, top = pos
    expected = src.extract_area(left, top, 600, 500)
    # No resize and a lossless source and result: the crop is exactly that region ...
    assert full_diff(out, expected) < 0.1
    # ... and not the region one pixel off (a one-pixel shift costs 0.7 to 3.8 on this photo).
    shifted = src.extract_area(left - 1 if left > 0 else left + 1, top, 600, 500)
    assert full_diff(out, shifted) > 0.4


def test_crop_corners_differ_and_match_their_regions() -> None:
    """g:nowe and g:soea crops on the JPEG each look like their own corner, not the other."""
    src = benchmark_image()
    nowe_region = src.extract_area(0, 0, 600, 500)
    soea_region = src.extract_area(BENCH_W - 600, BENCH_H - 500, 600, 500)
    assert mean_abs_diff(nowe_region, soea_region) > 20  # the test can tell them apart
    _, nowe = run_image(benchmark("jpeg"), "c:600:500/g:nowe")
    _, soea = run_image(benchmark("jpeg"), "c:600:500/g:soea")
    assert mean_abs_diff(nowe, nowe_region) < 3
    assert mean_abs_diff(soea, soea_region) < 3
    assert mean_abs_diff(nowe, soea_region) > 20
    assert mean_abs_diff(soea, nowe_region) > 20


def test_crop_own_gravity_wins_over_main_gravity() -> None:
    src = benchmark_image()
    _, out = run_image(benchmark("jpeg"), "g:nowe/c:600:500:soea")
    assert mean_abs_diff(out, src.extract_area(BENCH_W - 600, BENCH_H - 500, 600, 500)) < 3


@pytest.mark.parametrize(
    ("gravity", "region"),
    [
        # §4: the JPEG is pre-shrunk ×4 (preshrink 5 → k=4) and the crop box, offsets
        # included, is scaled with it; the result must still show the same region.
        ("soea", (BENCH_W - 1000, BENCH_H - 1000)),
        ("nowe", (0, 0)),
        ("nowe:400:300", (400, 300)),
        # §10 step detail: on the 681×556 pre-shrunk image the 250×250 box sits at
        # (216, 154), i.e. (216 × 2725/681, 154 × 2225/556) = (864.3, 616.3) in the source,
        # not at the full-size centre (863, 613).
        ("ce", (864, 616)),
    ],
)
def test_crop_then_resize_with_shrink_on_load(gravity: str, region: tuple[int, int]) -> None:
    src = benchmark_image()
    _, out = run_image(benchmark("jpeg"), f"c:1000:1000:{gravity}/rs:fit:200:200")
    assert (out.width, out.height) == (200, 200)
    expected = src.extract_area(region[0], region[1], 1000, 1000).resize(0.2)
    assert mean_abs_diff(out, expected) < 3
    # Another 1000×1000 region 200 px away is clearly different.
    other_left = region[0] + 200 if region[0] + 1200 <= BENCH_W else region[0] - 200
    other = src.extract_area(other_left, region[1], 1000, 1000).resize(0.2)
    assert mean_abs_diff(out, other) > 3 * mean_abs_diff(out, expected)


def test_smart_crop_uses_libvips_attention() -> None:
    src = benchmark_image()
    _, out = run_image(benchmark("png"), "c:500:500:sm/f:png")
    smart = src.smartcrop(500, 500, interesting="attention")
    centre = src.extract_area(1112, 862, 500, 500)
    assert mean_abs_diff(smart, centre) > 10  # smart crop is not the centre on this photo
    assert full_diff(out, smart) < 0.5


def test_smart_gravity_on_fill_crops_the_resized_image() -> None:
    src = benchmark_image()
    _, out = run_image(benchmark("jpeg"), "rs:fill:300:200/g:sm")
    assert (out.width, out.height) == (300, 200)
    resized = src.resize(300 / 2725)  # 300×245, as the pipeline scales it (§10)
    assert (resized.width, resized.height) == (300, 245)
    expected = resized.smartcrop(300, 200, interesting="attention")
    assert mean_abs_diff(out, expected) < 3


# --- crop to the result (fill): gravity after the resize --------------------------------

# §10 step detail for rs:fill:300:200: the image is resized to 300×245 and cropped to
# 300×200 at top = 23 (ce: RoundToEven(46/2)), 45 (so), 10 (no:0:10), 45 for ce:0:0.1
# (offY = RoundToEven(24.5) = 24 → 47, clamped to 45), 0 for fp:0.5:0.3
# (RoundToEven(73.5) = 74, minus 100 → clamped to 0).
FILL_TOPS: list[tuple[str, int]] = [
    ("ce", 23),
    ("so", 45),
    ("no", 0),
    ("no:0:10", 10),
    ("ce:0:0.1", 45),
    ("fp:0.5:0.3", 0),
    ("so:0:20", 25),  # 245 - 200 - 20
]


@functools.cache
def _resized_300() -> Any:
    # WScale = 1/min(2725/300, 2225/200) = 300/2725 (§10: 0.110092), lanczos3 as the pipeline.
    scale = 300 / 2725
    resized = benchmark_image().resize(scale, vscale=scale).copy_memory()
    assert (resized.width, resized.height) == (300, 245)
    return resized


@pytest.mark.parametrize(("gravity", "top"), FILL_TOPS, ids=[c[0] for c in FILL_TOPS])
def test_fill_crop_to_result_position(gravity: str, top: int) -> None:
    resized = _resized_300()
    _, out = run_image(benchmark("png"), f"rs:fill:300:200/g:{gravity}/f:png")
    assert (out.width, out.height) == (300, 200)
    diffs = {t: full_diff(out, resized.extract_area(0, t, 300, 200)) for t in range(0, 46)}
    assert diffs[top] < 0.5
    assert min(diffs, key=lambda t: diffs[t]) == top
    others = [d for t, d in diffs.items() if t != top]
    assert min(others) > 2


def test_fill_down_keeps_the_target_aspect_ratio_centred() -> None:
    """rs:fill-down:5000:200 → 2725×109 (§2.3), cut from the vertical centre of the photo."""
    src = benchmark_image()
    _, out = run_image(benchmark("png"), "rs:fill-down:5000:200/f:png")
    assert (out.width, out.height) == (2725, 109)
    top = round((BENCH_H - 109 + 1) / 2)  # RoundToEven(2117/2 = 1058.5) = 1058
    assert top == 1058
    assert full_diff(out, src.extract_area(0, top, 2725, 109)) < 0.5


# --- extend / extend_aspect_ratio: where the image sits in the canvas -------------------


@pytest.mark.parametrize(
    ("extend", "top"),
    [
        ("ex:1", 28),  # §10: 300×245 in 300×300, top = RoundToEven((55+1)/2) = 28
        ("ex:1:no", 0),
        ("ex:1:so", 55),
        ("ex:1:so:0:10", 45),
        ("ex:1:ce:0:-10", 18),
    ],
)
def test_extend_position_and_transparency(extend: str, top: int) -> None:
    result, out = run_image(benchmark("png"), f"rs:fit:300:300/{extend}")
    # A PNG source stays PNG and the new area is transparent (§7, §8.4).
    assert result.format is ImageFormat.PNG
    assert (out.width, out.height) == (300, 300)
    assert out.bands == 4
    bottom = top + 245  # first row below the image
    for x in (0, 150, 299):
        if top > 0:
            assert alpha_at(out, x, top - 1) == 0
        assert alpha_at(out, x, top) == 255
        assert alpha_at(out, x, bottom - 1) == 255
        if bottom < 300:
            assert alpha_at(out, x, bottom) == 0
    resized = _resized_300().bandjoin_const([255])
    assert full_diff(out.extract_area(0, top, 300, 245), resized) < 0.5


def test_extend_on_jpeg_stays_jpeg_and_fills_white() -> None:
    result, out = run_image(benchmark("jpeg"), "rs:fit:300:300/ex:1")
    assert result.format is ImageFormat.JPEG  # the source format is preferred (§9)
    assert (out.width, out.height) == (300, 300)
    assert out.bands == 3
    # Rows 0..27 are padding; rows 0..15 are whole JPEG MCUs untouched by the image's ringing.
    assert out.extract_area(0, 0, 300, 16).min() >= 250
    assert out.extract_area(0, 30, 300, 240).avg() < 200


def test_extend_with_dpr_centres_the_unscaled_image() -> None:
    """§10: rs:fit:5000:5000/dpr:2/ex:1 → 5000×5000, the 2725×2225 image at (1138, 1388)."""
    _, out = run_image(benchmark("png"), "rs:fit:5000:5000/dpr:2/ex:1")
    assert (out.width, out.height) == (5000, 5000)
    left, top = 1138, 1388
    right, bottom = left + BENCH_W, top + BENCH_H
    assert alpha_at(out, left - 1, 2000) == 0
    assert alpha_at(out, left, 2000) == 255
    assert alpha_at(out, right - 1, 2000) == 255
    assert alpha_at(out, right, 2000) == 0
    assert alpha_at(out, 2000, top - 1) == 0
    assert alpha_at(out, 2000, top) == 255
    assert alpha_at(out, 2000, bottom - 1) == 255
    assert alpha_at(out, 2000, bottom) == 0


def test_extend_aspect_ratio_pads_to_the_ratio_not_the_target() -> None:
    """rs:fit:6000:4000/exar:1: 3338×2225 (derived above); image at RoundToEven(614/2) = 307."""
    _, out = run_image(benchmark("png"), "rs:fit:6000:4000/exar:1/f:png")
    assert (out.width, out.height) == (3338, 2225)
    assert alpha_at(out, 306, 1000) == 0
    assert alpha_at(out, 307, 1000) == 255
    assert alpha_at(out, 307 + BENCH_W - 1, 1000) == 255
    assert alpha_at(out, 307 + BENCH_W, 1000) == 0


def test_min_width_crops_back_to_the_target() -> None:
    """rs:fit:300:300/mw:400: scaled to 400×327, then cropped to 300×300 at the centre (§7)."""
    src = benchmark_image()
    _, out = run_image(benchmark("png"), "rs:fit:300:300/mw:400/f:png")
    assert (out.width, out.height) == (300, 300)
    scale = 400 / 2725
    resized = src.resize(scale, vscale=scale)
    assert (resized.width, resized.height) == (400, 327)
    # centre: left = RoundToEven(101/2) = 50 (half to even), top = RoundToEven(28/2) = 14
    assert full_diff(out, resized.extract_area(50, 14, 300, 300)) < 0.5
