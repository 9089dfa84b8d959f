"""Cold misses of large sources from a throttled origin: decoding while downloading vs buffering first.

    .venv/bin/python -m benchmarks.streaming [--rates 10,50,200] [--requests 5] [--images jpeg,png]

A loopback origin (benchmarks/throttled_origin.py) serves a generated 6000×4000 q90 JPEG
(~10 MB) and a 3000×2000 PNG at each rate (MB/s); fresh servers per cell (so each cell's
peak RSS is its own) get sequential cold misses (a distinct query string on
the source URL each time: no cache, coalescing or intermediate reuse) for a 600-px WebP, to
two servers started side by side, IMGPROXY_STREAM_SOURCES=true and false, the requests
alternating between them (load drift on a shared machine then hits both alike). Prints a markdown table:
p50/p99 latency (with few requests p99 is the slowest one) and each server's peak RSS.
ipx and thumbor are not run here: both buffer the whole source, and wiring their processes to
this origin is the job of benchmarks/run.py, not of this quick comparison.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from benchmarks.loadgen import PeakRSS
from benchmarks.systems import REPO, free_port
from benchmarks.throttled_origin import photo, throttled_origin

MB = 1 << 20


@contextmanager
def server(stream: bool) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGPROXY_")}
    env.update(
        IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES="true",
        IMGPROXY_STREAM_SOURCES="true" if stream else "false",
        IMGPROXY_WORKERS="2",
        IMGPROXY_DOWNLOAD_TIMEOUT="30",
        IMGPROXY_TIMEOUT="60",
        IMGPROXY_LOG_LEVEL="warning",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgproxy_py", "serve", "--bind", f"127.0.0.1:{port}"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("server did not start")
            time.sleep(0.1)
        yield base, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def cells(source_url: str, requests: int) -> dict[bool, tuple[list[float], float]]:
    """Both servers at once, requests alternating between them, so load drift on a shared
    machine hits both the same; returns latencies and peak RSS (MB) per mode."""
    with (
        server(True) as (on_base, on_pid),
        server(False) as (off_base, off_pid),
        PeakRSS(on_pid, interval=0.05) as on_rss,
        PeakRSS(off_pid, interval=0.05) as off_rss,
        httpx.Client(timeout=120) as client,
    ):
        times: dict[bool, list[float]] = {True: [], False: []}
        for i in range(requests):
            for stream, base in ((True, on_base), (False, off_base)) if i % 2 else ((False, off_base), (True, on_base)):
                started = time.monotonic()
                response = client.get(f"{base}/_/rs:fit:600:600/f:webp/plain/{source_url}%3Fn={i}")
                times[stream].append(time.monotonic() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
    return {True: (times[True], on_rss.peak / MB), False: (times[False], off_rss.peak / MB)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="10,50,200", help="origin rates, MB/s")
    parser.add_argument("--requests", type=int, default=5, help="cold misses per cell")
    parser.add_argument("--images", default="jpeg,png")
    args = parser.parse_args()
    files = {}
    if "jpeg" in args.images:
        files["large.jpg"] = photo(6000, 4000).jpegsave_buffer(Q=90)
    if "png" in args.images:
        files["large.png"] = photo(3000, 2000).pngsave_buffer()
    print(
        "| source | MB | rate MB/s | streamed p50 / p99 s | buffered p50 / p99 s | p50 ratio "
        "| peak RSS MB streamed / buffered |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, data in files.items():
        for rate in (float(r) for r in args.rates.split(",")):
            with throttled_origin(files, rate=rate * MB) as origin:
                results = cells(origin.url(name), args.requests)
            (on, on_rss), (off, off_rss) = results[True], results[False]
            p50_on, p50_off = statistics.median(on), statistics.median(off)
            print(
                f"| {name} | {len(data) / MB:.1f} | {rate:g} | {p50_on:.2f} / {max(on):.2f} | "
                f"{p50_off:.2f} / {max(off):.2f} | {p50_on / p50_off:.2f} | {on_rss:.0f} / {off_rss:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
