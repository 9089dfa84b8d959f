"""The face detector behind its circuit breaker, through the real app: a detector made to fail or
slow down at run time (the fault is injected into the model object in-process) never fails a
request; smart crop falls back to libvips' attention, the breaker opens (gauge, /health), and
after the cool-down detection is used again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from imgproxy_py.analysis.detector import Detection
from imgproxy_py.processing.quality import METRIC_VERSION
from imgproxy_py.server.app import create_app
from imgproxy_py.server.face_models import MODEL_NAME, MonitoredDetector
from imgproxy_py.server.quality_models import SEARCH_NAME
from tests.conftest import make_settings
from tests.processing.test_faces import composite, detector, face_share

COOLDOWN = 3.0  # long enough that a test's few requests (with face_share) all fall inside it
FACE_KEPT, FACE_LOST = 0.99, 0.5  # the detector keeps this composite's face; attention picks the flowers


@asynccontextmanager
async def running(root: Path) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    settings = make_settings(
        IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(root),
        IMGPROXY_FEATURE_STORE="false",  # every request must ask the detector, not a stored answer
        IMGPROXY_PROMETHEUS_BIND="127.0.0.1:9",
        IMGPROXY_MODEL_BREAKER_COOLDOWN=str(COOLDOWN),
        IMGPROXY_MODEL_BREAKER_MIN_CALLS="3",
        IMGPROXY_FACE_DETECTION_LATENCY_BUDGET="0.5",  # generous: a loaded CI machine stays under it
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=60) as client:
            yield app, client


class Scenario:
    def __init__(self, app: Any, client: httpx.AsyncClient, data: bytes, labels: list[Any]) -> None:
        self.app, self.client, self.data, self.labels = app, client, data, labels
        self.width = 200  # each request asks for a new width: a result cache hit would not call the detector
        wrapped = app.state.service.images.faces.detector
        assert isinstance(wrapped, MonitoredDetector)
        self.model = wrapped.inner
        self.version = wrapped.version

    async def crop(self) -> float:
        """One smart crop; the share of the face it kept."""
        self.width += 1
        response = await self.client.get(f"/_/rs:fill:{self.width}:400/g:sm/plain/local:///composite.jpg@jpg")
        assert response.status_code == 200
        return face_share(self.data, response.content, self.labels)

    def sample(self, name: str, **labels: str) -> float:
        value = self.app.state.metrics.registry.get_sample_value(
            name, {"model": MODEL_NAME, "version": self.version, **labels}
        )
        return float(value or 0.0)

    async def health(self) -> str:
        response = await self.client.get("/health")
        assert response.status_code == 200  # an open breaker is degraded service, not a failed check
        return response.text

    async def recovers(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.undo()  # the model is healthy again
        await asyncio.sleep(COOLDOWN * 1.2)
        assert await self.crop() >= FACE_KEPT  # the trial call: detection is used again
        assert self.sample("model_circuit_open") == 0
        assert f"model {MODEL_NAME}/{self.version}: ok" in await self.health()
        assert await self.crop() >= FACE_KEPT


@pytest.fixture
def photo(tmp_path: Path) -> tuple[Path, bytes, list[Any]]:
    detector()  # skips when the detector is not installed
    data, labels = composite((1250, 250))
    (tmp_path / "composite.jpg").write_bytes(data)
    return tmp_path, data, labels


async def test_a_failing_detector_falls_back_opens_the_breaker_and_recovers(
    photo: tuple[Path, bytes, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, data, labels = photo
    async with running(root) as (app, client):
        s = Scenario(app, client, data, labels)
        assert await s.crop() >= FACE_KEPT
        assert s.sample("model_inference_seconds_count") == 1
        assert s.sample("model_output_count", output="faces_found") == 1
        assert s.sample("model_output_sum", output="faces_found") >= 1
        assert s.sample("model_output_count", output="score") >= 1

        calls = 0

        def broken(width: int, height: int, rgb: bytes) -> list[Detection]:
            nonlocal calls
            calls += 1
            raise RuntimeError("detector crashed")

        monkeypatch.setattr(s.model, "detect", broken)
        requests = 0
        while s.sample("model_circuit_open") == 0:  # errors open it; each request still answers, by attention
            assert await s.crop() < FACE_LOST
            requests += 1
            assert requests <= 5  # five errors in a row open it whatever the rates say
        assert calls == requests
        assert s.sample("model_errors_total") == calls
        assert s.sample("model_fallbacks_total", reason="error") == calls
        health = await s.health()
        assert f"model {MODEL_NAME}/{s.version}: open (" in health and "fallback in use" in health

        assert await s.crop() < FACE_LOST  # open: the detector is not even called
        assert calls == requests
        assert s.sample("model_fallbacks_total", reason="circuit_open") == 1

        await s.recovers(monkeypatch)


async def test_a_slow_detector_opens_the_breaker_on_p95_and_recovers(
    photo: tuple[Path, bytes, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, data, labels = photo
    async with running(root) as (app, client):
        s = Scenario(app, client, data, labels)
        real = s.model.detect

        def slow(width: int, height: int, rgb: bytes) -> list[Detection]:
            time.sleep(1.2)  # over the 0.5 s budget by a wide margin
            return list(real(width, height, rgb))

        monkeypatch.setattr(s.model, "detect", slow)
        for _ in range(3):  # slow but right: these still use the faces; the third call trips the p95
            assert await s.crop() >= FACE_KEPT
        assert s.sample("model_circuit_open") == 1
        assert "p95 latency" in await s.health()
        assert await s.crop() < FACE_LOST  # open: attention crop, without waiting for the model
        assert s.sample("model_fallbacks_total", reason="circuit_open") == 1
        assert s.sample("model_inference_seconds_count") == 3

        await s.recovers(monkeypatch)


async def test_dssim_searches_are_watched_like_a_model() -> None:
    """aq:dssim's chosen quality and achieved score land in model_output{model="autoquality-dssim"}."""
    app = create_app(make_settings(IMGPROXY_PROMETHEUS_BIND="127.0.0.1:9", IMGPROXY_FEATURE_STORE="false"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=60) as client:
            for width in (300, 320):
                response = await client.get(f"/_/rs:fit:{width}:300/aq:dssim:0.004/plain/local:///flowers.jpeg@jpg")
                assert response.status_code == 200
    sample = app.state.metrics.registry.get_sample_value
    labels = {"model": SEARCH_NAME, "version": METRIC_VERSION}
    assert sample("model_output_count", {**labels, "output": "achieved_dssim"}) == 2
    achieved = sample("model_output_sum", {**labels, "output": "achieved_dssim"}) / 2
    assert 0 < achieved <= 0.004 + 0.0003 * 2  # the search's target, within its allowed error
    quality = sample("model_output_sum", {**labels, "output": "chosen_quality_jpeg"}) / 2
    assert 1 <= quality <= 100
