"""Running the real server: JSON access logs, Prometheus across processes, graceful shutdown."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from imgproxy_py.security import compute_signature
from tests.support import Origin, fixture_path, free_port, serving

KEY = "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881"
SALT = "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5"
PHOTO = "2569067123_aca715a2ee_o.jpg"


def signed(path: str) -> str:
    return "/" + compute_signature(bytes.fromhex(KEY), bytes.fromhex(SALT), path) + path


@contextmanager
def server(*args: str, **env: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    with serving(*args, env=env) as running:
        yield running


def scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = values.get(name, 0.0) + float(value)
    return values


def test_json_logs_and_metrics_across_processes(origin: Origin) -> None:
    fixture_path(PHOTO)
    metrics_port = free_port()
    env = {
        "IMGPROXY_KEY": KEY,
        "IMGPROXY_SALT": SALT,
        "IMGPROXY_LOG_FORMAT": "json",
        "IMGPROXY_PROMETHEUS_BIND": f"127.0.0.1:{metrics_port}",
        "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(fixture_path(PHOTO).parent),
        "IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES": "true",
        "IMGPROXY_WORKERS": "3",
    }
    secret_source = f"http://user:hunter2%40127.0.0.1:{origin.port}/320x240.jpg"  # a literal @ is %40 in plain URLs
    with server("--processes", "2", **env) as (base, proc):
        paths = [signed(f"/rs:fill:60:40/plain/local:///{PHOTO}")] * 3 + [
            signed(f"/w:30/plain/{secret_source}"),
            "/bad-signature/w:30/plain/local:///x.jpg",
            signed("/nope:1/plain/local:///x.jpg"),
            signed("/w:30/plain/local:///missing.jpg"),
        ]
        with httpx.Client(timeout=20) as client:
            statuses = [
                client.get(base + p, headers={"X-Request-ID": f"req-{i}"}).status_code for i, p in enumerate(paths)
            ]
        assert statuses == [200, 200, 200, 200, 403, 404, 404]
        time.sleep(0.5)  # access lines are flushed within 0.2 s
        metrics = scrape(metrics_port)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0

    assert metrics['status_codes_total{status="200"}'] >= 4  # plus the health checks
    assert metrics['status_codes_total{status="403"}'] == 1
    assert metrics['status_codes_total{status="404"}'] == 2
    assert metrics['errors_total{type="security"}'] == 1
    assert metrics['errors_total{type="path_parsing"}'] == 1
    assert metrics['errors_total{type="download"}'] == 1
    assert metrics["transforms_total"] == 2
    assert metrics['cache_hits_total{tier="L1"}'] + metrics.get("coalesced_requests_total", 0) >= 1
    assert metrics["workers"] == 6  # 3 per process, summed over the 2 processes
    assert metrics["source_bytes_total"] > 0 and metrics["result_bytes_total"] > 0
    assert metrics['request_span_duration_seconds_count{span="processing_image"}'] == 2
    # two downloads that worked and the one for missing.jpg, which failed after it started
    assert metrics['request_span_duration_seconds_count{span="downloading_source_image"}'] == 3
    assert "requests_in_progress" in metrics and "vips_memory_bytes" in metrics

    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = {line["request_id"]: line for line in lines if line.get("msg") == "request"}
    assert set(access) >= {f"req-{i}" for i in range(7)}
    first = access["req-0"]
    assert first["status"] == 200 and first["cache"] == "MISS" and first["path"].startswith("/-/rs:fill:60:40/")
    assert {"downloading_source_image", "processing_image"} <= set(first["spans_ms"])
    assert access["req-1"]["cache"] == "HIT-L1" or access["req-2"]["cache"] == "HIT-L1"
    assert access["req-4"]["error"] == "security" and access["req-4"]["status"] == 403
    assert access["req-5"]["error"] == "path_parsing"
    for secret in ("hunter2", paths[0].split("/")[1], KEY, SALT):
        assert secret not in output


def test_sigterm_finishes_in_flight_requests_and_exits_zero(origin: Origin) -> None:
    origin.delay = 1.5
    env = {"IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES": "true", "IMGPROXY_GRACEFUL_STOP_TIMEOUT": "10"}
    results: dict[str, Any] = {}
    with server(**env) as (base, proc):

        def slow_request() -> None:
            results["response"] = httpx.get(f"{base}/_/w:50/plain/{origin.url(PHOTO)}", timeout=20)

        thread = threading.Thread(target=slow_request)
        thread.start()
        time.sleep(0.4)  # the request is in flight (waiting on the slow source)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/health", timeout=2)  # no longer accepting
        thread.join(timeout=20)
        proc.wait(timeout=20)
    assert results["response"].status_code == 200
    assert proc.returncode == 0


def test_requests_cut_by_the_graceful_stop_timeout_get_503_with_retry_after(origin: Origin, tmp_path: Path) -> None:
    origin.delay = 6  # longer than the graceful stop allows
    env = {
        "IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES": "true",
        "IMGPROXY_GRACEFUL_STOP_TIMEOUT": "1",
        "IMGPROXY_DOWNLOAD_TIMEOUT": "20",
        "IMGPROXY_TIMEOUT": "30",
        "IMGPROXY_LOG_FORMAT": "json",
    }
    results: dict[str, Any] = {}
    log = tmp_path / "out.log"
    with log.open("w") as output, serving(env=env, output=output) as (base, proc):

        def slow_request() -> None:
            results["response"] = httpx.get(f"{base}/_/w:50/plain/{origin.url(PHOTO)}", timeout=30)

        thread = threading.Thread(target=slow_request)
        thread.start()
        time.sleep(0.5)  # in flight, waiting on the slow source
        proc.send_signal(signal.SIGTERM)
        thread.join(timeout=30)
        proc.wait(timeout=30)
    response = results["response"]
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.text == "Server is shutting down"
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    (access,) = [r for r in records if r.get("msg") == "request"]
    assert access["status"] == 503 and access["error"] == "shutdown"
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("path", "hidden"),
    [
        ("/sig/w:30/plain/http://user:hunter2%40example.com/x.jpg", "hunter2"),
        ("/sig/w:30/plain/http://user:hunter2@example.com/x.jpg@png", "hunter2"),
        ("/sig/w:1/plain/http://example.com/x.jpg%3Ftoken%3Dtopsecret", "topsecret"),
        ("/sig/w:1/plain/https://example.com/x.jpg?X-Amz-Credential=AKIA99&x=1", "AKIA99"),
        ("/sig/w:1/aHR0cDovL3U6aHVudGVyMkBoL3guanBn.png", "aHR0cDovL3U6aHVudGVyMkBo"),  # http://u:hunter2@h/x.jpg
        ("/Mk9zZKbT_dmgJ7JZ/w:1/plain/local:///x.jpg", "Mk9zZKbT_dmgJ7JZ"),
    ],
)
def test_logged_paths_carry_no_secrets(path: str, hidden: str) -> None:
    from imgproxy_py.observability import redact_path

    logged = redact_path(path)
    assert hidden not in logged
    assert logged.startswith("/-/")


def test_metrics_of_a_single_process_are_kept_in_memory(tmp_path: Path) -> None:
    fixture_path(PHOTO)
    metrics_port = free_port()
    env = {
        "IMGPROXY_PROMETHEUS_BIND": f"127.0.0.1:{metrics_port}",
        "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(fixture_path(PHOTO).parent),
        "IMGPROXY_WORKERS": "3",
        "TMPDIR": str(tmp_path),  # multiprocess mode would leave its value files here
    }
    with server(**env) as (base, proc):
        with httpx.Client(timeout=20) as client:
            for _ in range(3):
                assert client.get(f"{base}/_/w:30/plain/local:///{PHOTO}").status_code == 200
        metrics = scrape(metrics_port)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert metrics["workers"] == 3
    assert metrics["requests_total"] == 3  # the health probes that waited for start-up are not requests
    assert metrics["transforms_total"] == 1
    assert metrics['cache_hits_total{tier="L1"}'] == 2  # answered before routing, still counted
    assert metrics['status_codes_total{status="200"}'] >= 3
    assert metrics['request_span_duration_seconds_count{span="streaming_image"}'] == 3
    assert not list(tmp_path.glob("imgproxy-py-metrics-*"))
