"""Auto-quality against fixed q80 at equal measured quality: where the bytes can come from.

``python -m benchmarks.aq_claim [--step 3] [--out benchmarks/out/aq_claim.json]``

Every still of ``benchmarks.eval.AQ_SET`` is fitted into 800 px and flattened (as the eval
does), then encoded over a grid of qualities with the server's encoder settings and with
variants (JPEG progressive/trellis, WebP effort 6 + smart subsampling, AVIF at a higher
effort). Each encode is measured twice: with our search's metric (DSSIM from
``processing.quality.Reference``, which starts at half resolution) and with an independent
one, blazediff-ssim's MS-SSIM (Rust, Gaussian windows, RGB, full resolution). From these
curves, for each format:

- q80: mean bytes and mean independent quality (the bar);
- ``aq`` at the target that makes its mean independent quality equal q80's (the search is
  simulated on the grid: the lowest quality whose DSSIM is within the target), with the
  default target's result alongside;
- the same with the variant encoder settings (free wins at equal quality);
- an oracle that knows the independent metric: per-image qualities that minimise the mean
  byte ratio at q80's mean quality (a Lagrangian sweep) — the ceiling of any per-image
  quality choice on this set.

"bytes vs q80" is the mean of per-image ratios (each image counts once, as in the eval).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

from benchmarks.eval import AQ_SET, CONFIG, _rgba, independent_quality, options
from benchmarks.faceset import FIXTURES
from imgproxy_py.processing import Job, Processor, quality, vips
from imgproxy_py.processing.quality import Reference

# (format, variant) -> (suffix, save options without Q); "server" is what the server writes today.
VARIANTS: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
    ("jpeg", "server"): (".jpg", {"optimize_coding": True, "subsample_mode": "auto"}),
    ("jpeg", "progressive"): (".jpg", {"optimize_coding": True, "subsample_mode": "auto", "interlace": True}),
    (
        "jpeg",
        "trellis+progressive",
    ): (
        ".jpg",
        {"optimize_coding": True, "subsample_mode": "auto", "interlace": True, "trellis_quant": True},
    ),
    ("webp", "server"): (".webp", {"effort": 4}),
    ("webp", "effort6+smart"): (".webp", {"effort": 6, "smart_subsample": True}),
    ("avif", "server"): (".avif", {"compression": "av1", "effort": 1, "bitdepth": 8}),
    ("avif", "effort4"): (".avif", {"compression": "av1", "effort": 4, "bitdepth": 8}),
}


class FullResolution(Reference):
    """Our metric with MS-SSIM's finest scale too (full resolution, 4 scales): about four times
    the pixel work of the shipped one, which starts at half resolution."""

    def __init__(self, img: Any) -> None:
        x = vips.pixels(quality._luma(img))
        self.size = (x.width, x.height)
        self.first_shrink = 1
        self.scales = [quality._Scale(x)]
        while len(self.scales) < 4 and quality.measurable(x := x.shrink(2, 2)):
            x = vips.pixels(x)
            self.scales.append(quality._Scale(x))
        weights = (0.0448, *quality._WEIGHTS)[: len(self.scales)]
        self.weights = [w / sum(weights) for w in weights]


def sweep(step: int, names: tuple[str, ...] = AQ_SET) -> dict[str, Any]:
    qualities = list(range(20, 96, step))
    if 80 not in qualities:
        qualities = sorted({*qualities, 80})
    data: dict[str, Any] = {}
    for name in names:
        src = (FIXTURES / "images" / name).read_bytes()
        png = Processor(CONFIG).process(Job(src, options("rs:fit:800:800/bg:ffffff/f:png"))).data
        img = vips.pixels(vips.open_source(png))
        reference = _rgba(img)
        ours, full = Reference(img), FullResolution(img)
        per: dict[str, Any] = {}
        for (fname, variant), (suffix, opts) in VARIANTS.items():
            rows = []
            for q in qualities:
                encoded = vips.save(img, suffix, Q=q, keep="none", **opts)
                measured = independent_quality(reference, encoded)
                rows.append((q, len(encoded), ours.dssim(encoded), measured, full.dssim(encoded)))
            per[f"{fname}/{variant}"] = rows
        data[name] = per
        print(f"  {name}", file=sys.stderr, flush=True)
    return {"qualities": qualities, "images": data}


def _aq_pick(rows: list[list[float]], target: float) -> list[float]:
    """The search on the grid: the lowest quality within the target (else the highest)."""
    passing = [r for r in rows if r[2] <= target]
    return min(passing, key=lambda r: r[0]) if passing else max(rows, key=lambda r: r[0])


def _at_q80(rows: list[list[float]]) -> list[float]:
    return next(r for r in rows if r[0] == 80)


def aq_at(curves: dict[str, Any], key: str, target: float, base: dict[str, list[float]]) -> tuple[float, float]:
    """(mean bytes vs q80, mean independent quality) of aq at ``target`` with ``key``'s encoder."""
    picks = {name: _aq_pick(per[key], target) for name, per in curves.items()}
    ratio = statistics.mean(picks[n][1] / base[n][1] for n in curves)
    return ratio, statistics.mean(p[3] for p in picks.values())


