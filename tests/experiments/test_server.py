"""Experiments in a real server: arms by source URL, headers, cache keys, metrics, the report."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from scipy import stats

from imgproxy_py.experiments import Experiments, load_experiments
from imgproxy_py.security import compute_signature
from imgproxy_py.settings import Settings
from tests.conftest import ClientFactory
from tests.support import REPO, Origin, env_for, fixture_path, free_port, serving

KEY = "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881"
SALT = "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5"
EXAMPLE = REPO / "config" / "experiments.example.json"
IMAGES = ["320x240.jpg", "Landscape_1.jpg", "Landscape_3.jpg", "4.webp"]


def signed(path: str) -> str:
    return "/" + compute_signature(bytes.fromhex(KEY), bytes.fromhex(SALT), path) + path


def _report(*args: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", "imgproxy_py", "experiments", "report", "--json", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=env_for(IMGPROXY_EXPERIMENTS=str(EXAMPLE)),
        timeout=60,
    ).stdout
    result: list[dict[str, Any]] = json.loads(out)
    return result


def _settled_report(metrics_url: str, requests: int, within: float = 15) -> list[dict[str, Any]]:
    """The report once the arms' counters have caught up with ``requests`` (flushed every 0.2 s;
    a loaded machine may take longer), polled rather than slept for."""
    deadline = time.monotonic() + within
    while True:
        report = _report("--metrics", metrics_url)
        seen = sum(row["requests"] for exp in report for row in exp["arms"])
        if seen >= requests or time.monotonic() > deadline:
            return report
        time.sleep(0.2)


def test_two_arm_run_headers_metrics_and_report(origin: Origin, tmp_path: Path) -> None:
    for name in IMAGES:
        fixture_path(name)
    metrics_port = free_port()
    log = tmp_path / "server.log"
    env = {
        "IMGPROXY_KEY": KEY,
        "IMGPROXY_SALT": SALT,
        "IMGPROXY_LOG_FORMAT": "json",
        "IMGPROXY_PROMETHEUS_BIND": f"127.0.0.1:{metrics_port}",
        "IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES": "true",
        "IMGPROXY_EXPERIMENTS": str(EXAMPLE),
        "IMGPROXY_WORKERS": "2",
    }
    assignments = Experiments(load_experiments(Settings.from_env(env).experiments))  # type: ignore[arg-type]
    sources = [origin.url(IMAGES[i % len(IMAGES)]) + f"?v={i}" for i in range(64)]
    arms: dict[str, str] = {}
    sizes: dict[str, int] = {}
    with log.open("w") as output, serving(env=env, output=output) as (base, _proc):
        with httpx.Client(timeout=30) as client:
            for source in sources:
                path = signed(f"/rs:fit:200:200/plain/{source.replace('?', '%3F')}@jpg")
                first = client.get(base + path, headers={"User-Agent": "a", "X-Forwarded-For": "10.0.0.1"})
                again = client.get(
                    base + path, headers={"User-Agent": "b", "X-Forwarded-For": "10.9.9.9", "Accept": "image/webp"}
                )
                assert first.status_code == again.status_code == 200, first.text
                # every client gets the arm (and so the bytes) of the URL: no Vary needed for it
                assert first.headers["x-experiment"] == again.headers["x-experiment"]
                assert first.headers["etag"] == again.headers["etag"] and first.content == again.content
                assert first.headers["x-cache"] == "MISS" and again.headers["x-cache"].startswith("HIT")
                assert "vary" not in first.headers
                arms[source] = first.headers["x-experiment"]
                sizes[source] = len(first.content)
            # the arm's options are not part of the signed path: a tampered signature still fails
            assert client.get(base + "/AAAA" + path[path.index("/", 1) :]).status_code == 403
        # access lines and arm tallies are flushed within 0.2 s
        from_metrics = _settled_report(f"http://127.0.0.1:{metrics_port}/metrics", 2 * len(sources))

    for source, label in arms.items():
        expected = assignments.assign(source, ())
        assert expected is not None and label == expected.label
    counts = Counter(arms.values())
    assert set(counts) == {"quality=control", "quality=treatment"}
    # The arm's options were applied: the treatment's auto-quality picked a quality per image
    # (so its bytes differ from control's fixed q:80 for the same image), control's never ran.
    by_image: dict[tuple[str, str], int] = {}
    for source, label in arms.items():
        by_image[(source.split("?")[0], label)] = sizes[source]
    for image in {s.split("?")[0] for s in sources}:
        assert by_image[(image, "quality=treatment")] != by_image[(image, "quality=control")]

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("msg") == "request" and "/plain/" in line.get("path", "")]
    assert Counter(line.get("experiment") for line in access) == {k: 2 * v for k, v in counts.items()} | {None: 1}
    from_log = _report("--log", str(log))

    for report in (from_metrics, from_log):
        (quality,) = report
        assert quality["experiment"] == "quality" and quality["control"] == "control"
        rows = {row["arm"]: row for row in quality["arms"]}
        for arm in ("control", "treatment"):
            n = counts[f"quality={arm}"]
            assert rows[arm]["requests"] == 2 * n and rows[arm]["cache_hits"] == n
            assert rows[arm]["share"] == 50 and rows[arm]["errors"] == 0
            assert rows[arm]["bytes"]["n"] == 2 * n and rows[arm]["processing_seconds"]["n"] == n
            mean = sum(sizes[s] for s, a in arms.items() if a == f"quality={arm}") / n
            assert abs(rows[arm]["bytes"]["mean"] - mean) < 1e-6 * mean
            low, high = rows[arm]["bytes"]["ci95"]
            assert low < mean < high
        if report is from_metrics:  # the access log does not carry the chosen quality
            # counted where a search measured (tiny outputs take the top quality unmeasured)
            assert 0 < rows["treatment"]["chosen_quality"]["n"] <= counts["quality=treatment"]
            assert rows["control"]["chosen_quality"]["n"] == 0
        vs = rows["treatment"]["bytes"]["vs_control"]
        control_mean, treatment_mean = rows["control"]["bytes"]["mean"], rows["treatment"]["bytes"]["mean"]
        assert abs(vs["relative"] - (treatment_mean / control_mean - 1)) < 1e-9
        assert vs["ci95"][0] < vs["relative"] < vs["ci95"][1] and 0 <= vs["p_value"] <= 1
        observed = [2 * counts["quality=control"], 2 * counts["quality=treatment"]]
        srm = stats.chisquare(observed, [sum(observed) / 2] * 2).pvalue
        assert abs(quality["srm_p_value"] - srm) < 1e-9
        assert isinstance(quality["verdict"], str) and quality["verdict"]

    text = subprocess.run(
        [sys.executable, "-m", "imgproxy_py", "experiments", "report", "--log", str(log)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=env_for(IMGPROXY_EXPERIMENTS=str(EXAMPLE)),
    ).stdout
    assert "experiment quality (control: control)" in text and "verdict:" in text and "treatment" in text


async def test_arm_is_part_of_the_etag_and_cache_key(client_factory: ClientFactory) -> None:
    """Arms with no options of their own still get their own ETag and cache entry."""
    neutral = {
        "experiments": [
            {"name": "noop", "arms": [{"name": "a", "share": 50}, {"name": "b", "share": 50}]},
        ]
    }
    path = "/_/rs:fit:50:50/plain/local:///320x240.jpg@png"
    fixture_path("320x240.jpg")
    async with client_factory() as client:
        plain = await client.get(path)
    async with client_factory(IMGPROXY_EXPERIMENTS=json.dumps(neutral)) as client:
        first = await client.get(path)
        assert first.status_code == 200 and first.headers["x-experiment"] in ("noop=a", "noop=b")
        assert first.headers["etag"] != plain.headers["etag"]
        assert first.content == plain.content  # no options: the same image
        again = await client.get(path, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.headers["x-experiment"] == first.headers["x-experiment"]
        hit = await client.get(path)
        assert hit.headers["x-cache"] == "HIT-L1" and hit.headers["x-experiment"] == first.headers["x-experiment"]
    async with client_factory(IMGPROXY_EXPERIMENTS=json.dumps({"experiments": []})) as client:
        off = await client.get(path)
        assert off.headers["etag"] == plain.headers["etag"] and "x-experiment" not in off.headers


def test_invalid_experiments_stop_start_up() -> None:
    bad = json.dumps({"experiments": [{"name": "q", "arms": [{"name": "a", "share": 50, "options": "q:x"}]}]})
    proc = subprocess.run(
        [sys.executable, "-m", "imgproxy_py", "serve", "--bind", f"127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env_for(IMGPROXY_EXPERIMENTS=bad),
        timeout=60,
    )
    assert proc.returncode == 2
    assert "invalid configuration: IMGPROXY_EXPERIMENTS: invalid experiments: experiments.0.arms" in proc.stderr


def test_per_arm_metrics_add_up_across_processes(origin: Origin) -> None:
    fixture_path("320x240.jpg")
    metrics_port = free_port()
    env = {
        "IMGPROXY_PROMETHEUS_BIND": f"127.0.0.1:{metrics_port}",
        "IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES": "true",
        "IMGPROXY_EXPERIMENTS": str(EXAMPLE),
        "IMGPROXY_WORKERS": "1",
    }
    counts: Counter[str] = Counter()
    with serving("--processes", "2", env=env) as (base, _proc), httpx.Client(timeout=30) as client:
        for i in range(24):
            source = origin.url("320x240.jpg") + f"%3Fv={i}"
            response = client.get(f"{base}/_/w:40/plain/{source}@png", headers={"Connection": "close"})
            assert response.status_code == 200
            counts[response.headers["x-experiment"]] += 1
        # each process adds its tallies to the shared counters every 0.2 s
        (quality,) = _settled_report(f"http://127.0.0.1:{metrics_port}/metrics", sum(counts.values()))
    rows = {row["arm"]: row for row in quality["arms"]}
    for arm in ("control", "treatment"):
        assert rows[arm]["requests"] == counts[f"quality={arm}"]
        assert rows[arm]["processing_seconds"]["n"] == counts[f"quality={arm}"]
        assert rows[arm]["share"] == 50


async def test_scopes_by_preset_and_source_prefix_in_the_app(client_factory: ClientFactory) -> None:
    fixture_path("320x240.jpg")
    arms = [{"name": "a", "options": "q:60", "share": 50}, {"name": "b", "options": "q:90", "share": 50}]
    definitions = {
        "experiments": [
            {"name": "thumbs", "scope": {"preset": "thumb"}, "arms": arms},
            {"name": "landscapes", "scope": {"source_prefixes": ["local:///Landscape_"]}, "arms": arms},
        ]
    }
    env = {"IMGPROXY_PRESETS": "thumb=rs:fit:40:40", "IMGPROXY_EXPERIMENTS": json.dumps(definitions)}
    async with client_factory(**env) as client:
        thumb = await client.get("/_/pr:thumb/plain/local:///320x240.jpg@jpg")
        plain = await client.get("/_/rs:fit:40:40/plain/local:///320x240.jpg@jpg")
        landscape = await client.get("/_/rs:fit:40:40/plain/local:///Landscape_1.jpg@jpg")
    assert thumb.headers["x-experiment"].startswith("thumbs=")
    assert "x-experiment" not in plain.headers
    assert landscape.headers["x-experiment"].startswith("landscapes=")
    assert len(thumb.content) != len(plain.content)  # q:60 or q:90 instead of the default 80
