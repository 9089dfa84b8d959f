"""A storm for one cold URL across real server processes sharing Redis: one transform."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.cache.redis_server import RedisServer
from tests.support import REPO, Origin, env_for, free_port, size_of


@contextmanager
def server_process(redis_url: str) -> Iterator[str]:
    port = free_port()
    env = env_for(
        IMGPROXY_CACHE_REDIS_URL=redis_url,
        IMGPROXY_CACHE_TIMEOUT="3",  # a loaded machine must not turn Redis calls into fallbacks
        IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES="true",
        IMGPROXY_WORKERS="2",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgproxy_py", "serve", "--bind", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=REPO,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def test_a_cold_storm_over_several_processes_transforms_once(redis_server: RedisServer, origin: Origin) -> None:
    origin.delay = 0.5
    path = f"/_/rs:fill:150:100/plain/{origin.url('2569067123_aca715a2ee_o.jpg')}"
    with server_process(redis_server.url) as a, server_process(redis_server.url) as b:
        async with httpx.AsyncClient(timeout=20) as client:
            responses = await asyncio.gather(*(client.get(base + path) for base in [a, b] * 8))
    assert [r.status_code for r in responses] == [200] * 16
    assert {size_of(r.content) for r in responses} == {(150, 100)}
    assert sorted(r.headers["x-cache"] for r in responses) == ["HIT-COALESCED"] * 15 + ["MISS"]
    assert len(origin.requests) == 1
