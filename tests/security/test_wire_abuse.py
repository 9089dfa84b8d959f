"""What an attacker on the wire can do to a real ``imgproxy-py serve`` on loopback (issue 16).

Every test starts its own server process and talks to it over real sockets; counts are
modest and every wait is bounded, so the suite stays quick. The heavier one-off numbers
(thousands of connections, 16 MB headers) are in the README's operations section.
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from imgproxy_py.allocator import jemalloc_path
from tests.security.rss import process_rss_mb
from tests.support import Origin, free_port, images_dir, missing_prerequisite, serving

PHOTO = "2569067123_aca715a2ee_o.jpg"

RSS_SLACK_MB = 100  # the bound: back within this of the baseline soon after


@contextmanager
def server(tmp_path: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    with (tmp_path / "server.log").open("w") as log, serving(env=env, output=log) as running:
        yield running


def settled_rss_mb(pid: int, target_mb: int, within: float = 15.0) -> int:
    """The process's RSS once it is at or below ``target_mb``, or its last value after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        rss = process_rss_mb(pid)
        if rss is None:
            pytest.skip("no /proc/<pid>/status here")
        if rss <= target_mb or time.monotonic() > deadline:
            return rss
        time.sleep(0.25)


# --- 1. endless sources ------------------------------------------------------------------


def endless_twice_then_rss_settles(
    origin: Origin, tmp_path: Path, env: dict[str, str], expect: Callable[[httpx.Response], None]
) -> None:
    """Ask a fresh server for the endless source twice (``expect`` checks each answer); its RSS must come back."""
    env = {"IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES": "1", **env}
    with server(tmp_path, **env) as (base, proc), httpx.Client(base_url=base, timeout=30) as client:
        assert client.get("/health").status_code == 200
        baseline = process_rss_mb(proc.pid)
        if baseline is None:
            pytest.skip("no /proc/<pid>/status here")
        for _ in range(2):
            expect(client.get(f"/insecure/w:10/plain/{origin.url('endless')}"))
        rss = settled_rss_mb(proc.pid, baseline + RSS_SLACK_MB)
        assert rss <= baseline + RSS_SLACK_MB, f"RSS {baseline} MB before, {rss} MB after two endless sources"
        assert proc.poll() is None


@pytest.mark.parametrize("malloc", ["jemalloc", "glibc"])
def test_an_endless_source_is_cut_at_the_default_cap_and_its_memory_returns(
    origin: Origin, tmp_path: Path, malloc: str
) -> None:
    if malloc == "jemalloc" and jemalloc_path() is None:
        missing_prerequisite("libjemalloc2 is not installed")

    def cut_at_the_cap(response: httpx.Response) -> None:
        # Cut at the cap (64 MiB), not at the 5 s download timeout (504) after gigabytes.
        assert response.status_code == 422, response.text
        assert response.text == "Source image file is too big"  # imgproxy's text

    endless_twice_then_rss_settles(origin, tmp_path, {"IMGPROXY_MALLOC": malloc}, cut_at_the_cap)


def test_an_uncapped_download_that_times_out_gives_its_memory_back(origin: Origin, tmp_path: Path) -> None:
    """``IMGPROXY_MAX_SRC_FILE_SIZE=0`` (set explicitly: no cap): the partial body is freed with the failure."""

    def timed_out(response: httpx.Response) -> None:
        assert response.status_code == 504, response.text

    env = {"IMGPROXY_MAX_SRC_FILE_SIZE": "0", "IMGPROXY_DOWNLOAD_TIMEOUT": "0.5"}
    endless_twice_then_rss_settles(origin, tmp_path, env, timed_out)


# --- 2 and 3. request heads, slow and silent connections, descriptors --------------------------


@pytest.fixture(autouse=True)
def enough_descriptors() -> Iterator[None]:
    """Hundreds of client sockets in this process too (CI machines often start at a soft 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


_OPEN: list[socket.socket] = []


@pytest.fixture(autouse=True)
def close_sockets() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def connect(base: str, send: bytes = b"") -> socket.socket:
    """A raw client socket, closed after the test whatever happens."""
    sock = socket.create_connection(address(base), timeout=10)
    _OPEN.append(sock)
    if send:
        sock.sendall(send)
    return sock


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``within`` seconds; what it sends first is skipped."""
    sock.settimeout(within)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def timed_get(client: httpx.Client, path: str) -> tuple[int, float]:
    started = time.monotonic()
    status = client.get(path).status_code
    return status, time.monotonic() - started


