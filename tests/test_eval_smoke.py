"""The offline evaluation's building blocks work (the full run is `python -m benchmarks.eval`)."""

from __future__ import annotations

from typing import Any

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


def test_aq_claim_analysis_on_synthetic_curves() -> None:
    """The simulated search at q80's quality never beats the oracle, and both are computed at that quality."""
    from benchmarks import aq_claim

    def curve(k: float) -> list[list[float]]:  # bytes grow and DSSIM/quality improve with q; k = image detail
        return [[q, 1000 * k * 1.03**q, 0.05 * k * 0.95**q, 1 - 0.02 * k * 0.95**q] for q in range(20, 96, 5)]

    images = {f"img{k}": {"jpeg/server": curve(k)} for k in (0.5, 1.0, 2.0, 4.0)}
    sweep: dict[str, Any] = {"qualities": [], "images": images}
    fine = aq_claim._fine(images["img1.0"]["jpeg/server"])
    assert [r[0] for r in fine] == list(range(20, 96))
    (row,) = aq_claim.analyse(sweep, 0.0025)
    assert abs(row["aq_quality"] - row["q80_quality"]) < 1e-3
    assert row["oracle_quality"] >= row["q80_quality"] - 1e-9
    assert row["oracle_ratio"] <= row["aq_ratio"] + 1e-9
