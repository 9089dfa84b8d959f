"""Perceptual auto-quality: the lowest encoder quality whose result stays within a DSSIM target.

DSSIM here is ``1/SSIM - 1`` of the luminance, with SSIM against the already-resized image
(Reference: libvips operations; NumpyReference, what requests use: the same in numpy):
8×8 block windows (box statistics, as x264's SSIM) and the constants of Wang et al. 2004.
libvips has no SSIM operation; a Gaussian window measured 30-45 ms per compare at 800 px
here, the box windows a few ms, which is what keeps a search within a few plain encodes.
Numbers are not portable to other SSIM implementations (../shared/reference/vision-models.md):
targets are calibrated to this one.

The search is bounded (≤ 5 encodes): probe, then interpolate on log(DSSIM) between the best
passing and the best failing quality, as bisection would but converging faster, bisecting
when two steps in a row land on the same side.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.processing import vips

_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
_BLOCK = 8
MAX_ENCODES = 5

AUTOQUALITY_FORMATS = frozenset({ImageFormat.JPEG, ImageFormat.WEBP, ImageFormat.AVIF, ImageFormat.JXL})
METRIC_VERSION = "dssim-vips-luma601-box8-ms3-v1"


@dataclass(frozen=True, slots=True)
class AutoQualityParams:
    target: float
    min_quality: int
    max_quality: int
    allowed_error: float


@dataclass(frozen=True, slots=True)
class AutoQualityDefaults:
    """IMGPROXY_AUTOQUALITY_* (processing's slice of the analysis settings)."""

    method: str = "none"
    # q80 JPEG's mean quality on the evaluation set (an independent MS-SSIM 0.9975 vs 0.9977; at it
    # f:best is 31% smaller than q80 JPEG): benchmarks/RESULTS.md, `python -m benchmarks.aq_claim`.
    target: float = 0.0025
    min_quality: int = 30
    max_quality: int = 90
    allowed_error: float = 0.0003
    format_min: tuple[tuple[ImageFormat, int], ...] = ()
    format_max: tuple[tuple[ImageFormat, int], ...] = ()

    def params(self, fmt: ImageFormat, method: str, target: float, lo: int, hi: int, error: float) -> AutoQualityParams:
        """URL values (zero/empty: not given) over per-format settings over the general ones."""
        lo = lo or dict(self.format_min).get(fmt, self.min_quality)
        hi = hi or dict(self.format_max).get(fmt, self.max_quality)
        return AutoQualityParams(target or self.target, min(lo, hi), hi, error or self.allowed_error)


@dataclass(slots=True)
class Choice:
    data: bytes
    quality: int
    dssim: float | None  # None: taken from a stored choice without measuring
    encodes: int
    trail: list[tuple[int, float]] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (quality, bytes) of every encode


def _luma(img: Any) -> Any:
    """Rec. 601 luma of the gamma-encoded pixels, as float: one ``recomb``, no colour-space maths."""
    if img.hasalpha():
        img = img.flatten(background=[255] * (img.bands - 1))
    if img.format == "ushort":  # 16-bit (preserve_hdr): compare on the 8-bit scale of the constants
        img = img / 256
    if img.bands >= 3:
        return img.extract_band(0, n=3).recomb([[0.299, 0.587, 0.114]])
    return img.extract_band(0).cast("float")


def measurable(img: Any) -> bool:
    """At least one whole block each way."""
    return bool(img.width >= _BLOCK and img.height >= _BLOCK)


def _mean(img: Any) -> Any:
    """Local means over 8×8 blocks (a box window, as x264's and libaom's SSIM use): one fast ``shrink``."""
    return img.shrink(_BLOCK, _BLOCK)


# MS-SSIM's scale weights (Wang, Simoncelli, Bovik 2003) without the finest scale, whose
# weight is small (0.0448) and which would cost as much as all the others together, and
# without the coarsest (0.1333), whose few pixels cost a quarter of a compare in overhead.
_WEIGHTS = (0.2856, 0.3001, 0.2363)


class _Scale:
    """One scale of the reference: its luminance and block statistics, kept in memory.

    The terms that depend only on the reference are precomputed, so a candidate costs a
    handful of libvips operations per scale (each one also costs a Python round trip).
    """

    def __init__(self, x: Any) -> None:
        width, height = x.width - x.width % _BLOCK, x.height - x.height % _BLOCK
        self.area = (width, height)
        self.x = vips.pixels(x.extract_area(0, 0, width, height))  # whole blocks only
        mu = vips.pixels(_mean(self.x))
        self.mu = mu
        self.two_mu = vips.pixels(mu * 2)
        self.mu2_c1 = vips.pixels(mu * mu + _C1)
        self.var_c2 = vips.pixels(_mean(self.x * self.x) - mu * mu + _C2)

    def ssim(self, y: Any) -> float:
        """``y``: the candidate's luma at this scale, in memory."""
        y = y.extract_area(0, 0, *self.area)
        mu_y = _mean(y)
        mu_y2 = mu_y * mu_y
        cov = _mean(self.x * y) - self.mu * mu_y
        var_y = _mean(y * y) - mu_y2
        num = (self.two_mu * mu_y).linear(1, _C1) * cov.linear(2, _C2)
        den = (self.mu2_c1 + mu_y2) * (self.var_c2 + var_y)
        return float(vips.evaluate(num / den, lambda image: image.avg()))


class Reference:
    """The resized image's luminance statistics at up to three scales, computed once for every candidate.

    Multi-scale (half, quarter, … of the image; MS-SSIM's weights): at full resolution alone,
    SSIM punishes lost fine texture in detailed photos and misses blocking and banding in
    smooth ones, which made the search spend bytes where they show least.
    """

    def __init__(self, img: Any) -> None:
        x = _luma(img)
        self.size = (x.width, x.height)
        if x.width >= 4 * _BLOCK and x.height >= 4 * _BLOCK:
            self.first_shrink = 2
            x = x.shrink(2, 2)
        else:  # small images: from full resolution
            self.first_shrink = 1
        if not measurable(x):
            raise ValueError("image too small to measure")
        x = vips.pixels(x)
        self.scales = [_Scale(x)]
        while len(self.scales) < len(_WEIGHTS) and measurable(x := x.shrink(2, 2)):
            x = vips.pixels(x)
            self.scales.append(_Scale(x))
        weights = _WEIGHTS[: len(self.scales)]
        self.weights = [w / sum(weights) for w in weights]

    def ssim(self, candidate: Any) -> float:
        y = _luma(candidate)
        if (y.width, y.height) != self.size:
            raise ValueError("candidate size differs from the reference")
        if self.first_shrink > 1:
            y = y.shrink(self.first_shrink, self.first_shrink)
        y = vips.pixels(y)  # decode the candidate once; every scale is shrunk from memory
        product = 1.0
        for index, (scale, weight) in enumerate(zip(self.scales, self.weights, strict=True)):
            if index:
                y = vips.pixels(y.shrink(2, 2))
            product *= max(scale.ssim(y), 1e-6) ** weight
        return product

    def dssim(self, encoded: bytes, decode: Callable[[bytes], Any] = vips.open_source) -> float:
        """DSSIM of an encoded candidate; ``decode`` for formats libvips cannot read (JPEG XL)."""
        similarity = self.ssim(decode(encoded))
        return 1.0 / max(similarity, 1e-6) - 1.0


def _half_luma(img: Any) -> Any:
    """The luma at the resolution Reference starts from, as a float64 numpy array: one libvips round trip."""
    x = _luma(img)
    if x.width >= 4 * _BLOCK and x.height >= 4 * _BLOCK:
        x = x.shrink(2, 2)
    x = x.cast("float")
    data = vips.evaluate(x, lambda image: image.write_to_memory())
    return np.frombuffer(data, dtype=np.float32).reshape(x.height, x.width).astype(np.float64)


def _block_ssim(x: Any, y: Any) -> float:
    """Mean SSIM over whole 8×8 blocks (box windows), as ``_Scale.ssim`` computes it in libvips."""
    h, w = x.shape[0] - x.shape[0] % _BLOCK, x.shape[1] - x.shape[1] % _BLOCK
    x, y = x[:h, :w], y[:h, :w]

    def mean(a: Any) -> Any:
        return a.reshape(h // _BLOCK, _BLOCK, w // _BLOCK, _BLOCK).mean(axis=(1, 3))

    mu_x, mu_y = mean(x), mean(y)
    var_x = mean(x * x) - mu_x * mu_x
    var_y = mean(y * y) - mu_y * mu_y
    cov = mean(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + _C1) * (2 * cov + _C2)
    den = (mu_x * mu_x + mu_y * mu_y + _C1) * (var_x + var_y + _C2)
    return float((num / den).mean())


def _halve(a: Any) -> Any:
    h, w = a.shape[0] // 2, a.shape[1] // 2
    return a[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3))


class NumpyReference:
    """The metric the server measures with (``aq:dssim`` and ``aq:ml``): Reference's, in numpy.

    The same luma, scales, 8×8 blocks, constants and weights as Reference, whose libvips form
    costs a Python round trip per operation (about 60 to set up, 40 per compare): here each
    side is one round trip (luma at half resolution into memory) and the block statistics are
    numpy over a quarter of the output's pixels. Measured on the fixtures at 640 px, one
    compare including the candidate's decode: 12-20 ms of CPU against 28-42 ms; the search
    spends about 16% less CPU with the same choices, ``aq:ml`` (one or two compares) a third
    less. The DSSIM agrees with Reference's to about 1e-4 relative (scale borders are cropped
    where libvips' shrink rounds; tests/processing/test_autoquality.py checks it), so the
    metric version is unchanged. Reference stays as the offline tools' reference metric.
    """

    def __init__(self, img: Any) -> None:
        self.size = (img.width, img.height)
        self.x = _half_luma(img)
        if not measurable_shape(self.x.shape):
            raise ValueError("image too small to measure")

    def ssim(self, candidate: Any) -> float:
        if (candidate.width, candidate.height) != self.size:
            raise ValueError("candidate size differs from the reference")
        x, y = self.x, _half_luma(candidate)
        scores: list[float] = []
        while len(scores) < len(_WEIGHTS):
            scores.append(max(_block_ssim(x, y), 1e-6))
            x, y = _halve(x), _halve(y)
            if not measurable_shape(x.shape):
                break
        weights = _WEIGHTS[: len(scores)]
        product = 1.0
        for score, weight in zip(scores, weights, strict=True):
            product *= score ** (weight / sum(weights))
        return product

    def dssim(self, encoded: bytes, decode: Callable[[bytes], Any] = vips.open_source) -> float:
        return 1.0 / max(self.ssim(decode(encoded)), 1e-6) - 1.0


def measurable_shape(shape: tuple[int, ...]) -> bool:
    return shape[0] >= _BLOCK and shape[1] >= _BLOCK


# How fast log(DSSIM) falls per quality step, before two probes measure it (about 0.035-0.06
# for JPEG, WebP and AVIF on the evaluation set); it only shapes the second probe.
_LOG_SLOPE = 0.045
_PROBE_TARGET = 0.0025  # the target whose first probe is 60% of the quality range


def search(
    encode: Callable[[int], bytes],
    measure: Callable[[bytes], float],
    params: AutoQualityParams,
    budget: int = MAX_ENCODES,
    start: int | None = None,
) -> Choice:
    """The lowest quality in [min, max] whose DSSIM is within the target, in at most ``budget`` encodes.

    A probe (``start``, else 60% of the range moved along the typical slope by the target),
    then a step sized by how far the result was from the target (log DSSIM falls about
    linearly with quality), then secant steps between the best passing and failing
    qualities, or bisection when they keep landing on one side. Stops once a passing result is within
    ``allowed_error`` of the target. If none passes, the highest quality tried is returned.
    """
    lo, hi, target = params.min_quality, params.max_quality, params.target
    log_target = math.log(target)
    tried: dict[int, tuple[bytes, float]] = {}
    trail: list[tuple[int, float]] = []
    # No hint: 60% of the range suits a target of 0.0025; a stricter target starts higher along
    # the typical slope (0.0015: 11 steps), which saves about half an encode per miss on the set.
    probe = round(lo + (hi - lo) * 0.6 + (math.log(_PROBE_TARGET) - log_target) / _LOG_SLOPE)
    quality = start if start is not None and lo <= start <= hi else min(max(probe, lo), hi)
    while len(tried) < budget:
        data = encode(quality)
        d = measure(data)
        tried[quality] = (data, d)
        trail.append((quality, d))
        if d <= target and target - d <= params.allowed_error:
            break
        passing = [q for q, (_, v) in tried.items() if v <= target]
        failing = [q for q, (_, v) in tried.items() if v > target]
        best_pass = min(passing) if passing else None
        best_fail = max(failing) if failing else None
        if best_pass is not None and best_fail is not None:
            if best_pass - best_fail <= 1:
                break
            a, b = best_fail, best_pass
        elif len(trail) >= 2:  # both on one side: extrapolate along the measured slope
            (a, _), (b, _) = sorted(trail[-2:])
        else:
            a = b = quality
        if a != b:
            la, lb = (math.log(max(tried[q][1], 1e-9)) for q in (a, b))
            slope = (la - lb) / (b - a) if la > lb else _LOG_SLOPE
        else:
            slope = _LOG_SLOPE
        slope = min(max(slope, _LOG_SLOPE / 4), _LOG_SLOPE * 4)
        nxt = round(quality + (math.log(max(d, 1e-9)) - log_target) / slope)
        if best_pass is not None and best_fail is not None:
            nxt = min(max(nxt, best_fail + 1), best_pass - 1)
            # log(DSSIM) is convex in quality (it falls faster near the top, where JPEG also stops
            # subsampling chroma), so secant steps from a far point keep landing on one side and
            # creep (regula falsi): after two in a row on one side, bisect the bracket instead.
            if len(trail) >= 2 and (trail[-1][1] > target) == (trail[-2][1] > target):
                nxt = (best_fail + best_pass) // 2
        nxt = min(max(nxt, lo), hi)
        if nxt in tried:
            break
        quality = nxt
    passing = [q for q, (_, v) in tried.items() if v <= target]
    chosen = min(passing) if passing else max(tried)
    data, d = tried[chosen]
    return Choice(data, chosen, d, len(tried), trail, [(q, len(b)) for q, (b, _) in tried.items()])


# Added to aq:ml's predicted quality. The model's errors cost unequally: a prediction below the
# label lands over the target (accepted within allowed_error, else a second encode), one above
# costs about 2% bytes per step. On the held-out set (benchmarks/RESULTS.md), margin 0 / 1 / 2:
# mean DSSIM 0.00195 / 0.00181 / 0.00175 against the search's 0.00185, bytes 0.99 / 1.01 /
# 1.02 of the search's, 28% / 17% / 15% of results over the target, CPU 0.49 / 0.49 / 0.50.
PREDICTION_MARGIN = 1


def correct(
    encode: Callable[[int], bytes], measure: Callable[[bytes], float], params: AutoQualityParams, quality: int
) -> Choice:
    """``aq:ml``: encode at the predicted quality (plus PREDICTION_MARGIN), measure once, and
    correct with at most one more encode.

    Over the target by more than ``allowed_error``: one step up along the typical slope (kept
    even if it still misses: the budget is two encodes). Under it by more than four times
    ``allowed_error``: one step down, kept only if it still passes (a smaller margin made the
    second encode pay for itself less often: 0.60× the search's CPU instead of 0.52× on the
    held-out set, for 0.2% fewer bytes; benchmarks/RESULTS.md).
    """
    lo, hi, target = params.min_quality, params.max_quality, params.target
    quality = min(max(quality + PREDICTION_MARGIN, lo), hi)
    data = encode(quality)
    d = measure(data)
    trail, sizes = [(quality, d)], [(quality, len(data))]
    step = (math.log(max(d, 1e-9)) - math.log(target)) / _LOG_SLOPE
    if d > target + params.allowed_error and quality < hi:
        nxt = min(hi, quality + max(1, math.ceil(step)))
    elif d < target - 4 * params.allowed_error and quality > lo:
        nxt = max(lo, quality + min(-1, math.trunc(step)))
    else:
        return Choice(data, quality, d, 1, trail, sizes)
    data2 = encode(nxt)
    d2 = measure(data2)
    trail.append((nxt, d2))
    sizes.append((nxt, len(data2)))
    if nxt > quality or d2 <= target:
        return Choice(data2, nxt, d2, 2, trail, sizes)
    return Choice(data, quality, d, 2, trail, sizes)


def size_bucket(width: int, height: int) -> str:
    """Results of about the same size share a stored choice: powers of two of the pixel count."""
    return f"p{max(0, round(math.log2(max(1, width * height))))}"
