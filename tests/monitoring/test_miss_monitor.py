"""The miss hook in a real server over HTTP: input-mix drift against the shipped reference profile,
per-arm auto-quality histograms (and the report showing them), and the shadow face detector
recording its agreement after the response without changing it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from imgproxy_py.monitoring.reference import INPUTS_MODEL, ProfileSet
from imgproxy_py.processing import vips
from tests.conftest import app_client
from tests.processing.test_faces import FACES, detector
from tests.support import REPO, env_for, free_port, serving

TWO_ARMS = {
    "experiments": [
        {
            "name": "quality",
            "arms": [
                {"name": "control", "options": "q:80", "share": 50},
                {"name": "treatment", "options": "aq:dssim", "share": 50},
            ],
        }
    ]
}


def _screenshot(i: int) -> bytes:
    """A synthetic UI screenshot: a flat background, text-like bars; a different one per ``i``."""
    img = vips.Image.black(1280, 800).linear(1, 245).cast("uchar")
    for row in range(40, 760, 28):
        img = img.draw_rect([40 + (row + i) % 90], 40 + (i * 7) % 200, row, 500 + (row * i) % 400, 8, fill=True)
    return bytes(vips.save(img.bandjoin([img, img]).copy(interpretation="srgb"), ".png"))


def _samples(metrics_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(metrics_url, timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _poll(metrics_url: str, done: Callable[[dict[Any, float]], bool], within: float = 20) -> dict[Any, float]:
    deadline = time.monotonic() + within
    while True:
        samples = _samples(metrics_url)
        if done(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def _experiments_report(*args: str) -> str:
    """``imgproxy-py experiments report`` run as a user would, its standard output."""
    return subprocess.run(
        [sys.executable, "-m", "imgproxy_py", "experiments", "report", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=env_for(),
        timeout=60,
    ).stdout


def test_screenshots_raise_the_input_mix_drift_and_arms_get_quality_histograms(tmp_path: Path) -> None:
    count = 30
    for i in range(count):
        (tmp_path / f"shot{i}.png").write_bytes(_screenshot(i))
    metrics_port = free_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    env = {
        "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(tmp_path),
        "IMGPROXY_PROMETHEUS_BIND": f"127.0.0.1:{metrics_port}",
        "IMGPROXY_EXPERIMENTS": json.dumps(TWO_ARMS),
        "IMGPROXY_MODEL_DRIFT_WINDOW": "40",
        "IMGPROXY_MODEL_DRIFT_MIN_VALUES": "20",
        "IMGPROXY_WORKERS": "2",
    }
    arms: Counter[str] = Counter()
    with serving(env=env) as (base, _proc), httpx.Client(timeout=60) as client:
        for i in range(count):
            path = f"/_/rs:fit:300:300/plain/local:///shot{i}.png@jpg"
            first = client.get(base + path)
            assert first.status_code == 200 and first.headers["x-cache"] == "MISS", first.text
            arms[first.headers["x-experiment"]] += 1
            assert client.get(base + path).headers["x-cache"].startswith("HIT")  # hits are never observed
        samples = _poll(metrics_url, lambda s: _value(s, "input_images_total", format="png") == count)
        report = _experiments_report("--json", "--metrics", metrics_url)
        text = _experiments_report("--metrics", metrics_url)

    # input mix: one count per miss, and the format PSI against the shipped profile (mostly JPEG photos)
    assert _value(samples, "input_images_total", format="png") == count
    assert _value(samples, "input_megapixels_count") == count
    assert _value(samples, "input_source_bytes_count") == count  # streamed sources too: size from the request
    reference = ProfileSet.load().inputs()
    assert reference is not None
    labels = {"model": INPUTS_MODEL, "version": reference.version}
    drift = _value(samples, "model_drift_psi", **labels, feature="source_format")
    assert drift is not None and drift > 0.25
    # per-arm quality: only where auto-quality ran (the treatment), one observation per miss
    treatment, control = arms["quality=treatment"], arms["quality=control"]
    assert treatment and control
    chosen = _value(samples, "experiment_chosen_quality_count", experiment="quality", arm="treatment")
    assert chosen == treatment
    assert _value(samples, "experiment_achieved_dssim_count", experiment="quality", arm="treatment") == treatment
    assert _value(samples, "experiment_chosen_quality_count", experiment="quality", arm="control") == 0
    (quality,) = json.loads(report)
    rows = {row["arm"]: row for row in quality["arms"]}
    assert rows["treatment"]["chosen_quality"]["n"] == treatment
    mean = rows["treatment"]["chosen_quality"]["mean"]
    total = _value(samples, "experiment_chosen_quality_sum", experiment="quality", arm="treatment")
    assert total is not None and abs(mean - total / treatment) < 1e-9 and 1 <= mean <= 100
    assert 0 < rows["treatment"]["achieved_dssim"]["mean"] < 0.05
    assert rows["control"]["chosen_quality"]["n"] == 0 and rows["control"]["chosen_quality"]["mean"] is None
    assert "auto-quality (where it ran): control -; treatment mean quality" in text


def test_shadow_detector_records_agreement_after_the_response_and_changes_nothing() -> None:
    detector()  # the face detector is a prerequisite
    names = ["astronaut.png", "camera.png"]
    sizes = ["rs:fill:300:120", "rs:fill:120:300", "rs:fill:250:150"]  # square photos: each needs a crop
    paths = [f"/_/{size}/g:sm/plain/local:///{name}@png" for name in names for size in sizes]
    metrics_port = free_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    env = {
        "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(FACES),
        "IMGPROXY_PROMETHEUS_BIND": f"127.0.0.1:{metrics_port}",
        "IMGPROXY_FEATURE_STORE": "false",  # every miss runs the detector (no stored faces)
        "IMGPROXY_FACE_DETECTION_SHADOW_SAMPLE": "1",
        "IMGPROXY_FACE_DETECTION_SHADOW_SIZE": "320",
        "IMGPROXY_MODEL_DRIFT_WINDOW": "10",  # small, so six detections give the detector's drift gauges
        "IMGPROXY_MODEL_DRIFT_MIN_VALUES": "4",
    }
    bodies = {}
    with serving(env=env) as (base, _proc), httpx.Client(timeout=60) as client:
        health = client.get(base + "/health").text
        assert "face detection shadow: libfacedetection-" in health and "/320px on 100% of misses" in health
        for path in paths:
            response = client.get(base + path)
            assert response.status_code == 200 and response.headers["x-cache"] == "MISS"
            bodies[path] = response.content

        def ran(s: dict[Any, float]) -> bool:
            return sum(v for (n, labels), v in s.items() if n == "model_shadow_runs_total") >= len(paths)

        samples = _poll(metrics_url, ran)
    runs = {dict(labels)["outcome"]: v for (n, labels), v in samples.items() if n == "model_shadow_runs_total"}
    assert runs == {"ok": len(paths)} == {"ok": _value(samples, "face_detections_total")}
    agreement = {
        dict(labels)["measure"]: (v, samples[("model_shadow_agreement_sum", labels)])
        for (n, labels), v in samples.items()
        if n == "model_shadow_agreement_count"
    }
    assert set(agreement) == {"iou", "crop_overlap", "count_match"}
    for measure, (n, total) in agreement.items():
        assert n == len(paths), measure
        assert total / n > 0.5, measure  # the same library at 320 px mostly finds the same big faces
    any_labels = next(dict(labels) for (n, labels), _ in samples.items() if n == "model_shadow_agreement_count")
    assert any_labels["shadow"] == any_labels["serving"] + "/320px"
    # the serving version is in the shipped reference profile: its outputs' drift is exported
    drift = {dict(labels)["feature"] for (n, labels), _ in samples.items() if n == "model_drift_psi"}
    assert {"has_faces", "faces_found", "inference_seconds"} <= drift
    serving_version = any_labels["serving"]
    assert _value(samples, "model_drift_psi", model="faces", version=serving_version, feature="has_faces") is not None


async def test_the_shadow_does_not_change_what_clients_receive() -> None:
    detector()
    path = "/_/rs:fill:200:200/g:sm/plain/local:///astronaut.png@png"
    answers = []
    for sample in ("0", "1"):
        async with app_client(
            IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(FACES),
            IMGPROXY_FEATURE_STORE="false",
            IMGPROXY_FACE_DETECTION_SHADOW_SAMPLE=sample,
        ) as client:
            response = await client.get(path)
            assert response.status_code == 200
            answers.append((response.headers["etag"], response.content))
    assert answers[0] == answers[1]


def test_an_unreadable_reference_profile_stops_start_up_and_none_turns_drift_off(tmp_path: Path) -> None:
    from imgproxy_py.errors import SettingsError
    from imgproxy_py.server.app import create_app
    from tests.conftest import make_settings

    broken = tmp_path / "profile.json"
    broken.write_text('{"format": 1, "profiles": [{"model": "faces"}]}')
    for value, problem in ((str(tmp_path / "missing.json"), "No such file"), (str(broken), "not a reference profile")):
        with pytest.raises(SettingsError, match=f"IMGPROXY_MODEL_REFERENCE_PROFILE: .*{problem}"):
            create_app(make_settings(IMGPROXY_MODEL_REFERENCE_PROFILE=value))
    app = create_app(make_settings(IMGPROXY_MODEL_REFERENCE_PROFILE="none", IMGPROXY_PROMETHEUS_BIND="127.0.0.1:9"))
    assert app.state.models.references is None
    assert app.state.service.images.misses.inputs.drift is None  # the input mix is counted, not compared
