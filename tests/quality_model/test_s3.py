"""The registry and the dataset on S3 (moto's server, started by the tests), driven by the CLI.

Covers: ``models collect|train|list|promote|rollback`` against ``s3://`` locations from the
IMGPROXY_* settings, rows appended by separate writers and deduplicated on read, a promotion
made by another process picked up by a serving handle without restart, and the fallbacks
(a corrupt artefact, an unreachable registry).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imgproxy_py.cli import main
from imgproxy_py.quality_model.dataset import S3Dataset, open_dataset
from imgproxy_py.quality_model.inputs import FEATURE_VERSION
from imgproxy_py.quality_model.registry import DEFAULT_DIR, ModelHandle, Registry
from imgproxy_py.quality_model.trees import ModelError, sha256
from imgproxy_py.s3conn import S3Target
from tests.conftest import app_with_service
from tests.quality_model.test_registry import _stump, synthetic_rows
from tests.s3_server import REGION, S3Server, closed_port_endpoint
from tests.support import FIXTURES

ROOT = Path(__file__).resolve().parents[2]


def _settings_env(s3: S3Server, bucket: str) -> dict[str, str]:
    return s3.env(
        IMGPROXY_MODELS_REGISTRY=f"s3://{bucket}/models",
        IMGPROXY_AUTOQUALITY_DATASET=f"s3://{bucket}/aq-data",
    )


def _publish(registry: Registry, version: str) -> None:
    data = _stump(version).to_json()
    registry.publish(version, data, {"version": version, "sha256": sha256(data)})


def _wait_for(handle: ModelHandle, version: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    seen = ""
    while True:
        try:
            seen = handle.get().version
        except ModelError as exc:
            seen = str(exc)
        if seen == version or time.monotonic() >= deadline:
            return seen
        time.sleep(0.05)


def test_s3_dataset_appends_from_many_writers_and_keeps_the_latest_row(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    first, second = S3Dataset(f"s3://{bucket}/d", s3_server.target()), S3Dataset(f"s3://{bucket}/d", s3_server.target())
    rows = [dataclasses.replace(r, metric_version="m") for r in synthetic_rows(5)]
    first.add(rows)
    second.add([dataclasses.replace(rows[0], label=rows[0].label + 7)])  # the same key, written later
    second.add([dataclasses.replace(rows[1], format="webp")])  # a new key
    assert first.count() == 6
    merged = {(r.source_digest, r.format): r for r in first.rows(FEATURE_VERSION, "m")}
    assert merged[(rows[0].source_digest, "jpeg")].label == rows[0].label + 7
    assert list(first.rows("another-feature-version")) == []
    keys = [o.object_name for o in s3_server.client().list_objects(bucket, prefix="d/rows/", recursive=True)]
    assert len(keys) == 3  # one object per write: no read-modify-write between replicas
    s3_server.put(bucket, "d/rows/zz-garbage.jsonl.gz", b"not gzip")  # a foreign or damaged object
    assert first.count() == 6  # skipped (logged), the rest still reads
    assert isinstance(open_dataset(f"s3://{bucket}/d", s3_server.target()), S3Dataset)


def test_models_commands_against_s3(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("sklearn")
    bucket = s3_server.new_bucket()
    for name, value in _settings_env(s3_server, bucket).items():
        monkeypatch.setenv(name, value)
    images = tmp_path / "images"
    images.mkdir()
    for name in ("flowers.jpeg", "320x240.jpg"):
        shutil.copy(FIXTURES / "images" / name, images / name)
    collect = ["models", "collect", str(images), "--widths", "160", "--formats", "jpeg,webp"]
    assert main(collect) == 0
    dataset = S3Dataset(f"s3://{bucket}/aq-data", s3_server.target())
    collected = list(dataset.rows())
    assert {r.format for r in collected} == {"jpeg", "webp"} and len({r.source_digest for r in collected}) == 2
    assert main(collect) == 0
    assert dataset.count() == len(collected)  # collected twice, deduplicated on read

    # Enough rows to train on (the collected ones are too few to hold some out): synthetic, in the same store.
    from imgproxy_py.processing.quality import METRIC_VERSION

    dataset.add([dataclasses.replace(r, metric_version=METRIC_VERSION) for r in synthetic_rows(120)])
    capsys.readouterr()
    assert main(["models", "train"]) == 0
    out = capsys.readouterr().out
    assert f"published s3://{bucket}/models/" in out and "held-out MAE" in out
    registry = Registry(f"s3://{bucket}/models", s3_server.target())
    (trained,) = registry.versions()
    assert trained.meta["rows"] == len(collected) + 120
    _publish(registry, "manual-2")
    assert main(["models", "promote", trained.name]) == 0
    assert main(["models", "promote", "manual-2"]) == 0
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert "* manual-2" in listing and trained.name in listing
    assert main(["models", "rollback"]) == 0
    assert registry.current() == trained.name
    assert main(["models", "promote", "no-such-version"]) == 2


def test_a_promotion_by_another_process_reaches_a_serving_handle(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    location = f"s3://{bucket}/models"
    registry = Registry(location, s3_server.target())
    for version in ("v1", "v2"):
        _publish(registry, version)
    registry.promote("v1")
    handle = ModelHandle(location, poll=0.05, s3=s3_server.target())
    assert handle.get().version == "v1"
    env = {**os.environ, **_settings_env(s3_server, bucket)}
    for argv, expected in ((["promote", "v2"], "v2"), (["rollback"], "v1")):
        done = subprocess.run(
            [sys.executable, "-m", "imgproxy_py", "models", *argv],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert _wait_for(handle, expected) == expected  # no restart: the pointer is polled on S3


def test_s3_fallbacks_corrupt_artefact_and_unreachable_registry(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    location = f"s3://{bucket}/models"
    registry = Registry(location, s3_server.target())
    _publish(registry, "good")
    registry.promote("good")
    _publish(registry, "bad")
    s3_server.put(bucket, "models/bad/model.json", b'{"format": "imgproxy-py-gbt/1", "trees": [')
    handle = ModelHandle(location, poll=0.05, s3=s3_server.target())
    assert handle.get().version == "good"
    registry.promote("bad")
    deadline = time.monotonic() + 20
    while _wait_for(handle, "good", timeout=0) == "good" and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(ModelError, match="bad"):  # the caller falls back to the DSSIM search
        handle.get()

    # Nothing listens: the shipped model serves (and a request never waits on the network after that).
    unreachable = S3Target(closed_port_endpoint(), REGION, True, "k", "s")
    offline = ModelHandle(location, poll=0.05, s3=unreachable)
    shipped = Registry(DEFAULT_DIR).store.read("meta.json")
    assert shipped is not None and offline.get().version in shipped.decode()
    assert Registry(location, unreachable).current() is None


async def test_the_app_records_rows_to_s3_and_serves_the_version_promoted_there(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    registry = Registry(f"s3://{bucket}/models", s3_server.target())
    doc = json.loads((DEFAULT_DIR / "model.json").read_bytes())
    for version in ("first", "second"):
        artefact = json.dumps({**doc, "version": version}).encode()
        registry.publish(version, artefact, {"version": version, "sha256": sha256(artefact)})
    registry.promote("first")
    url = "/_/rs:fit:300:300/aq:{method}/plain/local:///flowers.jpeg@webp"
    env = {**_settings_env(s3_server, bucket), "IMGPROXY_MODELS_POLL_INTERVAL": "0.1"}
    async with app_with_service(**env) as (client, service):
        assert (await client.get(url.format(method="dssim"))).status_code == 200
        assert (await client.get(url.format(method="ml"))).status_code == 200
        assert service.images.quality_models is not None
        assert service.images.quality_models.cache_version() == "first"
        registry.promote("second")
        for _ in range(200):
            if service.images.quality_models.cache_version() == "second":
                break
            await asyncio.sleep(0.05)
        assert service.images.quality_models.cache_version() == "second"
        response = await client.get(url.format(method="ml"))
        assert response.status_code == 200 and response.headers["x-cache"] == "MISS"  # a new version: a new key
    rows = list(S3Dataset(f"s3://{bucket}/aq-data", s3_server.target()).rows())
    assert [r.format for r in rows] == ["webp"] and 30 <= rows[0].label <= 90


async def test_a_shadow_version_loads_from_the_s3_registry_and_an_unreachable_one_stays_off(
    s3_server: S3Server,
) -> None:
    bucket = s3_server.new_bucket()
    registry = Registry(f"s3://{bucket}/models", s3_server.target())
    _publish(registry, "stump")  # predicts 55 or 65 whatever the image: far from the serving model
    env = {
        **_settings_env(s3_server, bucket),
        "IMGPROXY_PROMETHEUS_BIND": "127.0.0.1:9",
        "IMGPROXY_AUTOQUALITY_ML_SHADOW": "stump",
        "IMGPROXY_AUTOQUALITY_ML_SHADOW_SAMPLE": "1",
    }
    url = "/_/rs:fit:300:300/aq:ml/plain/local:///flowers.jpeg@webp"
    async with app_with_service(**env) as (client, service):
        assert "aq:ml shadow: stump on 100% of aq:ml misses" in (await client.get("/health")).text
        assert (await client.get(url)).status_code == 200
        shadow = service.images.misses.quality if service.images.misses is not None else None
        assert shadow is not None and len(shadow.results) == 1
        assert shadow.results[0]["quality"] == max(0.0, 1 - abs(shadow.results[0]["predicted"]) / 10)
    env["IMGPROXY_S3_ENDPOINT"] = closed_port_endpoint()
    async with app_with_service(**env) as (client, service):
        health = (await client.get("/health")).text
        assert "aq:ml shadow: off: version stump is not usable" in health
        assert (await client.get(url)).status_code == 200  # the shipped model serves; no shadow
        assert service.images.misses is not None and service.images.misses.quality is None
