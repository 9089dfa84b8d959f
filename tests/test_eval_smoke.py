"""The offline evaluation's building blocks work (the full run is `python -m benchmarks.eval`)."""

from __future__ import annotations

import pytest

from benchmarks import eval as evaluation
from benchmarks.faceset import build
from imgproxy_py.processing import process
from imgproxy_py.processing.faces import FaceOptions
from tests.processing.test_faces import detector
from tests.support import FIXTURES


def test_labelled_set_and_kept_share() -> None:
    if not (FIXTURES / "faces").is_dir():
        pytest.skip("face fixtures not found")
    items = {item.name: item for item in build()}
    assert {"astronaut", "camera", "offcentre-right", "group", "small", "flowers.jpeg"} <= set(items)
    group = items["group"]
    assert len(group.faces) == 3
    off = items["offcentre-right"]
    opts = evaluation.options("rs:fill:270:480/g:sm")
    ours = process(off.data, opts, evaluation.CONFIG, faces=FaceOptions(detector()))
    assert evaluation.kept_face_area(off, ours) > 0.99
    centre = process(off.data, evaluation.options("rs:fill:270:480/g:ce"), evaluation.CONFIG)
    assert evaluation.kept_face_area(off, centre) < 0.01


def test_detector_scores_on_the_real_photos() -> None:
    if not (FIXTURES / "faces").is_dir():
        pytest.skip("face fixtures not found")
    photos = [item for item in build() if item.kind == "photo"]
    result = evaluation.detector_quality(photos, detector())
    assert result["recall"] == 1.0 and result["precision"] == 1.0
    # The turned cameraman and his mirror image are counted apart from the frontal faces.
    assert result["recall_by_pose"]["three-quarter"] == {"found": 2, "labelled": 2, "recall": 1.0}
    assert result["recall_by_pose"]["frontal"]["labelled"] >= 1
