"""The cost of one cache hit inside the ASGI app, without HTTP: this server against the bare endpoint.

W3 measures the same thing over HTTP, where uvicorn's share is the same for both systems;
this isolates what the app itself adds per hit, so a change to the hit path can be judged in
seconds (and profiled: ``--profile``).

    python -m benchmarks.hitpath [--requests 20000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "images"
PATH = b"/insecure/rs:fit:272:0/q:80/plain/local:///flowers.jpeg@jpg"


def _scope(path: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path.decode(),
        "raw_path": path,
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8080"), (b"accept", b"*/*"), (b"user-agent", b"wrk")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8080),
    }


async def _one(app: ASGIApp, path: bytes) -> int:
    status = 0
    sent_body = False

    async def receive() -> Message:
        nonlocal sent_body
        if sent_body:  # like a server: nothing more until the client goes away
            await asyncio.Event().wait()
        sent_body = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope(path), receive, send)
    return status


async def _run(app: ASGIApp, requests: int, profile: bool) -> float:
    assert await _one(app, PATH) == 200  # a miss: fills the cache
    for _ in range(200):
        await _one(app, PATH)
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    for _ in range(requests):
        await _one(app, PATH)
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return elapsed / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--metrics", action="store_true", help="count Prometheus metrics (one process)")
    parser.add_argument("--multiprocess-metrics", action="store_true", help="... in multiprocess mode")
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args()
    os.environ["IMGPROXY_LOCAL_FILESYSTEM_ROOT"] = str(SAMPLE)
    if args.metrics or args.multiprocess_metrics:  # as `imgproxy-py serve` with a metrics listener
        os.environ["IMGPROXY_PROMETHEUS_BIND"] = "127.0.0.1:9"
    if args.multiprocess_metrics:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="hitpath-metrics-")
    if args.no_access_log:
        os.environ["IMGPROXY_LOG_LEVEL"] = "warning"
    from benchmarks.bare_app import create_app as bare_app
    from imgproxy_py.server.app import create_app

    async def both() -> None:
        server = create_app()
        async with server.router.lifespan_context(server):
            ours = await _run(server, args.requests, args.profile)
        bare = await _run(bare_app(b"x" * 12_000), args.requests, False)
        print(f"per hit: imgproxy-py {ours:.1f} µs, bare starlette {bare:.1f} µs, ratio {bare / ours:.2f}×")

    asyncio.run(both())


if __name__ == "__main__":
    main()
