"""Offline evaluation of ``aq:ml`` against ``aq:dssim`` and q80: ``python -m benchmarks.aq_ml``.

A model is trained on the dataset's training split only (train.held_out: by source image),
then every held-out source image — which that model never saw — is fitted into each width
and encoded per format three ways. Per way: mean bytes (and relative to aq:dssim), achieved
quality by our DSSIM (the search's metric) and, with the bench extra, blazediff-ssim's
MS-SSIM (independent), and CPU seconds per image (``time.process_time``: every thread of this
process, so libvips' own threads count).

    imgproxy-py models collect examples/images ../shared/fixtures/images --into /tmp/aq.sqlite
    python -m benchmarks.aq_ml --data /tmp/aq.sqlite examples/images ../shared/fixtures/images
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from imgproxy_py.analysis.records import source_digest
from imgproxy_py.options.parser import Parser
from imgproxy_py.processing import Job, ProcessingConfig, Processor, vips
from imgproxy_py.processing.quality import METRIC_VERSION, Reference
from imgproxy_py.quality_model.collect import images
from imgproxy_py.quality_model.dataset import Dataset
from imgproxy_py.quality_model.inputs import FEATURE_VERSION
from imgproxy_py.quality_model.registry import ModelHandle, Registry
from imgproxy_py.quality_model.serving import QualityModelService
from imgproxy_py.quality_model.train import fit, held_out
from imgproxy_py.quality_model.trees import sha256

WAYS = ("q80", "aq:dssim", "aq:ml")


def _independent(reference_png: bytes, encoded: bytes) -> float | None:
    try:
        from benchmarks.eval import _rgba, independent_quality
    except ImportError:
        return None
    try:
        return independent_quality(_rgba(vips.open_source(reference_png)), encoded)
    except (ImportError, ValueError):  # no bench extra; or an image under the metric's 11 px minimum
        return None


def run(data_path: Path, folders: list[str], widths: list[int], formats: list[str], target: float) -> dict[str, Any]:
    rows = list(Dataset(data_path).rows(FEATURE_VERSION, METRIC_VERSION))
    test_digests = {r.source_digest for r in rows if held_out(r)}
    model = fit([r for r in rows if not held_out(r)], "eval-train-split")
    tmp = tempfile.mkdtemp(prefix="aq-ml-eval-")
    registry = Registry(tmp)
    artefact = model.to_json()
    registry.publish(model.version, artefact, {"version": model.version, "sha256": sha256(artefact)})
    registry.promote(model.version)
    config = ProcessingConfig()
    ml_config = dataclasses.replace(config, quality_model=QualityModelService(ModelHandle(tmp, poll=3600)))
    parser = Parser(config.options)
    seen: set[str] = set()
    cells: dict[str, list[tuple[int, float, float | None, float, int]]] = {w: [] for w in WAYS}
    for path in images(folders):
        data = path.read_bytes()
        digest = source_digest(data)
        if digest not in test_digests or digest in seen:
            continue
        seen.add(digest)
        for width in widths:
            base = f"rs:fit:{width}:{width}:0/bg:ffffff"
            reference_png = (
                Processor(config).process(Job(data, parser.parse(f"/{base}/f:png/plain/local:///x").options)).data
            )
            ref = Reference(vips.open_source(reference_png))
            for fmt in formats:
                for way in WAYS:
                    opt = "q:80" if way == "q80" else f"{way}:{target:g}"
                    po = parser.parse(f"/{base}/{opt}/f:{fmt}/plain/local:///x").options
                    started = time.process_time()
                    result = Processor(ml_config if way == "aq:ml" else config).process(Job(data, po))
                    cpu = time.process_time() - started
                    decodes = fmt != "jxl"
                    dssim = ref.dssim(result.data) if decodes else float("nan")
                    cells[way].append(
                        (len(result.data), dssim, _independent(reference_png, result.data), cpu, result.encodes)
                    )
    summary: dict[str, Any] = {"held_out_images": len(seen), "target": target, "ways": {}}
    base_bytes = [b for b, *_ in cells["aq:dssim"]]
    base_cpu = statistics.mean(c for *_, c, _ in cells["aq:dssim"]) if cells["aq:dssim"] else 1.0
    for way, values in cells.items():
        if not values:
            continue
        independent = [q for _, _, q, _, _ in values if q is not None]
        summary["ways"][way] = {
            "encodes": len(values),
            "mean_bytes": statistics.mean(b for b, *_ in values),
            "bytes_vs_dssim": statistics.mean(b / d for (b, *_), d in zip(values, base_bytes, strict=True)),
            "mean_dssim": statistics.mean(d for _, d, *_ in values),
            "share_over_target": sum(d > target for _, d, *_ in values) / len(values),
            "mean_ms_ssim": statistics.mean(independent) if independent else None,
            "cpu_ms": 1000 * statistics.mean(c for *_, c, _ in values),
            "cpu_vs_dssim": statistics.mean(c for *_, c, _ in values) / base_cpu,
            "mean_encodes": statistics.mean(e for *_, e in values),
        }
    return summary


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"{summary['held_out_images']} held-out images, DSSIM target {summary['target']:g}",
        "",
        "| way | mean bytes | bytes vs aq:dssim | mean DSSIM | over target | MS-SSIM "
        "| CPU ms/image | CPU vs aq:dssim | encodes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for way, s in summary["ways"].items():
        ms = f"{s['mean_ms_ssim']:.4f}" if s["mean_ms_ssim"] is not None else "n/a"
        lines.append(
            f"| {way} | {s['mean_bytes']:.0f} | {s['bytes_vs_dssim']:.3f} | {s['mean_dssim']:.5f} | "
            f"{s['share_over_target']:.0%} | {ms} | {s['cpu_ms']:.1f} | {s['cpu_vs_dssim']:.2f} "
            f"| {s['mean_encodes']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--data", type=Path, required=True, help="the dataset from `imgproxy-py models collect`")
    parser.add_argument("--widths", default="320,640")
    parser.add_argument("--formats", default="jpeg,webp,avif")
    parser.add_argument("--target", type=float, default=0.0025)
    args = parser.parse_args(argv)
    vips.init()
    summary = run(
        args.data,
        args.folders,
        [int(w) for w in args.widths.split(",")],
        args.formats.split(","),
        args.target,
    )
    sys.stdout.write(markdown(summary) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
