"""The offline evaluation's building blocks work (the full run is `python -m benchmarks.eval`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import eval as evaluation
from benchmarks.faceset import build
from imgproxy_py.monitoring.reference import ProfileSet
from imgproxy_py.processing import Analysers, Job, Processor
from imgproxy_py.processing.faces import FaceAnalyser
from imgproxy_py.processing.quality import METRIC_VERSION
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
    # The cameraman in near profile (annotations.json) and his mirror image are counted apart.
    assert result["recall_by_pose"]["profile"] == {"found": 2, "labelled": 2, "recall": 1.0}
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


def test_the_evaluation_writes_a_reference_profile_the_server_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (FIXTURES / "faces").is_dir():
        pytest.skip("face fixtures not found")
    monkeypatch.setattr(evaluation, "AQ_FORMATS", dict(evaluation.AQ_FORMATS))  # --formats trims it in place
    sample = tmp_path / "sample"
    sample.mkdir()
    for path in (FIXTURES / "faces" / "astronaut.png", FIXTURES / "images" / "320x240.jpg"):
        (sample / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "profile.json"
    args = ["--only", "profile", "--formats", "jpeg", "--profile-images", str(sample), "--profile-out", str(out)]
    assert evaluation.main(["--out", str(tmp_path), *args]) == 0
    profiles = ProfileSet.load(out)
    faces = profiles.get("faces", detector().version)
    assert faces is not None and faces.features["has_faces"].bin_of(1.0) != faces.features["has_faces"].bin_of(0.0)
    assert "score" in faces.features and "inference_seconds" in faces.features
    aq = profiles.get("autoquality-dssim", METRIC_VERSION)
    assert aq is not None and set(aq.features) == {"chosen_quality_jpeg", "achieved_dssim"}
    inputs = profiles.inputs()
    assert inputs is not None and inputs.version == profiles.id
    formats = inputs.features["source_format"]
    assert formats.categories == ("jpeg", "png", "(other)") and formats.shares == (0.5, 0.5, 0.0)
    assert profiles.meta["command"].endswith(f"--profile-images {sample}")