def spread(curves: dict[str, Any], key: str, target: float | None) -> float:
    """Standard deviation over the images of the independent quality (q80 when ``target`` is None)."""
    picks = [_at_q80(per[key]) if target is None else _aq_pick(per[key], target) for per in curves.values()]
    return statistics.pstdev(p[3] for p in picks)


def calibrate(
    curves: dict[str, Any], key: str, quality: float, base: dict[str, list[float]]
) -> tuple[float, float, float]:
    """The largest target whose mean independent quality is still ≥ ``quality`` (log-space bisection)."""
    lo, hi = math.log(1e-5), math.log(0.05)
    for _ in range(40):
        mid = (lo + hi) / 2
        _, q = aq_at(curves, key, math.exp(mid), base)
        lo, hi = (mid, hi) if q >= quality else (lo, mid)
    target = math.exp(lo)
    ratio, q = aq_at(curves, key, target, base)
    return target, ratio, q


def oracle(curves: dict[str, Any], key: str, quality: float, base: dict[str, list[float]]) -> tuple[float, float]:
    """Per-image qualities minimising mean(bytes/q80 bytes) subject to mean independent quality ≥ ``quality``."""

    def pick(lam: float) -> tuple[float, float]:
        ratios, quals = [], []
        for name, per in curves.items():
            best = min(per[key], key=lambda r: r[1] / base[name][1] - lam * r[3])
            ratios.append(best[1] / base[name][1])
            quals.append(best[3])
        return statistics.mean(ratios), statistics.mean(quals)

    lo, hi = 0.0, 1e6
    for _ in range(60):
        mid = math.sqrt(lo * hi) if lo > 0 else hi / 1e6
        _, q = pick(mid)
        lo, hi = (lo, mid) if q >= quality else (mid, hi)
    return pick(hi)


def _fine(rows: list[list[float]]) -> list[list[float]]:
    """The grid filled in at every quality step (log-linear bytes and DSSIMs, linear MS-SSIM between
    neighbours), so the simulated search and the oracle are not held to the grid's coarse steps."""
    out = []
    for r0, r1 in zip(rows, rows[1:], strict=False):
        for q in range(int(r0[0]), int(r1[0])):
            t = (q - r0[0]) / (r1[0] - r0[0])
            row = [float(q)]
            for i in range(1, len(r0)):
                if i == 3:  # MS-SSIM
                    row.append(r0[i] + t * (r1[i] - r0[i]))
                else:
                    a, b = math.log(max(r0[i], 1e-9)), math.log(max(r1[i], 1e-9))
                    row.append(math.exp(a + t * (b - a)))
            out.append(row)
    out.append(list(rows[-1]))
    return out


def scale_check(sweep_data: dict[str, Any]) -> list[dict[str, Any]]:
    """aq at q80's mean quality with our metric as shipped (from half resolution) and with a
    full-resolution scale added (column 4 of the sweep): does the metric's scale decide the result?"""
    out = []
    for key in ("jpeg/server", "webp/server", "avif/server"):
        for label, column in (("from half resolution (shipped)", 2), ("full resolution, 4 scales", 4)):
            curves = {
                name: {key: [[r[0], r[1], r[column], r[3]] for r in _fine(sorted(per[key]))]}
                for name, per in sweep_data["images"].items()
                if len(per[key][0]) > column
            }
            if len(curves) != len(sweep_data["images"]):
                continue
            base = {n: _at_q80(per[key]) for n, per in curves.items()}
            q80 = statistics.mean(b[3] for b in base.values())
            target, ratio, q = calibrate(curves, key, q80, base)
            out.append({"encoder": key, "metric": label, "target": target, "aq_ratio": ratio, "aq_quality": q})
    return out


def analyse(sweep_data: dict[str, Any], default_target: float) -> list[dict[str, Any]]:
    curves = {
        name: {key: _fine(sorted(rows)) for key, rows in per.items()} for name, per in sweep_data["images"].items()
    }
    out = []
    for fname in ("jpeg", "webp", "avif"):
        server = f"{fname}/server"
        if server not in next(iter(curves.values())):
            continue
        base = {n: _at_q80(per[server]) for n, per in curves.items()}
        q80_quality = statistics.mean(b[3] for b in base.values())
        default_ratio, default_q = aq_at(curves, server, default_target, base)
        for key in [k for k in next(iter(curves.values())) if k.startswith(fname + "/")]:
            own80 = {n: _at_q80(per[key]) for n, per in curves.items()}
            target, ratio, q = calibrate(curves, key, q80_quality, base)
            oracle_ratio, oracle_q = oracle(curves, key, q80_quality, base)
            out.append(
                {
                    "format": fname,
                    "encoder": key.split("/")[1],
                    "q80_quality": q80_quality,
                    "q80_same_encoder_ratio": statistics.mean(own80[n][1] / base[n][1] for n in curves),
                    "q80_same_encoder_quality": statistics.mean(r[3] for r in own80.values()),
                    "aq_default_ratio": default_ratio if key == server else None,
                    "aq_default_quality": default_q if key == server else None,
                    "target_at_q80_quality": target,
                    "aq_ratio": ratio,
                    "aq_quality": q,
                    "q80_quality_sd": spread(curves, key, None),
                    "aq_quality_sd": spread(curves, key, target),
                    "oracle_ratio": oracle_ratio,
                    "oracle_quality": oracle_q,
                }
            )
    return out