PARTIAL = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def test_a_giant_header_gets_431_at_once_and_stalls_nobody(tmp_path: Path) -> None:
    with server(tmp_path) as (base, proc), httpx.Client(base_url=base, timeout=30) as client:
        sock = connect(base)
        health: list[tuple[int, float]] = []
        beside = threading.Thread(target=lambda: health.append(timed_get(client, "/health")))
        started = time.monotonic()
        try:
            sock.sendall(PARTIAL + b"a" * (16 * 1024 * 1024) + b"\r\n\r\n")
            beside.start()
            answer = sock.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            answer = b""
        elapsed = time.monotonic() - started
        beside.join(30)
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
        assert elapsed < 5, f"the 431 took {elapsed:.1f}s"
        assert health and health[0][0] == 200 and health[0][1] < 2, health
        # a long but reasonable head still works: a 60 KB header is under the 64 KB bound
        assert client.get("/health", headers={"X-Long": "b" * 60_000}).status_code == 200
        assert proc.poll() is None


def test_partial_and_silent_connections_are_closed_and_requests_keep_being_served(tmp_path: Path) -> None:
    """A slowloris: 150 partial heads (one trickling a byte every 0.3 s) and 150 silent connections."""
    with server(tmp_path, IMGPROXY_READ_REQUEST_TIMEOUT="2") as (base, proc):
        partial = [connect(base, PARTIAL) for _ in range(150)]
        silent = [connect(base) for _ in range(150)]
        trickler = connect(base, PARTIAL)
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(5):
                status, elapsed = timed_get(client, "/health")
                assert status == 200 and elapsed < 2, (status, elapsed)
        stop = time.monotonic() + 6
        closed = False
        while time.monotonic() < stop and not closed:  # trickling never extends the deadline
            try:
                trickler.sendall(b"a")
            except OSError:
                closed = True
            time.sleep(0.3)
        assert closed, "a trickling head was kept past its 2 s deadline"
        for sock in partial + silent:
            assert closed_by_server(sock, within=5), "a partial or silent connection was kept open"
        assert proc.poll() is None


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(tmp_path: Path) -> None:
    with server(tmp_path, IMGPROXY_KEEP_ALIVE_TIMEOUT="1") as (base, _):
        sock = connect(base, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        assert closed_by_server(sock, within=3)  # uvicorn's own timer would wait 5 s
        assert time.monotonic() - started >= 0.9


def test_at_the_connection_cap_idle_connections_make_room_and_descriptors_stay_bounded(tmp_path: Path) -> None:
    with server(tmp_path, IMGPROXY_MAX_CLIENTS="100") as (base, proc):
        before = open_descriptors(proc.pid)
        for i in range(400):
            connect(base, PARTIAL if i % 2 else b"")
        time.sleep(0.5)
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(5):
                status, elapsed = timed_get(client, "/health")
                assert status == 200 and elapsed < 2, (status, elapsed)
        assert open_descriptors(proc.pid) <= before + 100 + 10
        assert proc.poll() is None


def test_at_the_cap_with_every_connection_busy_a_new_one_is_shed_with_503(origin: Origin, tmp_path: Path) -> None:
    origin.delay = 2.0
    env = {"IMGPROXY_MAX_CLIENTS": "2", "IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES": "1"}
    with server(tmp_path, **env) as (base, _):
        time.sleep(0.3)  # the start-up probe's connection has gone
        busy = [
            connect(base, f"GET /insecure/w:{10 + i}/plain/{origin.url('x.jpg')} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
            for i in range(2)
        ]
        time.sleep(0.5)
        shed = connect(base)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            answer = shed.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:80]
        assert b"retry-after: 1" in answer
        assert len(busy) == 2


def test_the_descriptor_limit_is_raised_to_the_hard_limit(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = max(512, len(os.listdir("/proc/self/fd")) + 128)  # room for this process's own sockets
    if hard != resource.RLIM_INFINITY and hard <= lowered:
        pytest.skip("the hard descriptor limit is too low to lower the soft one below it")
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))  # the server inherits this soft limit
    try:
        with server(tmp_path) as (_, proc):
            limits = Path(f"/proc/{proc.pid}/limits").read_text()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    server_soft, server_hard = line.split()[3:5]
    assert server_soft == server_hard, line


