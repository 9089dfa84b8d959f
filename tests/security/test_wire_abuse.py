"""What an attacker on the wire can do to a real ``imgproxy-py serve`` on loopback (issue 16).

Every test starts its own server process and talks to it over real sockets; counts are
modest and every wait is bounded, so the suite stays quick. The heavier one-off numbers
(thousands of connections, 16 MB headers) are in the README's operations section.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from imgproxy_py.allocator import jemalloc_path
from tests.security.rss import process_rss_mb
from tests.support import Origin, serving

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


@pytest.mark.parametrize("malloc", ["jemalloc", "glibc"])
def test_an_endless_source_is_cut_at_the_default_cap_and_its_memory_returns(
    origin: Origin, tmp_path: Path, malloc: str
) -> None:
    if malloc == "jemalloc" and jemalloc_path() is None:
        pytest.skip("libjemalloc2 is not installed")
    env = {"IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES": "1", "IMGPROXY_MALLOC": malloc}
    with server(tmp_path, **env) as (base, proc), httpx.Client(base_url=base, timeout=30) as client:
        assert client.get("/health").status_code == 200
        baseline = process_rss_mb(proc.pid)
        if baseline is None:
            pytest.skip("no /proc/<pid>/status here")
        for _ in range(2):
            response = client.get(f"/insecure/w:10/plain/{origin.url('endless')}")
            # Cut at the cap (64 MiB), not at the 5 s download timeout (504) after gigabytes.
            assert response.status_code == 422, response.text
            assert response.text == "Invalid source image"
        rss = settled_rss_mb(proc.pid, baseline + RSS_SLACK_MB)
        assert rss <= baseline + RSS_SLACK_MB, f"RSS {baseline} MB before, {rss} MB after two endless sources"
        assert proc.poll() is None


def test_an_uncapped_download_that_times_out_gives_its_memory_back(origin: Origin, tmp_path: Path) -> None:
    """``IMGPROXY_MAX_SRC_FILE_SIZE=0`` (set explicitly: no cap): the partial body is freed with the failure."""
    env = {
        "IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES": "1",
        "IMGPROXY_MAX_SRC_FILE_SIZE": "0",
        "IMGPROXY_DOWNLOAD_TIMEOUT": "0.5",
    }
    with server(tmp_path, **env) as (base, proc), httpx.Client(base_url=base, timeout=30) as client:
        assert client.get("/health").status_code == 200
        baseline = process_rss_mb(proc.pid)
        if baseline is None:
            pytest.skip("no /proc/<pid>/status here")
        for _ in range(2):
            response = client.get(f"/insecure/w:10/plain/{origin.url('endless')}")
            assert response.status_code == 504, response.text
        rss = settled_rss_mb(proc.pid, baseline + RSS_SLACK_MB)
        assert rss <= baseline + RSS_SLACK_MB, f"RSS {baseline} MB before, {rss} MB after two endless sources"
