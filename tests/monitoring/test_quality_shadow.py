"""The shadow aq:ml version: a candidate trained with ``models train`` (not promoted) predicts on
sampled aq:ml misses after the response, over real HTTP; its agreement metrics carry the right
labels and counts, answers are byte-identical with it on and off, and an unusable version only
turns the shadow off."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from imgproxy_py.cli import main
from imgproxy_py.monitoring.metrics import ModelMetrics
from imgproxy_py.monitoring.quality_shadow import QualityShadow, agreement, quality_shadow
from imgproxy_py.monitoring.shadow import sampled
from imgproxy_py.quality_model.registry import DEFAULT_DIR, Registry, load_folder
from imgproxy_py.quality_model.serving import MlOutcome, predict_quality
from imgproxy_py.quality_model.trees import TreeModel, sha256
from imgproxy_py.settings import AnalysisSettings
from tests.conftest import app_with_service
from tests.monitoring.test_miss_monitor import _poll, _value
from tests.quality_model.test_cli import IMAGES
from tests.support import FIXTURES, free_port, serving

# Sources the candidate never saw (IMAGES trained it), at two sizes and two formats each.
UNSEEN = ("Landscape_2.jpg", "Portrait_2.jpg", "gamma_dalai_lama_gray.jpg", "Landscape_5.jpg")
PATHS = [
    f"/_/rs:fit:{size}:{size}/aq:ml/plain/local:///{name}@{fmt}"
    for name in UNSEEN
    for size in (200, 320)
    for fmt in ("webp", "jpg")
]
ML = "autoquality-ml"


@pytest.fixture(scope="module")
def candidate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A registry holding one version trained by ``models collect`` + ``models train``, not promoted
    (so the shipped model serves): the candidate of the retraining path."""
    pytest.importorskip("sklearn")
    root = tmp_path_factory.mktemp("aq-shadow")
    images = root / "images"
    images.mkdir()
    for name in IMAGES:
        shutil.copy(FIXTURES / "images" / name, images / name)
    data, registry = root / "aq.sqlite", root / "registry"
    collect = ["models", "collect", str(images), "--into", str(data), "--widths", "160,320", "--formats", "jpeg,webp"]
    assert main(collect) == 0
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # a module-scoped fixture cannot take capsys
        assert main(["models", "--registry", str(registry), "train", "--data", str(data)]) == 0
    (version,) = Registry(registry).versions()
    assert f"IMGPROXY_AUTOQUALITY_ML_SHADOW={version.name}" in out.getvalue()  # the next step's hint
    assert Registry(registry).current() is None
    return registry, version.name


def _labelled(samples: dict[Any, float], name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name and dict(labels).get("model") == ML}