def test_keep_alive_timeout_zero_means_one_request_per_connection(tmp_path: Path) -> None:
    with server(tmp_path, IMGPROXY_KEEP_ALIVE_TIMEOUT="0") as (base, _):
        sock = connect(base, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200 ") and b"connection: close" in answer.lower()
        assert closed_by_server(sock, within=3)


# --- 5. clients that hang up --------------------------------------------------------------


def test_a_flood_of_disconnecting_clients_is_logged_as_499_never_as_a_server_error(
    origin: Origin, tmp_path: Path
) -> None:
    """Clients drop mid-download and mid-transform, many on the same few URLs (coalesced), as others join."""
    origin.delay = 0.2
    metrics_port = free_port()
    env = {
        "IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES": "1",
        "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(images_dir()),
        "IMGPROXY_PROMETHEUS_BIND": f"127.0.0.1:{metrics_port}",
    }
    rng = random.Random(16)
    with server(tmp_path, **env) as (base, proc):

        def client(i: int) -> None:
            source = f"local:///{PHOTO}" if i % 2 else origin.url(PHOTO)
            path = f"/insecure/rs:fit:{600 + i % 4}:0/bl:{1 + i % 3}/plain/{source}@png"
            sock = socket.create_connection(address(base), timeout=10)
            try:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
                if i % 10 == 9:  # a few stay for their answer
                    sock.recv(1)
                else:
                    time.sleep(rng.random() * 0.5)
            finally:
                sock.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(120)]
        for thread in threads:
            thread.start()
            time.sleep(0.01)
        for thread in threads:
            thread.join(30)
        with httpx.Client(timeout=30) as http:
            assert http.get(f"{base}/health").status_code == 200
            time.sleep(1.5)  # in-flight work ends and the access log is flushed
            metrics = http.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert proc.poll() is None
    log = (tmp_path / "server.log").read_text()
    lines = [line for line in log.splitlines() if " access: GET /-/" in line]
    assert any(" 499 " in line for line in lines), log[-2000:]
    assert not [line for line in lines if " 500 " in line or "unexpected" in line], log[-4000:]
    assert "Traceback" not in log and "CancelledError" not in log, log[-4000:]
    assert all(" INFO " in line for line in lines if " 499 " in line)  # not a warning, not an error
    assert 'status_codes_total{status="499"}' in metrics
    errors = [line for line in metrics.splitlines() if line.startswith("errors_total{")]
    assert errors == [], errors


def test_a_client_that_hangs_up_stops_its_transform_and_frees_the_worker(tmp_path: Path) -> None:
    """The connection itself tells the request its client has gone (server/scope.py's
    DisconnectWatch, no receive() left pending): libvips is killed and the only worker is free."""
    env = {"IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(images_dir()), "IMGPROXY_WORKERS": "1", "IMGPROXY_TIMEOUT": "60"}
    slow = f"/insecure/sh:10/rs:fit:9000:9000/el:1/plain/local:///{PHOTO}@png"  # uncancelled: 8-30 s of work
    with server(tmp_path, **env) as (base, proc):
        with connect(base, f"GET {slow} HTTP/1.1\r\nHost: h\r\n\r\n".encode()):
            time.sleep(0.5)  # the transform is running
        started = time.monotonic()
        with httpx.Client(timeout=30) as http:
            small = http.get(f"{base}/insecure/rs:fit:50:50/plain/local:///{PHOTO}@jpg")
        waited = time.monotonic() - started
        time.sleep(0.5)  # the access log is flushed
        assert proc.poll() is None
    assert small.status_code == 200
    assert waited < 6, waited  # behind a transform left to finish: 8 s and more
    log = (tmp_path / "server.log").read_text()
    gone = [line for line in log.splitlines() if " access: GET " in line and "/sh:10/" in line]
    assert len(gone) == 1 and " 499 " in gone[0] and "client_closed" in gone[0], log[-2000:]
