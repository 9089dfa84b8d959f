"""The offline evaluation's building blocks work (the full run is `python -m benchmarks.eval`)."""

from __future__ import annotations

import pytest

from benchmarks import eval as evaluation
from benchmarks.faceset import build
from imgproxy_py.processing import Analysers, Job, Processor
from imgproxy_py.processing.faces import FaceAnalyser
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
    ours = Processor(evaluation.CONFIG, Analysers(FaceAnalyser(detector()))).process(Job(off.data, opts))
    assert evaluation.kept_face_area(off, ours) > 0.99
    centre = Processor(evaluation.CONFIG).process(Job(off.data, evaluation.options("rs:fill:270:480/g:ce")))
    assert evaluation.kept_face_area(off, centre) < 0.01


def test_detector_scores_on_the_real_photos() -> None:
    if not (FIXTURES / "faces").is_dir():
        pytest.skip("face fixtures not found")
    photos = [item for item in build() if item.kind == "photo"]
    result = evaluation.detector_quality(photos, detector())
    assert result["recall"] == 1.0 and result["precision"] == 1.0
