"""Memory soak: many requests of mixed sizes and formats; does the server's RSS stay flat?

    .venv/bin/python -m benchmarks.soak [--requests 10000] [--concurrency 8] [--processes 1]

Starts `imgproxy-py serve` on the fixture images with small caches (so they are full early
and growth after that would be a leak, not filling), sends requests that are mostly cache
misses (distinct widths, formats, sources and options), and samples the RSS of the whole
server process tree. Prints RSS after each tenth of the run and the growth over the second
half, which is the number that must stay near zero.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time

import httpx

from benchmarks import progress
from benchmarks.loadgen import tree_rss
from benchmarks.systems import REPO, free_port

FIXTURES = (REPO / ".." / "shared" / "fixtures" / "images").resolve()
SOURCES = [
    "2569067123_aca715a2ee_o.jpg",
    "flowers.jpeg",
    "Channel_digital_image_CMYK_color.jpg",
    "with-alpha.png",
    "embedgravitybird.png",
    "4.webp",
    "rotating-squares.gif",
    "sdr_cosmos12920_cicp1-13-6_yuv444_full_qp10.avif",
    "Landscape_6.jpg",
    "check.svg",
]
FORMATS = ["jpg", "webp", "png", "avif", ""]


def request_path(rng: random.Random) -> str:
    source = rng.choice(SOURCES)
    width = rng.randint(16, 1200)
    ops = [f"rs:{rng.choice(['fit', 'fill', 'fill-down', 'force'])}:{width}:{rng.randint(0, 900)}"]
    if rng.random() < 0.3:
        ops.append(f"bl:{rng.choice([1, 2.5])}")
    if rng.random() < 0.2:
        ops.append(f"rot:{rng.choice([90, 180, 270])}")
    if rng.random() < 0.2:
        ops.append(f"q:{rng.randint(30, 95)}")
    fmt = rng.choice(FORMATS)
    return f"/_/{'/'.join(ops)}/plain/local:///{source}" + (f"@{fmt}" if fmt else "")


async def drive(base: str, count: int, concurrency: int, pid: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    paths = [request_path(rng) for _ in range(count)]
    samples: list[tuple[int, int]] = []
    statuses: dict[int, int] = {}
    done = 0
    queue: asyncio.Queue[str] = asyncio.Queue()
    for path in paths:
        queue.put_nowait(path)
    step = max(1, count // 10)

    bar = progress.bar(count, "soak", unit="req")

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while not queue.empty():
            path = queue.get_nowait()
            response = await client.get(base + path)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            done += 1
            bar.update(1)
            if done % step == 0:
                samples.append((done, tree_rss(pid)))
                bar.set_postfix(rss_mb=round(samples[-1][1] / 2**20, 1), refresh=False)

    started = time.monotonic()
    with bar:
        async with httpx.AsyncClient(timeout=60) as client:
            await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    half = [rss for n, rss in samples if n >= count // 2]
    return {
        "requests": count,
        "seconds": round(elapsed, 1),
        "statuses": statuses,
        "rss_mb": [(n, round(rss / 2**20, 1)) for n, rss in samples],
        "growth_second_half_mb": round((max(half) - min(half)) / 2**20, 1) if half else None,
        "peak_mb": round(max(rss for _, rss in samples) / 2**20, 1) if samples else None,
    }


def soak(requests: int, concurrency: int = 8, processes: int = 1, seed: int = 7, **env: str) -> dict[str, object]:
    """Run a server, drive it, stop it; return the numbers (also used by the test suite)."""
    port = free_port()
    server_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("IMGPROXY_")},
        "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(FIXTURES),
        "IMGPROXY_CACHE_MEMORY_SIZE": "32",
        "IMGPROXY_INTERMEDIATE_CACHE_SIZE": "32",
        "IMGPROXY_LOG_LEVEL": "warn",
        "IMGPROXY_MAX_SRC_RESOLUTION": "60",
        **env,
    }
    cmd = [sys.executable, "-m", "imgproxy_py", "serve", "--bind", f"127.0.0.1:{port}", "--processes", str(processes)]
    proc = subprocess.Popen(
        cmd, env=server_env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        return asyncio.run(drive(base, requests, concurrency, proc.pid, seed))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--env", action="append", default=[], metavar="K=V", help="extra server settings")
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env)
    result = soak(args.requests, args.concurrency, args.processes, args.seed, **env)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
