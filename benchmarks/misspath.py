"""The event loop's own Python work per cold miss (W1cold's requests), in-process, without HTTP.

On a 2-core machine W1cold is bounded by the GIL: every microsecond the event loop spends on a
request (parse, key, source read, sniff, scan walk, headers, logging) is taken from the libvips
workers. This runs W1cold-like requests (byte-distinct copies of the photo, a cachebuster,
different widths) through the ASGI app and reports the event-loop thread's CPU per request;
``--profile`` shows where it goes (cProfile sees only the event-loop thread: the workers'
libvips time is not in it).

    python -m benchmarks.misspath [--requests 200] [--profile] >/dev/null  (stdout: the access log)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.hitpath import _one
from benchmarks.workloads import PHOTO, W1_WIDTHS

SHARED = Path(
    os.environ.get(
        "IMGPROXY_PY_FIXTURES", Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "images"
    )
)
COPIES = 64


def _copies(root: Path) -> None:
    photo = (SHARED / PHOTO).read_bytes()
    for i in range(COPIES):
        comment = f"imgproxy-py benchmark copy {i:03d}".encode()
        segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
        (root / f"photo-{i:03d}.jpg").write_bytes(photo[:2] + segment + photo[2:])


def _path(i: int) -> bytes:
    width = W1_WIDTHS[i % len(W1_WIDTHS)]
    return f"/insecure/cb:{i}/rs:fit:{width}:0/q:80/plain/local:///photo-{i % COPIES:03d}.jpg@jpg".encode()


async def _run(requests: int, profile: bool, concurrency: int) -> None:
    from imgproxy_py.server.app import create_app

    app = create_app()
    async with app.router.lifespan_context(app):
        for i in range(4):  # warm up: imports, first decoder use
            assert await _one(app, _path(10_000 + i)) == 200
        profiler = cProfile.Profile(time.thread_time) if profile else None  # CPU, not GIL waits
        queue = iter(range(requests))

        async def client() -> None:
            for i in queue:
                assert await _one(app, _path(i)) == 200

        cpu, wall = time.thread_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        if profiler:
            profiler.disable()
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    if profiler:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats(os.environ.get("MISSPATH_SORT", "tottime")).print_stats(40)
    print(
        f"{requests} cold misses: event-loop CPU {cpu / requests * 1e6:.0f} µs per request, "
        f"{requests / wall:.1f} requests/s",
        file=sys.stderr,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="misspath-"))
    _copies(root)
    os.environ["IMGPROXY_LOCAL_FILESYSTEM_ROOT"] = str(root)
    os.environ["IMGPROXY_INTERMEDIATE_CACHE_SIZE"] = "0"  # W1cold: no reuse between requests
    asyncio.run(_run(args.requests, args.profile, args.concurrency))


if __name__ == "__main__":
    main()
