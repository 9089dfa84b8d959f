"""Perceptual auto-quality and the best format, on real photos and graphics.

Checked with the same SSIM the search uses (a separate decode of the result) and with bytes:
the lowest quality that meets the target, in at most five encodes, and a stored choice
reused with one encode.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from imgproxy_py.imagetype import ImageFormat, sniff
from imgproxy_py.processing import Job, Known, ProcessingConfig, Processor, codecs, external, vips
from imgproxy_py.processing.format_choice import ClientFormats
from imgproxy_py.processing.quality import AutoQualityParams, NumpyReference, Reference, search
from tests.processing.process_helpers import DEFAULT_CONFIG, benchmark, fixture_bytes, options
from tests.support import load

PHOTO_OPTS = "rs:fit:600:600"


def dssim_of(source: bytes, opts: str, result_data: bytes) -> float:
    """DSSIM of a result against the same resize saved losslessly (JPEG XL decoded by libjxl)."""
    reference = load(Processor(DEFAULT_CONFIG).process(Job(source, options(f"{opts}/f:png"))).data)
    fmt = sniff(result_data)
    if fmt is not None and codecs.decodes(result_data, fmt):
        return Reference(reference).dssim(result_data, lambda data: external.load(data, fmt, 10**8))
    return Reference(reference).dssim(result_data)


@pytest.mark.parametrize("fmt", ["jpg", "webp", "avif", "jxl"])
def test_autoquality_meets_the_target_with_the_lowest_quality(fmt: str) -> None:
    data = benchmark("jpeg")
    opts = f"{PHOTO_OPTS}/aq:dssim:0.004:30:95:0.0005/f:{fmt}"
    result = Processor(DEFAULT_CONFIG).process(Job(data, options(opts)))
    assert 1 <= result.encodes <= 5
    ((key, quality),) = result.qualities
    assert key.split(":")[1] == ImageFormat.from_name(fmt).value  # type: ignore[union-attr]
    assert 30 < quality < 95  # the target is reachable inside the bounds for this photo
    # 5% slack: this reference is a PNG round trip of the resize, and JPEG XL decodes through libjxl.
    assert dssim_of(data, PHOTO_OPTS, result.data) <= 0.004 * 1.05
    # A clearly lower quality misses the target: the search did not stop far above the lowest.
    lower = Processor(DEFAULT_CONFIG).process(Job(data, options(f"{PHOTO_OPTS}/q:{max(30, quality - 10)}/f:{fmt}")))
    assert dssim_of(data, PHOTO_OPTS, lower.data) > 0.004


def test_a_stricter_target_costs_more_bytes() -> None:
    data = benchmark("jpeg")
    loose = Processor(DEFAULT_CONFIG).process(Job(data, options(f"{PHOTO_OPTS}/aq:dssim:0.008/f:jpg")))
    strict = Processor(DEFAULT_CONFIG).process(Job(data, options(f"{PHOTO_OPTS}/aq:dssim:0.002/f:jpg")))
    assert len(strict.data) > len(loose.data)
    assert dict(strict.qualities).popitem()[1] > dict(loose.qualities).popitem()[1]


def test_the_image_decides_the_quality() -> None:
    """Same target, different content: a soft photo needs less quality than a detailed one."""
    soft = fixture_bytes("flowers.jpeg")
    detailed = benchmark("jpeg")
    opts = options("rs:fit:480:480/aq:dssim:0.004:10:95:0.0003/f:jpg")
    q_soft = Processor(DEFAULT_CONFIG).process(Job(soft, opts)).qualities[0][1]
    q_detailed = Processor(DEFAULT_CONFIG).process(Job(detailed, opts)).qualities[0][1]
    assert q_soft < q_detailed


def test_a_stored_choice_is_one_encode() -> None:
    data = benchmark("jpeg")
    first = Processor(DEFAULT_CONFIG).process(Job(data, options(f"{PHOTO_OPTS}/aq:dssim/f:jpg")))
    hints = dict(first.qualities)
    again = Processor(DEFAULT_CONFIG).process(
        Job(data, options(f"{PHOTO_OPTS}/aq:dssim/f:jpg"), known=Known(qualities=hints))
    )
    assert again.encodes == 1
    assert len(again.data) == len(first.data)


def test_the_configured_method_applies_and_aq_none_switches_it_off() -> None:
    data = benchmark("jpeg")
    config = dataclasses.replace(
        DEFAULT_CONFIG, autoquality=dataclasses.replace(DEFAULT_CONFIG.autoquality, method="dssim")
    )
    assert Processor(config).process(Job(data, options(f"{PHOTO_OPTS}/f:jpg"))).qualities
    assert not Processor(config).process(Job(data, options(f"{PHOTO_OPTS}/aq:none/f:jpg"))).qualities
    assert not Processor(config).process(Job(data, options(f"{PHOTO_OPTS}/q:70/f:jpg"))).qualities  # an explicit q wins


def test_search_is_bounded_and_returns_the_lowest_passing_quality() -> None:
    calls: list[int] = []

    def encode(q: int) -> bytes:
        calls.append(q)
        return bytes([q])

    def measure(blob: bytes) -> float:
        return 0.5 / blob[0]  # falls with quality; the target 0.01 is met from q50 up

    choice = search(encode, measure, AutoQualityParams(0.01, 10, 100, 0.0))
    assert len(calls) <= 5
    assert choice.quality >= 50
    assert all(q < choice.quality for q in calls if measure(bytes([q])) > 0.01)


# DSSIM of a JPEG photo (Landscape_1 at 800 px) by quality: log(DSSIM) is convex, steepest near q90.
_CONVEX = {30: 0.02, 66: 0.00389, 78: 0.00212, 80: 0.00191, 81: 0.00173, 82: 0.00165, 83: 0.0015, 84: 0.00132}
_CONVEX |= {85: 0.00116, 86: 0.00087, 87: 0.00071, 88: 0.00055, 89: 0.00044, 90: 0.00034}


def test_search_on_a_convex_curve_does_not_creep() -> None:
    """Secant steps from a far probe all land below the target on such a curve; the search bisects
    instead and ends near the lowest passing quality (83) within its five encodes (it used to stop at 87)."""
    known = sorted(_CONVEX)

    def measure(blob: bytes) -> float:
        q = blob[0]
        lo = max(k for k in known if k <= q)
        hi = min(k for k in known if k >= q)
        if lo == hi:
            return _CONVEX[q]
        t = (q - lo) / (hi - lo)
        return math.exp(math.log(_CONVEX[lo]) + t * (math.log(_CONVEX[hi]) - math.log(_CONVEX[lo])))

    choice = search(lambda q: bytes([q]), measure, AutoQualityParams(0.0015, 30, 90, 0.0003))
    assert choice.encodes <= 5
    assert 83 <= choice.quality <= 84


def test_best_format_is_the_smallest_candidate() -> None:
    data = benchmark("jpeg")
    client = ClientFormats(webp=True, avif=True)
    best = Processor(DEFAULT_CONFIG).process(Job(data, options("rs:fit:500:500/f:best"), client))
    assert best.format in (ImageFormat.JPEG, ImageFormat.WEBP, ImageFormat.AVIF, ImageFormat.PNG)
    for fmt in ("jpg", "webp", "avif"):
        single = Processor(DEFAULT_CONFIG).process(Job(data, options(f"rs:fit:500:500/aq:dssim/f:{fmt}"), client))
        assert len(best.data) <= len(single.data)
    assert len({k.split(":")[1] for k, _ in best.qualities}) == 3  # every lossy candidate was searched


def test_best_format_keeps_alpha_and_respects_preferred_formats() -> None:
    alpha = fixture_bytes("embedgravitybird.png")
    result = Processor(DEFAULT_CONFIG).process(Job(alpha, options("rs:fit:300:300/f:best")))
    assert result.format is ImageFormat.PNG  # JPEG is dropped: it cannot keep the transparency
    assert load(result.data).hasalpha()


def test_best_format_by_default_and_its_resolution_cap() -> None:
    data = benchmark("jpeg")
    config = dataclasses.replace(DEFAULT_CONFIG, best_by_default=True)
    result = Processor(config).process(Job(data, options("rs:fit:300:300"), ClientFormats(webp=True)))
    assert {k.split(":")[1] for k, _ in result.qualities} == {"jpeg", "webp"}
    capped = dataclasses.replace(config, best_max_resolution=0.01)
    only_first = Processor(capped).process(Job(data, options("rs:fit:300:300"), ClientFormats(webp=True)))
    assert only_first.format is ImageFormat.JPEG


def test_tiny_images_still_encode() -> None:
    data = benchmark("jpeg")
    result = Processor(ProcessingConfig()).process(Job(data, options("rs:fit:6:6/aq:dssim/f:jpg")))
    assert load(result.data).width == 6


def test_reference_refuses_a_different_size() -> None:
    img = vips.pixels(load(benchmark("jpeg")).resize(0.05))
    other = vips.save(img.resize(0.5), ".png")
    with pytest.raises(ValueError):
        Reference(img).dssim(other)


@pytest.mark.parametrize(
    ("name", "size"),
    [("flowers.jpeg", 600), ("gamma_dalai_lama_gray.jpg", 300), ("embedgravitybird.png", 200), ("concert.jpg", 40)],
)
def test_the_quick_check_measures_what_the_reference_measures(name: str, size: int) -> None:
    """aq:ml's numpy check and the search's libvips Reference: the same metric (colour, grey, alpha, tiny)."""
    img = vips.pixels(vips.thumbnail(fixture_bytes(name), size))
    for quality in (30, 85):
        blob = vips.save(img, ".webp", Q=quality)
        expected = Reference(img).dssim(blob)
        assert NumpyReference(img).dssim(blob) == pytest.approx(expected, rel=0.01, abs=1e-6)
    with pytest.raises(ValueError):
        NumpyReference(img).dssim(vips.save(img.resize(0.5), ".png"))
