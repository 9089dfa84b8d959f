"""The dataset, the JSON tree artefact, the registry and the serving handle (pure logic, real files)."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest

from imgproxy_py.monitoring import ModelRegistry
from imgproxy_py.processing.quality import METRIC_VERSION as PROCESSING_METRIC_VERSION
from imgproxy_py.quality_model import dataset as ds
from imgproxy_py.quality_model.dataset import Dataset, Row
from imgproxy_py.quality_model.inputs import FEATURE_NAMES, FEATURE_VERSION, INPUT_NAMES, model_inputs
from imgproxy_py.quality_model.registry import ModelHandle, Registry
from imgproxy_py.quality_model.serving import QualityModelService
from imgproxy_py.quality_model.trees import ModelError, Tree, TreeModel, load, sha256


def synthetic_rows(n: int, seed: int = 1) -> list[Row]:
    """Rows whose label follows a known rule of two features (texture up, flatness down)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        features = tuple(rng.uniform(0, 1) * (10 if name == "edge_density" else 1) for name in FEATURE_NAMES)
        edge, flat = features[FEATURE_NAMES.index("edge_density")], features[FEATURE_NAMES.index("flat_share")]
        label = round(40 + 4 * edge - 10 * flat)
        trail = ((label, 0.0025, 10_000), (label + 10, 0.0015, 16_000))
        rows.append(Row(f"src{i}", "jpeg", "p18", 0.0025, FEATURE_VERSION, "m", features, label, trail))
    return rows


def test_metric_versions_agree() -> None:
    assert ds.METRIC_VERSION == PROCESSING_METRIC_VERSION


def test_dataset_deduplicates_by_source_format_bucket(tmp_path: Path) -> None:
    data = Dataset(tmp_path / "d.sqlite")
    row = synthetic_rows(1)[0]
    data.add([row])
    data.add([dataclasses.replace(row, label=row.label + 5)])  # the same key: replaced
    assert data.count() == 1
    assert next(data.rows()).label == row.label + 5
    data.add([dataclasses.replace(row, format="webp")])
    assert data.count() == 2
    assert [r.format for r in data.rows(FEATURE_VERSION, "m")] == ["jpeg", "webp"]
    assert list(data.rows("other-feature-version")) == []


def _stump(version: str = "v1") -> TreeModel:
    tree = Tree(left=(1, -1, -1), right=(2, -1, -1), feature=(0, 0, 0), threshold=(10.0, 0, 0), value=(0, -5.0, 5.0))
    return TreeModel(version, FEATURE_VERSION, INPUT_NAMES, 60.0, 1.0, (tree,))


def test_artefact_round_trip_and_prediction() -> None:
    model = _stump()
    data = model.to_json()
    loaded = load(data, sha256(data), INPUT_NAMES)
    x = model_inputs([0.0] * len(FEATURE_NAMES), "jpeg", 0.0025)
    assert loaded.predict(x) == 55.0
    x[0] = 20.0
    assert loaded.predict(x) == 65.0


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d[:-5],  # truncated
        lambda d: d.replace(b'"base":60.0', b'"base":61.0'),  # tampered: digest differs
    ],
)
def test_a_changed_artefact_is_refused(mutate: object) -> None:
    data = _stump().to_json()
    with pytest.raises(ModelError):
        load(mutate(data), sha256(data), INPUT_NAMES)  # type: ignore[operator]


@pytest.mark.parametrize(
    "tree",
    [
        {"left": [5], "right": [6], "feature": [0], "threshold": [0], "value": [0]},  # out of range
        {"left": [1, 0], "right": [1, 0], "feature": [0, 0], "threshold": [0, 0], "value": [0, 0]},  # a cycle
        {"left": [-1], "right": [-1], "feature": [0], "threshold": [0]},  # missing array
    ],
)
def test_malformed_trees_are_refused_even_with_a_matching_digest(tree: dict[str, list[int]]) -> None:
    doc = json.loads(_stump().to_json())
    doc["trees"] = [tree]
    data = json.dumps(doc).encode()
    with pytest.raises(ModelError):
        load(data, sha256(data), INPUT_NAMES).predict(model_inputs([0.0] * len(FEATURE_NAMES), "jpeg", 0.0025))


def _publish(registry: Registry, model: TreeModel) -> None:
    data = model.to_json()
    registry.publish(model.version, data, {"version": model.version, "sha256": sha256(data)})


def test_promote_rollback_and_hot_reload(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    _publish(registry, _stump("v1"))
    _publish(registry, _stump("v2"))
    handle = ModelHandle(tmp_path, poll=0)
    shipped = handle.get().version  # nothing promoted: the model shipped in the package
    registry.promote("v1")
    assert handle.get().version == "v1"  # no restart: the pointer is polled
    registry.promote("v2")
    assert handle.get().version == "v2"
    assert registry.rollback() == "v1"
    assert handle.get().version == "v1"
    with pytest.raises(ValueError):
        registry.rollback()  # nothing older
    with pytest.raises(ValueError):
        registry.promote("../etc")
    assert shipped not in {"v1", "v2"}


def test_a_corrupt_promoted_artefact_falls_back_through_the_breaker(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    _publish(registry, _stump("bad"))
    (tmp_path / "bad" / "model.json").write_bytes(b'{"format": "imgproxy-py-gbt/1", "trees": [')
    registry.promote("bad")
    models = ModelRegistry()
    service = QualityModelService(ModelHandle(tmp_path, poll=0), lambda v: models.monitor("aq", v))
    features = [0.0] * len(FEATURE_NAMES)
    for _ in range(10):
        assert service.predict(features, "jpeg", 0.0025, 30, 90) is None  # the caller searches instead
    assert service.version.startswith("broken:")
    monitor = models.monitor("aq", "bad")
    assert monitor.breaker.state != "closed"  # repeated failures opened it
    _publish(registry, _stump("good"))
    registry.promote("good")
    prediction = service.predict(features, "jpeg", 0.0025, 30, 90)
    assert prediction is not None and prediction.version == "good" and prediction.quality == 55


def test_training_learns_the_rule_and_the_export_matches_scikit_learn() -> None:
    pytest.importorskip("sklearn")
    from imgproxy_py.quality_model.train import evaluate, fit, held_out, train

    rows = synthetic_rows(400)
    test_rows = [r for r in rows if held_out(r)]
    assert 40 < len(test_rows) < 160  # about a quarter, by source
    model = fit([r for r in rows if not held_out(r)], "t1")
    mean = sum(r.label for r in rows) / len(rows)
    baseline = sum(abs(round(mean) - r.label) for r in test_rows) / len(test_rows)
    metrics = evaluate(model, test_rows)
    assert metrics.mae < baseline / 2  # it learnt the rule, not the mean
    # The JSON artefact predicts what the fitted trees predict.
    data = model.to_json()
    reloaded = load(data, sha256(data), INPUT_NAMES)
    x = model_inputs(list(test_rows[0].features), "jpeg", 0.0025)
    assert reloaded.predict(x) == pytest.approx(model.predict(x))
    _, artefact, meta = train(rows, "m", "test")
    assert meta["sha256"] == sha256(artefact) and meta["feature_version"] == FEATURE_VERSION
    assert meta["metrics"]["held_out"]["rows"] == len(test_rows)
    assert "scikit-learn" in meta["libraries"]
