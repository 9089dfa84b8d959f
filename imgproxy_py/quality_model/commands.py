"""``imgproxy-py models collect|train|list|promote|rollback``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from imgproxy_py.settings import Settings


def add_command(commands: Any) -> None:
    models = commands.add_parser("models", help="the learned auto-quality model (aq:ml): data, training, registry")
    models.add_argument(
        "--registry",
        help="registry folder or s3://bucket/prefix (default: IMGPROXY_MODELS_REGISTRY, else ./models)",
        default=None,
    )
    sub = models.add_subparsers(dest="models_command", required=True)
    collect = sub.add_parser("collect", help="label images: an aq:dssim search per width and format, one row each")
    collect.add_argument("folders", nargs="+", help="folders (or files) of images")
    collect.add_argument(
        "--into",
        help="SQLite file or s3://bucket/prefix (default: IMGPROXY_AUTOQUALITY_DATASET, else ./aq-dataset.sqlite)",
    )
    collect.add_argument("--widths", default="320,640,1280", help="output widths (comma-separated)")
    collect.add_argument("--formats", default="jpeg,webp,avif", help="output formats (comma-separated)")
    collect.add_argument("--targets", default="0.0025", help="DSSIM targets (comma-separated)")
    train = sub.add_parser("train", help="fit on the dataset, print held-out metrics, publish a version")
    train.add_argument("--data", help="dataset file or s3://bucket/prefix (default: as collect)")
    train.add_argument("--promote", action="store_true", help="promote it if it beats the serving version's MAE")
    train.add_argument("--out", help="write model.json and meta.json to this folder instead of the registry")
    sub.add_parser("list", help="versions in the registry, their metrics, and which one serves")
    promote = sub.add_parser("promote", help="serve VERSION (servers pick it up within the poll interval)")
    promote.add_argument("version")
    sub.add_parser("rollback", help="serve the version promoted before the current one")


def _dataset_location(settings: Settings, value: str | None) -> str:
    return value or settings.analysis.autoquality_dataset or "aq-dataset.sqlite"


def _s3(settings: Settings) -> Any:
    from imgproxy_py.s3conn import S3Target

    return S3Target.from_settings(settings.s3)


def run(settings: Settings, args: argparse.Namespace) -> int:
    from imgproxy_py.quality_model.registry import DEFAULT_ROOT, Registry

    command = args.models_command
    try:
        registry = Registry(args.registry or settings.analysis.models_registry or DEFAULT_ROOT, _s3(settings))
        if command == "collect":
            return _collect(settings, args)
        if command == "train":
            return _train(settings, args, registry)
        if command == "list":
            current = registry.current()
            versions = registry.versions()
            if not versions:
                print(f"no versions in {registry.location} (the shipped default model serves)")
            for v in versions:
                held = v.meta.get("metrics", {}).get("held_out", {})
                mark = "*" if v.name == current else " "
                print(f"{mark} {v.name}  rows={v.meta.get('rows')}  held-out {json.dumps(held)}")
            return 0
        if command == "promote":
            registry.promote(args.version)
            print(f"serving {args.version}")
            return 0
        if command == "rollback":
            print(f"serving {registry.rollback()}")
            return 0
    except (ValueError, OSError) as exc:
        print(f"imgproxy-py models {command}: {exc}", file=sys.stderr)
        return 2
    return 2


def _collect(settings: Settings, args: argparse.Namespace) -> int:
    from imgproxy_py.processing import ProcessingConfig, vips
    from imgproxy_py.quality_model.collect import collect, images
    from imgproxy_py.quality_model.dataset import open_dataset
    from imgproxy_py.settings import WatermarkSettings

    vips.init()
    dataset = open_dataset(_dataset_location(settings, args.into), _s3(settings))
    paths = images(args.folders)
    widths = [int(w) for w in args.widths.split(",") if w]
    formats = [f for f in args.formats.split(",") if f]
    written = collect(
        paths,
        dataset,
        # Its URLs never ask for a watermark: one from IMGPROXY_WATERMARK_URL is not fetched.
        ProcessingConfig.from_settings(dataclasses.replace(settings, watermark=WatermarkSettings())),
        widths=widths,
        formats=formats,
        targets=[float(t) for t in args.targets.split(",") if t],
        progress=lambda line: print(line, file=sys.stderr),
    )
    print(f"{written} rows from {len(paths)} images; {dataset.count()} rows in {dataset.location}")
    return 0


def _train(settings: Settings, args: argparse.Namespace, registry: Any) -> int:
    try:
        from imgproxy_py.quality_model.train import evaluate, held_out, train
    except ImportError:
        print("imgproxy-py models train needs scikit-learn: pip install 'imgproxy-py[train]'", file=sys.stderr)
        return 2
    from imgproxy_py.processing.quality import METRIC_VERSION
    from imgproxy_py.quality_model.dataset import open_dataset
    from imgproxy_py.quality_model.inputs import FEATURE_VERSION
    from imgproxy_py.quality_model.storage import is_s3
    from imgproxy_py.quality_model.trees import ModelError

    location = _dataset_location(settings, args.data)
    if not is_s3(location) and not Path(location).is_file():
        print(f"imgproxy-py models train: no dataset at {location} (run `models collect` first)", file=sys.stderr)
        return 2
    rows = list(open_dataset(location, _s3(settings)).rows(FEATURE_VERSION, METRIC_VERSION))
    command = "imgproxy-py " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "imgproxy-py models train"
    model, artefact, meta = train(rows, METRIC_VERSION, command)
    held = meta["metrics"]["held_out"]
    print(f"version {model.version}: {meta['rows']} rows, {meta['held_out_rows']} held out")
    print(
        f"held-out MAE {held['mae']:.2f} quality steps; {held['miss_share']:.0%} of predictions miss the target "
        f"(one correcting encode); bytes vs q80 {held['bytes_vs_q80']:.2f} (search: {held['label_bytes_vs_q80']:.2f})"
    )
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.json").write_bytes(artefact)
        (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        print(f"wrote {out}")
        return 0
    print(f"published {registry.publish(model.version, artefact, meta)}")
    if args.promote:
        current = registry.current()
        if current is not None:
            # The offline gate: the candidate must beat the serving version on the same held-out rows.
            test_rows = [r for r in rows if held_out(r)]
            try:
                serving = evaluate(registry.load(current), test_rows).mae
            except ModelError:
                serving = float("inf")
            if held["mae"] >= serving:
                print(f"not promoted: held-out MAE {held['mae']:.2f} does not beat {current}'s {serving:.2f}")
                return 1
        registry.promote(model.version)
        print(f"serving {model.version}")
    else:
        print(f"to compare it with the serving version on live traffic: IMGPROXY_AUTOQUALITY_ML_SHADOW={model.version}")
    return 0
