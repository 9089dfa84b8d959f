"""The cropping fairness report: group attributes (derived from pixels, annotated by hand, or given
in labels.json), per-group counts that add up, on the real fixtures with the real detector and crops."""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path

import pytest

from benchmarks import face_groups, fairness
from benchmarks.eval import RATIOS
from imgproxy_py.processing import vips
from tests.processing.test_faces import detector
from tests.support import FIXTURES

DERIVED = {"skin_tone", "lighting", "face_size"}


def test_groups_on_the_fixtures_add_up_and_match_the_faces() -> None:
    face_detector = detector()  # skips without the detector (fails under CI=true)
    labels = json.loads((FIXTURES / "faces" / "labels.json").read_text())
    labelled = sum(len(v) for k, v in labels.items() if not k.startswith("_"))
    result = fairness.report(face_detector)
    faces = result["per_face"]
    assert result["faces"] == len(faces) == labelled
    assert DERIVED | set(face_groups.MANUAL) <= set(result["attributes"])
    for attribute, groups in result["attributes"].items():
        assert sum(g["faces"] for g in groups.values()) == labelled  # every face in exactly one group
        for group, stats in groups.items():
            members = [f for f in faces if f["attributes"].get(attribute, fairness.UNLABELLED) == group]
            assert stats["faces"] == len(members) > 0
            assert stats["recall"] == pytest.approx(statistics.mean(f["detected"] for f in members))
            for ratio in RATIOS:
                assert stats["kept"][ratio] == pytest.approx(statistics.mean(f["kept"][ratio] for f in members))
                assert 0 <= stats["kept"][ratio] <= 1
            assert stats["too_few"] == (len(members) < fairness.MIN_GROUP)
    for attribute in face_groups.MANUAL:  # every shipped face is annotated by hand
        assert fairness.UNLABELLED not in result["attributes"][attribute]
    for face in faces:
        image = vips.open_source((FIXTURES / "faces" / face["image"]).read_bytes())
        tone = face["attributes"]["skin_tone"]
        if image.bands < 3:
            assert tone == face_groups.GREYSCALE and "ita" not in face["measured"]
        else:
            assert tone == face_groups.ita_band(face["measured"]["ita"])
    text = fairness.markdown(result)
    for attribute, groups in result["attributes"].items():
        for group, stats in groups.items():
            assert f"| {attribute} | {group}* | {stats['faces']} |" in text  # every group is under 30 faces


@pytest.mark.parametrize(
    ("lab", "band"),
    [
        ((70.0, 10.0, 20.0), "light"),
        ((80.0, 5.0, 12.0), "very light"),
        ((55.0, 12.0, 18.0), "tan"),
        ((30.0, 10.0, 15.0), "dark"),
    ],
)
def test_ita_from_pixels(lab: tuple[float, float, float], band: str) -> None:
    """A face-sized patch of a known CIELAB colour, through 8-bit sRGB PNG: its ITA and band."""
    lab_image = (vips.Image.black(64, 80, bands=3) + list(lab)).copy(interpretation="lab")
    png = vips.save(lab_image.colourspace("srgb").cast("uchar"), ".png")
    bands, measured = face_groups.derived(png, (0, 0, 64, 80))
    expected = math.degrees(math.atan((lab[0] - 50) / lab[2]))
    assert measured["ita"] == pytest.approx(expected, abs=1.5)
    assert bands["skin_tone"] == band
    assert bands["face_size"] == "large"  # the box is the whole image


def test_annotations_must_cover_every_face_with_known_values(tmp_path: Path) -> None:
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps({"a.png": [{"pose": "frontal", "occlusion": "none"}]}))
    assert face_groups.hand_annotations({"a.png": 1}, path) == {"a.png": [{"pose": "frontal", "occlusion": "none"}]}
    assert face_groups.hand_annotations({"b.png": 2}, path) == {}  # not annotated: counted as unlabelled
    with pytest.raises(ValueError, match="2 entries"):
        face_groups.hand_annotations({"a.png": 2}, path)
    path.write_text(json.dumps({"a.png": [{"pose": "sideways", "occlusion": "none"}]}))
    with pytest.raises(ValueError, match="sideways"):
        face_groups.hand_annotations({"a.png": 1}, path)


def test_labels_json_attributes_win_and_missing_ones_count_as_unlabelled(tmp_path: Path) -> None:
    face_detector = detector()
    labels = json.loads((FIXTURES / "faces" / "labels.json").read_text())
    for name in ("astronaut.png", "camera.png"):
        shutil.copy(FIXTURES / "faces" / name, tmp_path / name)
    labels["camera.png"][0]["attributes"] = {"age_band": "30-44", "pose": "three-quarter"}
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    result = fairness.report(face_detector, tmp_path)
    assert {g: s["faces"] for g, s in result["attributes"]["age_band"].items()} == {"30-44": 1, "(unlabelled)": 1}
    poses = {f["image"]: f["attributes"]["pose"] for f in result["per_face"]}
    assert poses["camera.png"] == "three-quarter"  # labels.json over the hand annotation