def test_a_trained_candidate_shadows_aq_ml_misses_over_http(candidate: tuple[Path, str]) -> None:
    registry, version = candidate
    serving_version = load_folder(DEFAULT_DIR).version
    metrics_port = free_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    base_env = {
        "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(FIXTURES / "images"),
        "IMGPROXY_MODELS_REGISTRY": str(registry),
        "IMGPROXY_PROMETHEUS_BIND": f"127.0.0.1:{metrics_port}",
    }
    shadow_env = {**base_env, "IMGPROXY_AUTOQUALITY_ML_SHADOW": version, "IMGPROXY_AUTOQUALITY_ML_SHADOW_SAMPLE": "1"}
    bodies: dict[str, list[bytes]] = {path: [] for path in PATHS}
    with serving(env=shadow_env) as (base, _proc), httpx.Client(timeout=60) as client:
        health = client.get(base + "/health").text
        assert f"aq:ml shadow: {version} on 100% of aq:ml misses" in health
        for path in PATHS:
            response = client.get(base + path)
            assert response.status_code == 200 and response.headers["x-cache"] == "MISS", response.text
            bodies[path].append(response.content)
            assert client.get(base + path).headers["x-cache"].startswith("HIT")  # hits are not shadowed

        def ran(s: dict[Any, float]) -> bool:
            return sum(_labelled(s, "model_shadow_runs_total").values()) >= len(PATHS)

        samples = _poll(metrics_url, ran)
    # the shipped model served every miss (no fallback), and the candidate shadowed each one once
    served = {"model": ML, "version": serving_version}
    assert _value(samples, "model_output_count", **served, output="predicted_quality") == len(PATHS)
    assert _labelled(samples, "model_fallbacks_total") == {}
    runs = {dict(labels)["outcome"]: v for labels, v in _labelled(samples, "model_shadow_runs_total").items()}
    assert runs == {"ok": len(PATHS)}
    labels = {"model": ML, "serving": serving_version, "shadow": version}
    assert {dict(k)["measure"] for k in _labelled(samples, "model_shadow_agreement_count")} == {"quality"}
    assert _value(samples, "model_shadow_agreement_count", **labels, measure="quality") == len(PATHS)
    match = _value(samples, "model_shadow_agreement_sum", **labels, measure="quality")
    assert match is not None and 0 <= match <= len(PATHS)
    differences = {
        dict(k)["measure"]: v for k, v in _labelled(samples, "model_shadow_quality_difference_count").items()
    }
    assert differences == {"predicted": len(PATHS), "served": len(PATHS)}

    # the two families measure the same shadow predictions: exactly as many identical predictions
    # (agreement 1.0: in the le=1.0 bucket, not the le=0.99 one) as zero differences (le=0, not le=-1)
    def bucket(name: str, le: str, **more: str) -> float:
        value = _value(samples, f"{name}_bucket", **labels, **more, le=le)
        assert value is not None, (name, le)
        return value

    same = bucket("model_shadow_agreement", "1.0", measure="quality") - bucket(
        "model_shadow_agreement", "0.99", measure="quality"
    )
    zero = bucket("model_shadow_quality_difference", "0.0", measure="predicted") - bucket(
        "model_shadow_quality_difference", "-1.0", measure="predicted"
    )
    assert same == zero

    with serving(env=base_env) as (base, _proc), httpx.Client(timeout=60) as client:
        assert "aq:ml shadow: off" in client.get(base + "/health").text
        for path in PATHS:
            response = client.get(base + path)
            assert response.status_code == 200
            bodies[path].append(response.content)
    for path, (on, off) in bodies.items():
        assert on == off, path  # the shadow never touches what clients receive


def _copy_of_the_shipped_model(registry: Registry, version: str) -> None:
    doc = json.loads((DEFAULT_DIR / "model.json").read_bytes())
    artefact = json.dumps({**doc, "version": version}).encode()
    registry.publish(version, artefact, {"version": version, "sha256": sha256(artefact)})


async def test_the_same_trees_under_another_name_agree_exactly(tmp_path: Path) -> None:
    _copy_of_the_shipped_model(Registry(tmp_path / "reg"), "same-trees")
    env = {
        "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(FIXTURES / "images"),
        "IMGPROXY_MODELS_REGISTRY": str(tmp_path / "reg"),
        "IMGPROXY_PROMETHEUS_BIND": "127.0.0.1:9",  # metrics on (the app does not bind it itself)
        "IMGPROXY_AUTOQUALITY_ML_SHADOW": "same-trees",
        "IMGPROXY_AUTOQUALITY_ML_SHADOW_SAMPLE": "1",
    }
    async with app_with_service(**env) as (client, service):
        for path in PATHS[:4]:
            assert (await client.get(path)).status_code == 200
        assert service.images.misses is not None and service.images.misses.quality is not None
        results = service.images.misses.quality.results
    assert len(results) == 4
    assert all(r == {"quality": 1.0, "predicted": 0.0, "served": r["served"]} for r in results)
    assert all(r["served"] == int(r["served"]) for r in results)  # 0 unless the correcting encode moved it


async def test_an_unusable_shadow_version_only_turns_the_shadow_off(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "reg")
    _copy_of_the_shipped_model(registry, "broken")
    artefact = tmp_path / "reg" / "broken" / "model.json"
    artefact.write_bytes(artefact.read_bytes()[:-50])  # truncated: the digest no longer matches
    env = {
        "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(FIXTURES / "images"),
        "IMGPROXY_MODELS_REGISTRY": str(tmp_path / "reg"),
        "IMGPROXY_PROMETHEUS_BIND": "127.0.0.1:9",
        "IMGPROXY_AUTOQUALITY_ML_SHADOW_SAMPLE": "1",
    }
    for shadow, problem in (("broken", "digest does not match"), ("missing", "incomplete"), ("../x", "bad version")):
        async with app_with_service(**env, IMGPROXY_AUTOQUALITY_ML_SHADOW=shadow) as (client, service):
            health = (await client.get("/health")).text
            assert f"aq:ml shadow: off: version {shadow} is not usable" in health and problem in health
            assert service.images.misses is not None and service.images.misses.quality is None
            assert (await client.get(PATHS[0])).status_code == 200


