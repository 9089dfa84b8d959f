"""Perceptual auto-quality: the lowest encoder quality whose result stays within a DSSIM target.

DSSIM here is ``1/SSIM - 1`` of the luminance, with SSIM from libvips operations against
the already-resized image: 8×8 block windows (box statistics from ``shrink``, as x264's
SSIM) and the constants of Wang et al. 2004. libvips has no SSIM operation; a Gaussian
window measured 30-45 ms per compare at 800 px here, the box windows a few ms, which is
what keeps a search within a few plain encodes. Numbers are not portable to other SSIM
implementations (../shared/reference/vision-models.md): targets are calibrated to this one.

The search is bounded (≤ 5 encodes): probe, then interpolate on log(DSSIM) between the best
passing and the best failing quality, as bisection would but converging faster.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.processing import vips

_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
_BLOCK = 8
MAX_ENCODES = 5

AUTOQUALITY_FORMATS = frozenset({ImageFormat.JPEG, ImageFormat.WEBP, ImageFormat.AVIF, ImageFormat.JXL})
METRIC_VERSION = "dssim-vips-lum-box8-v1"


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
    target: float = 0.02
    min_quality: int = 30
    max_quality: int = 90
    allowed_error: float = 0.002
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


def _luma(img: Any) -> Any:
    if img.hasalpha():
        img = img.flatten(background=[255] * (img.bands - 1))
    if img.interpretation != "b-w" or img.bands != 1:
        img = img.colourspace("b-w")
        if img.bands > 1:
            img = img.extract_band(0)
    if img.format == "ushort":  # 16-bit (preserve_hdr): compare on the 8-bit scale of the constants
        img = img / 256
    return img.cast("float")


def measurable(img: Any) -> bool:
    """At least one whole block each way."""
    return bool(img.width >= _BLOCK and img.height >= _BLOCK)


def _mean(img: Any) -> Any:
    """Local means over 8×8 blocks (a box window, as x264's and libaom's SSIM use): one fast ``shrink``."""
    return img.shrink(_BLOCK, _BLOCK)


class Reference:
    """The resized image's luminance statistics, computed once for every candidate."""

    def __init__(self, img: Any) -> None:
        x = _luma(img)
        # Whole blocks only: shrink would average a partial edge block with fewer pixels.
        width, height = x.width - x.width % _BLOCK, x.height - x.height % _BLOCK
        if width < _BLOCK or height < _BLOCK:
            raise ValueError("image too small to measure")
        self.size = (x.width, x.height)
        self.area = (width, height)
        self.x = vips.pixels(x.extract_area(0, 0, width, height))
        self.mu = vips.pixels(_mean(self.x))
        self.var = vips.pixels(_mean(self.x * self.x) - self.mu * self.mu)

    def ssim(self, candidate: Any) -> float:
        y = _luma(candidate)
        if (y.width, y.height) != self.size:
            raise ValueError("candidate size differs from the reference")
        y = vips.pixels(y.extract_area(0, 0, *self.area))
        mu_y = _mean(y)
        var_y = _mean(y * y) - mu_y * mu_y
        cov = _mean(self.x * y) - self.mu * mu_y
        num = (self.mu * mu_y * 2 + _C1) * (cov * 2 + _C2)
        den = (self.mu * self.mu + mu_y * mu_y + _C1) * (self.var + var_y + _C2)
        return float(vips.evaluate(num / den, lambda image: image.avg()))

    def dssim(self, encoded: bytes) -> float:
        similarity = self.ssim(vips.open_source(encoded))
        return 1.0 / max(similarity, 1e-6) - 1.0


def search(
    encode: Callable[[int], bytes],
    measure: Callable[[bytes], float],
    params: AutoQualityParams,
    budget: int = MAX_ENCODES,
) -> Choice:
    """The lowest quality in [min, max] whose DSSIM is within the target, in at most ``budget`` encodes.

    Stops early once a passing result is within ``allowed_error`` of the target. If none
    passes, the highest quality tried (the closest to the target) is returned.
    """
    lo, hi, target = params.min_quality, params.max_quality, params.target
    tried: dict[int, tuple[bytes, float]] = {}
    trail: list[tuple[int, float]] = []
    quality = round(lo + (hi - lo) * 0.6)
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
            d_pass, d_fail = tried[best_pass][1], tried[best_fail][1]
            span = math.log(max(d_fail, 1e-9)) - math.log(max(d_pass, 1e-9))
            share = (math.log(max(d_fail, 1e-9)) - math.log(target)) / span if span > 0 else 0.5
            nxt = round(best_fail + share * (best_pass - best_fail))
            nxt = min(max(nxt, best_fail + 1), best_pass - 1)
        elif best_pass is not None:
            if best_pass <= lo:
                break
            nxt = max(lo, best_pass - max(4, (best_pass - lo) // 2))
        else:
            assert best_fail is not None
            if best_fail >= hi:
                break
            nxt = min(hi, best_fail + max(4, (hi - best_fail) // 2))
        if nxt in tried:
            break
        quality = nxt
    passing = [q for q, (_, v) in tried.items() if v <= target]
    chosen = min(passing) if passing else max(tried)
    data, d = tried[chosen]
    return Choice(data, chosen, d, len(tried), trail)


def size_bucket(width: int, height: int) -> str:
    """Results of about the same size share a stored choice: powers of two of the pixel count."""
    return f"p{max(0, round(math.log2(max(1, width * height))))}"
