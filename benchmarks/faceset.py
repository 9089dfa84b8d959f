"""The labelled face set of the offline evaluation (see benchmarks/faces/SOURCES.md).

Real public-domain photos from the shared fixtures and from matplotlib's sample data, and
composites made from them (off-centre faces beside salient distractors, a group, a small
face), with exact boxes carried through the composition. Built in memory on each run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgproxy_py.processing import vips

REPO = Path(__file__).resolve().parent.parent
FIXTURES = (REPO / ".." / "shared" / "fixtures").resolve()

Face = tuple[float, float, float, float]  # x, y, w, h in pixels

HOPPER_FACE: Face = (182, 121, 171, 211)  # grace_hopper.jpg, checked by eye
ANNOTATIONS = REPO / "benchmarks" / "faces" / "annotations.json"  # hand-annotated pose per fixture face


def _poses(name: str) -> tuple[str, ...]:
    """The annotated poses of a fixture's faces (labels.json's order); frontal when not annotated."""
    if not ANNOTATIONS.exists():
        return ()
    entries = json.loads(ANNOTATIONS.read_text()).get(name) or []
    return tuple(str(entry.get("pose", "frontal")) for entry in entries)


@dataclass(frozen=True)
class Labelled:
    name: str
    data: bytes
    faces: tuple[Face, ...]
    kind: str  # "photo", "composite" or "no-face"
    poses: tuple[str, ...] = ()  # per face (annotations.json): frontal (the default), three-quarter, profile

    def pose(self, index: int) -> str:
        return self.poses[index] if index < len(self.poses) else "frontal"


def _hopper_path() -> Path | None:
    try:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    except ImportError:
        return None
    return path if path.exists() else None


def _head(img: Any, face: Face, size: int) -> tuple[Any, Face]:
    """A square cut around a face (1.8× its height), scaled to ``size``; the face box inside it."""
    x, y, w, h = face
    side = int(h * 1.8)
    left = max(0, int(x + w / 2 - side / 2))
    top = max(0, int(y + h / 2 - side / 2))
    side = min(side, img.width - left, img.height - top)
    cut = img.extract_area(left, top, side, side)
    k = size / side
    return cut.resize(k), ((x - left) * k, (y - top) * k, w * k, h * k)


def _canvas(name: str, width: int, height: int) -> Any:
    data = (FIXTURES / "images" / name).read_bytes()
    return vips.open_source(data).thumbnail_image(width, height=height, crop="centre").extract_band(0, n=3)


def _paste(canvas: Any, head: Any, at: tuple[int, int], face: Face) -> tuple[Any, Face]:
    x, y, w, h = face
    return canvas.insert(head.extract_band(0, n=3), *at), (x + at[0], y + at[1], w, h)


def build() -> list[Labelled]:
    labels = json.loads((FIXTURES / "faces" / "labels.json").read_text())
    out: list[Labelled] = []
    photos: dict[str, tuple[Any, Face]] = {}
    for name in ("astronaut.png", "camera.png"):
        data = (FIXTURES / "faces" / name).read_bytes()
        faces = tuple((f["x"], f["y"], f["w"], f["h"]) for f in labels[name])
        out.append(Labelled(name.removesuffix(".png"), data, faces, "photo", _poses(name)))
        img = vips.open_source(data)
        photos[name] = (img.colourspace("srgb") if img.bands < 3 else img, faces[0])
    # The cameraman, in near profile looking into the eyepiece (annotations.json), is the only
    # non-frontal face on disk. Mirrored, he faces the other way.
    img, (x, y, w, h) = photos["camera.png"]
    camera_pose = _poses("camera.png")[:1] or ("frontal",)
    mirrored = (img.width - x - w, y, w, h)
    out.append(Labelled("camera-mirrored", vips.save(img.fliphor(), ".png"), (mirrored,), "photo", camera_pose))
    hopper = _hopper_path()
    if hopper is not None:
        data = hopper.read_bytes()
        out.append(Labelled("hopper", data, (HOPPER_FACE,), "photo"))
        photos["hopper"] = (vips.open_source(data), HOPPER_FACE)
    second = "hopper" if "hopper" in photos else "camera.png"

    head, face = _head(*photos["astronaut.png"], 200)
    canvas, box = _paste(_canvas("Landscape_1.jpg", 1600, 600), head, (1250, 250), face)
    out.append(Labelled("offcentre-right", vips.save(canvas, ".jpg", Q=90), (box,), "composite"))

    head, face = _head(*photos[second], 220)
    canvas, box = _paste(_canvas("Landscape_1.jpg", 1600, 600), head, (30, 60), face)
    out.append(Labelled("offcentre-left", vips.save(canvas, ".jpg", Q=90), (box,), "composite"))

    head, face = _head(img.fliphor(), mirrored, 160)  # the turned head off-centre, beside the waterfall
    canvas, box = _paste(_canvas("Landscape_1.jpg", 1600, 600), head, (1380, 380), face)
    out.append(Labelled("turned-offcentre", vips.save(canvas, ".jpg", Q=90), (box,), "composite", camera_pose))

    canvas = _canvas("flowers.jpeg", 1500, 500)
    boxes = []
    for source, size, at in (
        ("astronaut.png", 220, (120, 140)),
        (second, 180, (650, 40)),
        ("camera.png", 140, (1200, 300)),
    ):
        head, face = _head(*photos[source], size)
        canvas, box = _paste(canvas, head, at, face)
        boxes.append(box)
    poses = ("frontal", "frontal" if second == "hopper" else camera_pose[0], camera_pose[0])
    out.append(Labelled("group", vips.save(canvas, ".jpg", Q=90), tuple(boxes), "composite", poses))

    head, face = _head(*photos[second], 64)
    canvas, box = _paste(_canvas("Landscape_1.jpg", 1600, 1200), head, (1400, 100), face)
    out.append(Labelled("small", vips.save(canvas, ".jpg", Q=92), (box,), "composite"))

    # concert.jpg: a crowd seen from behind (heads, no faces), a hard case for false positives.
    for name in ("Landscape_1.jpg", "flowers.jpeg", "4.webp", "embedgravitybird.png", "concert.jpg"):
        out.append(Labelled(name, (FIXTURES / "images" / name).read_bytes(), (), "no-face"))
    return out