def _named(version: str) -> TreeModel:
    """The shipped model's trees under another version name."""
    return dataclasses.replace(load_folder(DEFAULT_DIR), version=version)


def _ok_runs(registry: CollectorRegistry, shadow: str) -> float:
    return registry.get_sample_value("model_shadow_runs_total", {"model": ML, "shadow": shadow, "outcome": "ok"}) or 0


def test_status_when_off_or_unconfigured(tmp_path: Path) -> None:
    metrics = ModelMetrics(CollectorRegistry())
    assert quality_shadow(AnalysisSettings(), metrics) == (None, "off")
    assert quality_shadow(AnalysisSettings(aq_ml_shadow="v2", aq_ml_shadow_sample=0.0), metrics) == (None, "off")
    _, status = quality_shadow(AnalysisSettings(aq_ml_shadow="v2"), metrics)
    assert status == "off: v2 needs IMGPROXY_MODELS_REGISTRY"
    _, status = quality_shadow(AnalysisSettings(aq_ml_shadow="v2", models_registry=str(tmp_path)), None)
    assert "IMGPROXY_PROMETHEUS_BIND" in status


def _outcome(version: str, predicted: int, served: int, fmt: str = "webp") -> MlOutcome:
    features = (16.0, 1.3, 0.0, 120.0, 50.0, 7.0, 9.0, 0.3, 20.0, 0.9)
    return MlOutcome(version, predicted, served, 0.002, 1, features, fmt, 0.0025, 30, 90)


def test_measures_sampling_and_what_is_not_shadowed() -> None:
    registry = CollectorRegistry()
    shadowing = QualityShadow(_named("cand"), 0.5, ModelMetrics(registry))
    outcome = _outcome("v1", 50, 55)
    expected = predict_quality(shadowing.model, outcome.features, "webp", 0.0025, 30, 90).quality
    # sampled: a stable half of the keys, the same ones on every call
    keys = [f"local:///img{i}.jpg\x00300x200" for i in range(400)]
    for key in keys:
        shadowing.observe(key, [outcome])
    first = _ok_runs(registry, "cand")
    assert 150 < first < 250
    for key in keys[:100]:
        shadowing.observe(key, [outcome])
    again = _ok_runs(registry, "cand") - first
    assert again == sum(sampled("cand", f"{key}\x00webp", 0.5) for key in keys[:100])
    assert shadowing.results[-1] == agreement(expected, outcome)
    assert agreement(57, outcome) == {"quality": pytest.approx(0.3), "predicted": 7.0, "served": 3.0}
    assert agreement(20, outcome)["quality"] == 0.0
    # never shadowed: a fallback (no prediction), the shadow's own version, an unknown format
    always = QualityShadow(_named("cand"), 1.0, None)
    always.observe("k", [MlOutcome("fallback", 0, 60, 0.002, 3), _outcome("cand", 50, 50), _outcome("v1", 50, 50, "")])
    assert always.results == []
    always.observe("k", [_outcome("v1", 50, 50)])
    assert len(always.results) == 1


def test_a_failing_prediction_is_counted_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    shadowing = QualityShadow(_named("cand"), 1.0, ModelMetrics(registry))
    short = MlOutcome("v1", 50, 50, 0.002, 1, (1.0, 2.0), "webp", 0.0025, 30, 90)  # another feature version's vector
    for i in range(3):
        shadowing.observe(f"k{i}", [short])
    counted = registry.get_sample_value("model_shadow_runs_total", {"model": ML, "shadow": "cand", "outcome": "error"})
    assert counted == 3 and shadowing.results == []
    assert sum("aq:ml shadow cand failed" in r.getMessage() for r in caplog.records) == 1  # logged once
