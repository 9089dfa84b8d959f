"""Fairness of face-aware cropping: ``python -m benchmarks.fairness``.

Per group of every attribute the labelled faces carry (``attributes`` in
../shared/fixtures/faces/labels.json: skin tone, age band, pose, lighting, occlusion, …):
the number of faces, the detector's recall (IoU ≥ 0.5 at the default threshold) and the mean
share of each face kept by ``g:sm`` fills at 1:1, 16:9, 9:16 and 4:1. Faces without an
attribute count under ``(unlabelled)``; a group of fewer than 30 faces is marked, because its
numbers cannot support a claim either way. Run it for every detector or crop change, and
compare the gaps between groups, not only the means.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks import face_groups
from benchmarks.eval import CONFIG, RATIOS, _iou, face_detector, kept_face_area, options
from benchmarks.faceset import FIXTURES, Face, Labelled
from imgproxy_py.analysis.detector import Detector
from imgproxy_py.processing import Analysers, Job, Processor, vips
from imgproxy_py.processing.faces import FaceAnalyser

MIN_GROUP = 30
UNLABELLED = "(unlabelled)"


def labelled_faces(folder: Path = FIXTURES / "faces") -> list[tuple[str, bytes, Face, dict[str, str]]]:
    """Every labelled face with its group attributes: derived from pixels, annotated by hand
    (benchmarks/face_groups.py), and any ``attributes`` labels.json gives (those win)."""
    labels = {k: v for k, v in json.loads((folder / "labels.json").read_text()).items() if not k.startswith("_")}
    manual = face_groups.hand_annotations({name: len(entries) for name, entries in labels.items()})
    faces = []
    for name, entries in labels.items():
        data = (folder / name).read_bytes()
        for index, entry in enumerate(entries):
            box = (entry["x"], entry["y"], entry["w"], entry["h"])
            bands, _ = face_groups.derived(data, box)
            attrs = {**bands, **(manual[name][index] if name in manual else {})}
            attrs.update({str(k): str(v) for k, v in entry.get("attributes", {}).items()})
            faces.append((name, data, box, attrs))
    return faces


def report(detector: Detector, folder: Path = FIXTURES / "faces") -> dict[str, Any]:
    faces = labelled_faces(folder)
    attributes = sorted({key for *_, attrs in faces for key in attrs}) or ["(none)"]
    per_face = []
    faces_out: list[dict[str, Any]] = []
    for name, data, box, attrs in faces:
        img = vips.open_source(data)
        width, height, rgb = vips.rgb_bytes(vips.analysis_copy(data, 512, upright=False))
        found = [
            (d.x * img.width, d.y * img.height, d.w * img.width, d.h * img.height)
            for d in detector.detect(width, height, rgb)
        ]
        detected = any(_iou(box, b) >= 0.5 for b in found)
        item = Labelled(name, data, (box,), "photo")
        kept = {
            ratio: kept_face_area(
                item,
                Processor(CONFIG, Analysers(FaceAnalyser(detector))).process(
                    Job(data, options(f"rs:fill:{w}:{h}/g:sm"))
                ),
            )
            for ratio, (w, h) in RATIOS.items()
        }
        per_face.append((attrs, detected, kept))
        _, measured = face_groups.derived(data, box)
        faces_out.append({"image": name, "attributes": attrs, "measured": measured, "detected": detected, "kept": kept})
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for attribute in attributes:
        groups: dict[str, list[tuple[bool, dict[str, float]]]] = defaultdict(list)
        for attrs, detected, kept in per_face:
            groups[attrs.get(attribute, UNLABELLED)].append((detected, kept))
        table[attribute] = {
            group: {
                "faces": len(rows),
                "recall": sum(d for d, _ in rows) / len(rows),
                "kept": {ratio: statistics.mean(k[ratio] for _, k in rows) for ratio in RATIOS},
                "too_few": len(rows) < MIN_GROUP,
            }
            for group, rows in sorted(groups.items())
        }
    return {"faces": len(per_face), "attributes": table, "per_face": faces_out}


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"{result['faces']} labelled faces. Groups under {MIN_GROUP} faces are marked *: too few to conclude anything.",
        "",
        "| attribute | group | faces | detector recall | " + " | ".join(f"kept {r}" for r in RATIOS) + " |",
        "|---|---|---|---|" + "---|" * len(RATIOS),
    ]
    for attribute, groups in result["attributes"].items():
        for group, s in groups.items():
            mark = "*" if s["too_few"] else ""
            kept = " | ".join(f"{s['kept'][r]:.2f}" for r in RATIOS)
            lines.append(f"| {attribute} | {group}{mark} | {s['faces']} | {s['recall']:.2f} | {kept} |")
    lines += [
        "",
        "Per face (derived attributes come from pixels: ITA in degrees, mean L*, the box's share of the image):",
        "",
        "| image | attributes | measured | detected | " + " | ".join(f"kept {r}" for r in RATIOS) + " |",
        "|---|---|---|---|" + "---|" * len(RATIOS),
    ]
    for face in result.get("per_face", []):
        attrs = ", ".join(f"{k}={v}" for k, v in sorted(face["attributes"].items()))
        measured = ", ".join(f"{k}={v}" for k, v in sorted(face["measured"].items()))
        kept = " | ".join(f"{face['kept'][r]:.2f}" for r in RATIOS)
        lines.append(f"| {face['image']} | {attrs} | {measured} | {'yes' if face['detected'] else 'no'} | {kept} |")
    if list(result["attributes"]) == ["(none)"]:
        lines += [
            "",
            "The labelled set carries no group attributes (skin tone, age, pose, lighting, occlusion):",
            "no per-group comparison is possible. Add `attributes` to each face in labels.json.",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    vips.init()
    detector = face_detector()
    if detector is None:
        return 2
    result = report(detector)
    print(json.dumps(result, indent=1) if args.json else markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
