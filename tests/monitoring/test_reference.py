"""The reference profile file, categorical features, the input mix, shadow agreement and per-arm quality."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from imgproxy_py.analysis.detector import Detection
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.monitoring import FeatureProfile, ModelMetrics, ModelRegistry, ReferenceProfile
from imgproxy_py.monitoring.arm_quality import ArmQuality
from imgproxy_py.monitoring.face_shadow import FaceRun, agreement
from imgproxy_py.monitoring.inputs import InputMix
from imgproxy_py.monitoring.reference import DEFAULT_PROFILE, INPUTS_MODEL, ProfileSet
from imgproxy_py.processing import ProcessResult
from imgproxy_py.processing.quality import METRIC_VERSION
from imgproxy_py.quality_model.serving import MlOutcome


def test_categorical_profile_names_its_bins_and_keeps_unknown_names_apart() -> None:
    profile = FeatureProfile.from_categories(["jpeg"] * 6 + ["png"] * 3 + ["webp"])
    assert profile.categories == ("jpeg", "png", "webp", "(other)")
    assert profile.shares == pytest.approx((0.6, 0.3, 0.1, 0.0))
    assert [profile.bin_of(n) for n in ("jpeg", "png", "webp", "heic")] == [0, 1, 2, 3]
    reference = ReferenceProfile(INPUTS_MODEL, "x", {"source_format": profile})
    assert ReferenceProfile.from_json(reference.to_json()) == reference
    with pytest.raises(ValueError, match="names every bin"):
        FeatureProfile((0.5,), (0.5, 0.5), ("a",))


def test_profile_set_round_trip_and_errors(tmp_path: Path) -> None:
    one = ReferenceProfile("faces", "v1", {"score": FeatureProfile.from_sample([0.6, 0.7, 0.8, 0.9])})
    two = ReferenceProfile(INPUTS_MODEL, "eval-x", {"megapixels": FeatureProfile.from_sample([0.1, 1.0, 2.0])})
    profiles = ProfileSet("eval-x", (one, two), {"command": "python -m benchmarks.eval --only profile"})
    path = tmp_path / "profile.json"
    path.write_text(profiles.to_json())
    loaded = ProfileSet.load(path)
    assert loaded == profiles
    assert loaded.get("faces", "v1") == one and loaded.get("faces", "v2") is None and loaded.inputs() == two
    path.write_text('{"profiles": []}')
    with pytest.raises(ValueError, match="not a reference profile file"):
        ProfileSet.load(path)
    with pytest.raises(ValueError, match="No such file"):
        ProfileSet.load(tmp_path / "missing.json")


def test_the_shipped_profile_covers_the_default_detector_auto_quality_and_the_input_mix() -> None:
    shipped = ProfileSet.load()
    assert ProfileSet.load(DEFAULT_PROFILE) == shipped and shipped.meta["command"].startswith("python -m benchmarks")
    from imgproxy_py.analysis.libfacedetection import MODEL

    faces = shipped.get("faces", f"{MODEL}@0.5")  # the default threshold's version
    assert faces is not None and {"faces_found", "has_faces", "score", "inference_seconds"} <= set(faces.features)
    aq = shipped.get("autoquality-dssim", METRIC_VERSION)
    assert aq is not None and {"chosen_quality_jpeg", "achieved_dssim"} <= set(aq.features)
    inputs = shipped.inputs()
    assert inputs is not None and set(inputs.features) == {"source_format", "megapixels", "source_bytes"}
    assert inputs.features["source_format"].shares[inputs.features["source_format"].bin_of("jpeg")] > 0.5


def test_registry_watches_a_profiled_version_from_its_first_call_and_merges_training_profiles() -> None:
    rng = random.Random(5)
    reference = ReferenceProfile(
        "faces", "v1", {"score": FeatureProfile.from_sample([rng.gauss(0.8, 0.05) for _ in range(500)])}
    )
    registry = CollectorRegistry()
    models = ModelRegistry(ModelMetrics(registry), ProfileSet("p", (reference,)), drift_window=100, drift_min_values=50)
    monitor = models.monitor("faces", "v1")
    assert monitor.drift is not None and set(monitor.drift.reference.features) == {"score"}
    assert models.monitor("faces", "v2").drift is None  # another version: no reference
    extra = ReferenceProfile("faces", "v1", {"width": FeatureProfile.from_sample([1.0, 2.0, 3.0])})
    monitor.watch_drift(extra)
    assert set(monitor.drift.reference.features) == {"score", "width"}
    for _ in range(60):
        monitor.observe_output("score", rng.gauss(0.55, 0.05))
    psi = registry.get_sample_value("model_drift_psi", {"model": "faces", "version": "v1", "feature": "score"})
    assert psi is not None and psi > 0.25


def test_input_mix_counts_and_drifts_on_screenshots_not_on_its_own_mix() -> None:
    shipped = ProfileSet.load().inputs()
    assert shipped is not None
    registry = CollectorRegistry()
    mix = InputMix(ModelMetrics(registry), shipped, window=60, min_values=40)
    for _ in range(60):  # PNG screenshots, 1280×800, ~40 KB: unlike the evaluation's photos
        mix.observe("png", 1280, 800, 40_000)
    labels = {"model": INPUTS_MODEL, "version": shipped.version}
    drifted = registry.get_sample_value("model_drift_psi", {**labels, "feature": "source_format"})
    assert drifted is not None and drifted > 0.25
    assert registry.get_sample_value("input_images_total", {"format": "png"}) == 60
    assert registry.get_sample_value("input_megapixels_count") == 60
    calm = InputMix(ModelMetrics(CollectorRegistry()), shipped, window=1000, min_values=500)
    fmt = shipped.features["source_format"]
    rng = random.Random(6)
    for _ in range(1000):  # the reference's own format shares
        calm.observe(rng.choices(fmt.categories, fmt.shares)[0], 640, 480, 0)
    assert calm.drift is not None
    value = calm.drift.value("source_format")
    assert value is not None and value < 0.1


def test_shadow_agreement_measures() -> None:
    face = Detection(0.6, 0.2, 0.2, 0.3, 0.9)
    same = agreement(FaceRun((face,)), FaceRun((face,), 1000, 500))
    assert same == {"iou": 1.0, "count_match": 1.0, "crop_overlap": 1.0}
    moved = Detection(0.1, 0.2, 0.2, 0.3, 0.9)
    other = agreement(FaceRun((face,)), FaceRun((moved,), 1000, 500))
    assert other["iou"] == 0 and other["count_match"] == 1 and 0 <= other["crop_overlap"] < 0.5
    missed = agreement(FaceRun((face,)), FaceRun((), 1000, 500))
    assert missed["iou"] == 0 and missed["count_match"] == 0  # no face: the centre crop instead
    assert 0 < missed["crop_overlap"] < 1


def _result(searched: tuple[tuple[str, int, float], ...], ml: tuple[MlOutcome, ...] = ()) -> ProcessResult:
    return ProcessResult(b"", ImageFormat.JPEG, 1, 1, ImageFormat.PNG, 1, 1, searched=searched, ml=ml)


def test_arm_quality_histograms_are_bounded_to_the_configured_arms() -> None:
    registry = CollectorRegistry()
    arms = ArmQuality(registry, [("quality", "control"), ("quality", "treatment")])
    arms.observe("quality=treatment", _result((("jpeg", 62, 0.0024), ("webp", 70, 0.0026))))
    arms.observe(
        "quality=treatment", _result((), (MlOutcome("m1", 55, 58, 0.0023, 2), MlOutcome("m1", 0, 60, None, 3)))
    )
    arms.observe("quality=other", _result((("jpeg", 40, 0.002),)))  # not configured: no new label
    treatment = {"experiment": "quality", "arm": "treatment"}
    assert registry.get_sample_value("experiment_chosen_quality_count", treatment) == 3
    assert registry.get_sample_value("experiment_chosen_quality_sum", treatment) == 62 + 70 + 58
    assert registry.get_sample_value("experiment_achieved_dssim_count", treatment) == 3
    assert registry.get_sample_value("experiment_chosen_quality_count", {**treatment, "arm": "control"}) == 0
    assert registry.get_sample_value("experiment_chosen_quality_count", {**treatment, "arm": "other"}) is None