def best_of_formats(sweep_data: dict[str, Any], default_target: float) -> list[dict[str, Any]]:
    """``f:best`` simulated (the smallest of JPEG, WebP and AVIF at aq's choice, PNG left out)
    against fixed q80 JPEG: at the default target, and at the target where its mean
    independent quality equals q80 JPEG's."""
    curves = {
        name: {key: _fine(sorted(rows)) for key, rows in per.items()} for name, per in sweep_data["images"].items()
    }
    first = next(iter(curves.values()))
    if not {"jpeg/server", "webp/server", "avif/server"} <= set(first):
        return []
    base = {n: _at_q80(per["jpeg/server"]) for n, per in curves.items()}
    q80 = statistics.mean(b[3] for b in base.values())
    out = []
    for avif in [k for k in first if k.startswith("avif/")]:

        def at(target: float, avif: str = avif) -> tuple[float, float]:
            picks = []
            for name, per in curves.items():
                chosen = min(
                    (_aq_pick(per[k], target) for k in ("jpeg/server", "webp/server", avif)), key=lambda r: r[1]
                )
                picks.append((chosen[1] / base[name][1], chosen[3]))
            return statistics.mean(r for r, _ in picks), statistics.mean(q for _, q in picks)

        lo, hi = math.log(1e-5), math.log(0.05)
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if at(math.exp(mid))[1] >= q80 else (lo, mid)
        ratio, quality_at = at(math.exp(lo))
        default_ratio, default_quality = at(default_target)
        out.append(
            {
                "avif": avif,
                "q80_jpeg_quality": q80,
                "default_ratio": default_ratio,
                "default_quality": default_quality,
                "target_at_q80_quality": math.exp(lo),
                "ratio": ratio,
                "quality": quality_at,
            }
        )
    return out


def markdown(rows: list[dict[str, Any]], default_target: float) -> str:
    lines = [
        f"| format | encoder | q80 (this encoder): bytes vs server q80 / MS-SSIM | aq at default {default_target}: "
        "bytes / MS-SSIM | target for q80's MS-SSIM | aq there: bytes / MS-SSIM | oracle: bytes / MS-SSIM |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        default = (
            f"{r['aq_default_ratio']:.3f} / {r['aq_default_quality']:.4f}" if r["aq_default_ratio"] is not None else ""
        )
        own = f"{r['q80_same_encoder_ratio']:.3f} / {r['q80_same_encoder_quality']:.4f}"
        lines.append(
            f"| {r['format']} | {r['encoder']} | {own} | {default} | {r['target_at_q80_quality']:.5f}"
            f" | {r['aq_ratio']:.3f} / {r['aq_quality']:.4f} | {r['oracle_ratio']:.3f} / {r['oracle_quality']:.4f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=int, default=3, help="quality grid step (20..95)")
    parser.add_argument("--target", type=float, default=0.0025, help="the default aq target to show")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/aq_claim.json"))
    parser.add_argument("--reuse", action="store_true", help="analyse the saved sweep again without encoding")
    parser.add_argument("--images", default="", help="comma list of AQ_SET names to sweep (default: all)")
    parser.add_argument("--merge", default="", help="comma list of saved sweeps to analyse together")
    args = parser.parse_args(argv)
    if args.merge:
        parts = [json.loads(Path(p).read_text())["sweep"] for p in args.merge.split(",")]
        data = {"qualities": parts[0]["qualities"], "images": {k: v for p in parts for k, v in p["images"].items()}}
    elif args.reuse:
        data = json.loads(args.out.read_text())["sweep"]
    else:
        data = sweep(args.step, tuple(filter(None, args.images.split(","))) or AQ_SET)
    rows = analyse(data, args.target)
    print(markdown(rows, args.target))
    scales = scale_check(data)
    for row in scales:
        print(
            f"{row['encoder']}, our metric {row['metric']}: target {row['target']:.5f} for q80's quality, "
            f"aq bytes vs q80 {row['aq_ratio']:.3f} at MS-SSIM {row['aq_quality']:.4f}"
        )
    best = best_of_formats(data, args.target)
    for row in best:
        print(
            f"f:best (JPEG, WebP, {row['avif']}) vs q80 JPEG (MS-SSIM {row['q80_jpeg_quality']:.4f}): at the default "
            f"target {row['default_ratio']:.3f} at {row['default_quality']:.4f}; at target "
            f"{row['target_at_q80_quality']:.5f} {row['ratio']:.3f} at {row['quality']:.4f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"sweep": data, "rows": rows, "scale_check": scales, "best": best}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
