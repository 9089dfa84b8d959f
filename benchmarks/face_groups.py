"""Group attributes of the labelled faces, for the fairness report (benchmarks/fairness.py).

Two kinds, kept apart on purpose:

- **derived from pixels**, reproducibly, per face box (nobody's judgement):
  - ``skin_tone``: the Individual Typology Angle, ITA = atan((L* − 50) / b*) in degrees (CIELAB,
    D65, libvips' conversion), from the median L* and b* of the box's central skin region —
    the middle half of its width, 25-75% of its height, minus the darkest and the brightest
    quarter of those pixels by L* (eyes, brows, nostrils, teeth, highlights) — banded as in
    dermatology (Chardon et al. 1991; Del Bino et al. 2006): very light > 55°, light 41-55°,
    intermediate 28-41°, tan 10-28°, brown −30-10°, dark < −30°. A greyscale photo has no b*:
    ``n/a (greyscale)``. ITA measures the colour of the pixels — lighting, white balance and
    make-up move it — not anyone's identity or ethnicity.
  - ``lighting``: the face box's mean L*: dim < 40, medium 40-65, bright ≥ 65 (confounded with
    skin tone by construction: a darker face reads dimmer in the same light).
  - ``face_size``: the box's share of the image area: small < 2%, medium 2-8%, large ≥ 8%.
- **annotated by hand** (benchmarks/faces/annotations.json, keyed by fixture name, one entry
  per face in labels.json's order): ``pose`` (frontal / three-quarter / profile) and
  ``occlusion`` (none / partial), made by looking at each face.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from imgproxy_py.processing import vips

ANNOTATIONS = Path(__file__).resolve().parent / "faces" / "annotations.json"
MANUAL = {"pose": ("frontal", "three-quarter", "profile"), "occlusion": ("none", "partial")}
GREYSCALE = "n/a (greyscale)"

Box = tuple[float, float, float, float]


def ita_band(ita: float) -> str:
    for limit, band in ((55, "very light"), (41, "light"), (28, "intermediate"), (10, "tan"), (-30, "brown")):
        if ita > limit:
            return band
    return "dark"


def ita_of(lab: Any) -> float | None:
    """ITA (degrees) of an (n, 3) array of L*, a*, b* skin pixels; None when b* ≤ 0 (no hue to measure)."""
    lum = lab[:, 0]
    lo, hi = np.percentile(lum, [25, 75])
    skin = lab[(lum >= lo) & (lum <= hi)]
    if len(skin) == 0:
        skin = lab
    light, yellow = float(np.median(skin[:, 0])), float(np.median(skin[:, 2]))
    if yellow <= 0:
        return None
    return math.degrees(math.atan((light - 50) / yellow))


def _lab(img: Any, box: Box) -> Any:
    x, y, w, h = (int(round(v)) for v in box)
    x, y = max(0, x), max(0, y)
    w, h = min(w, img.width - x), min(h, img.height - y)
    area = img.extract_area(x, y, max(1, w), max(1, h)).colourspace("lab").cast("float")
    data = vips.evaluate(area, lambda image: image.write_to_memory())
    return np.frombuffer(data, dtype=np.float32).reshape(-1, area.bands)[:, :3].astype(np.float64)


def derived(data: bytes, box: Box) -> tuple[dict[str, str], dict[str, float]]:
    """The pixel-derived bands of one face, and the measurements behind them (for the report)."""
    img = vips.open_source(data)
    if img.hasalpha():
        img = img.flatten(background=[255] * (img.bands - 1))
    greyscale = img.bands < 3 or img.interpretation in ("b-w", "grey16")
    x, y, w, h = box
    whole = _lab(img, box)
    centre = _lab(img, (x + w / 4, y + h / 4, w / 2, h / 2))
    ita = None if greyscale else ita_of(centre)
    mean_l = float(whole[:, 0].mean())
    share = w * h / (img.width * img.height)
    bands = {
        "skin_tone": GREYSCALE if greyscale else ita_band(ita) if ita is not None else "n/a (no hue)",
        "lighting": "dim" if mean_l < 40 else "medium" if mean_l < 65 else "bright",
        "face_size": "small" if share < 0.02 else "medium" if share < 0.08 else "large",
    }
    measured = {"mean_l": round(mean_l, 1), "area_share": round(share, 4)}
    if ita is not None:
        measured["ita"] = round(ita, 1)
    return bands, measured


def hand_annotations(faces_per_image: dict[str, int], path: Path = ANNOTATIONS) -> dict[str, list[dict[str, str]]]:
    """The hand annotations, checked against the labelled faces (every face, known values only)."""
    doc = json.loads(path.read_text())
    out: dict[str, list[dict[str, str]]] = {}
    for name, count in faces_per_image.items():
        entries = doc.get(name)
        if entries is None:  # not annotated: its faces count as "(unlabelled)" for pose and occlusion
            continue
        if not isinstance(entries, list) or len(entries) != count:
            raise ValueError(f"{path.name}: {name} needs {count} entries (one per labelled face)")
        out[name] = []
        for entry in entries:
            values = {key: str(entry.get(key)) for key in MANUAL}
            for key, value in values.items():
                if value not in MANUAL[key]:
                    raise ValueError(f"{path.name}: {name}: {key}={value!r} is not one of {MANUAL[key]}")
            out[name].append(values)
    return out
