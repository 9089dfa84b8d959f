"""The cost of one cache hit inside the ASGI app, without HTTP: this server against the bare endpoint.

W3 measures the same thing over HTTP, where uvicorn's share is the same for both systems;
this isolates what the app itself adds per hit, so a change to the hit path can be judged in
seconds (and profiled: ``--profile``).

    python -m benchmarks.hitpath [--requests 20000] [--profile] [--metrics] [--experiments]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
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


async def _run(app: ASGIApp, requests: int, profile: bool) -> tuple[float, float]:
    """(wall-clock mean, median CPU) µs per hit. The median over batches of 200 hits of this
    thread's CPU time is the steady number for comparing two versions on a loaded machine
    (time other processes take is not counted); the wall-clock mean includes every pause."""
    assert await _one(app, PATH) == 200  # a miss: fills the cache
    for _ in range(200):
        await _one(app, PATH)
    profiler = cProfile.Profile() if profile else None
    batch = 200
    batches: list[float] = []
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    for done in range(0, requests, batch):
        batch_started = time.thread_time()
        count = min(batch, requests - done)
        for _ in range(count):
            await _one(app, PATH)
        batches.append((time.thread_time() - batch_started) / count)
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return elapsed / requests * 1e6, statistics.median(batches) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--metrics", action="store_true", help="count Prometheus metrics (one process)")
    parser.add_argument("--multiprocess-metrics", action="store_true", help="... in multiprocess mode")
    parser.add_argument("--no-access-log", action="store_true")
    parser.add_argument(
        "--experiments", action="store_true", help="with config/experiments.example.json on (the hit is in an arm)"
    )
    args = parser.parse_args()
    os.environ["IMGPROXY_LOCAL_FILESYSTEM_ROOT"] = str(SAMPLE)
    if args.metrics or args.multiprocess_metrics:  # as `imgproxy-py serve` with a metrics listener
        os.environ["IMGPROXY_PROMETHEUS_BIND"] = "127.0.0.1:9"
    if args.multiprocess_metrics:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="hitpath-metrics-")
    if args.experiments:
        os.environ["IMGPROXY_EXPERIMENTS"] = str(REPO / "config" / "experiments.example.json")
    if args.no_access_log:
        os.environ["IMGPROXY_LOG_LEVEL"] = "warning"
    from benchmarks.bare_app import create_app as bare_app
    from imgproxy_py.server.app import create_app

    async def both() -> None:
        server = create_app()
        async with server.router.lifespan_context(server):
            ours, ours_cpu = await _run(server, args.requests, args.profile)
        bare, bare_cpu = await _run(bare_app(b"x" * 12_000), args.requests, False)
        print(
            f"per hit: imgproxy-py {ours:.1f} µs, bare starlette {bare:.1f} µs, ratio {bare / ours:.2f}×; "
            f"CPU (median of batches): imgproxy-py {ours_cpu:.2f} µs, bare {bare_cpu:.2f} µs"
        )

    asyncio.run(both())


if __name__ == "__main__":
    main()
