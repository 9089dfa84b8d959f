"""Cold misses of large sources from a throttled origin: decoding while downloading vs buffering first.

    .venv/bin/python -m benchmarks.streaming [--rates 10,50,200] [--requests 5] [--images jpeg,png]
        [--peers ipx,thumbor]

A loopback origin (benchmarks/throttled_origin.py) serves a generated 6000×4000 q90 JPEG
(~10 MB) and a 3000×2000 PNG at each rate (MB/s); fresh servers per cell (so each cell's
peak RSS is its own) get sequential cold misses for a 600-px WebP (q79, this server's
default): this server twice, IMGPROXY_STREAM_SOURCES=true and false, and each peer (ipx with
its http storage, thumbor with its http loader; both buffer the whole source, installed by
benchmarks/systems.py into benchmarks/.peers/), all started side by side, the requests going
round the systems in a rotating order (load drift on a shared machine then hits all alike).
This server gets a distinct query string on the source URL each time (no cache, coalescing or
intermediate reuse); the peers keep no cache. Prints a markdown table: p50/p99 latency (with
few requests p99 is the slowest one), peak RSS and CPU seconds per request per system (the
one number a loaded machine does not inflate). A peer that cannot be installed
or started is reported and left out (``--peers ""`` leaves both out).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks import systems
from benchmarks.loadgen import PeakRSS, tree_cpu_seconds
from benchmarks.systems import REPO, free_port
from benchmarks.throttled_origin import photo, throttled_origin
from benchmarks.workloads import QUALITY

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


WIDTH = 600


@dataclass(frozen=True, slots=True)
class System:
    name: str
    base: str
    pid: int
    path: Callable[[str, int], str]  # (source URL, request number) -> request path


def _ours(stream: bool) -> Callable[[str, int], str]:
    del stream
    return lambda url, i: f"/_/rs:fit:{WIDTH}:{WIDTH}/f:webp/plain/{url}%3Fn={i}"


def _thumbor_path(url: str, i: int) -> str:
    del i  # thumbor runs with no storage: nothing to bust
    return f"/unsafe/fit-in/{WIDTH}x{WIDTH}/filters:quality({QUALITY['webp']}):format(webp)/{url.split('://', 1)[1]}"


def _ipx_path(url: str, i: int) -> str:
    del i  # ipx keeps no cache
    return f"/s_{WIDTH}x{WIDTH},fit_inside,q_{QUALITY['webp']},f_webp/{url}"


@contextmanager
def peer(name: str, workdir: Path) -> Iterator[System]:
    """ipx or thumbor fetching sources over http from loopback (benchmarks/systems.py installs them)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGPROXY_")}
    if name == "ipx":
        folder = systems.install_ipx()
        env.update(
            IPX_BENCH_DIR=str(workdir),
            IPX_BENCH_PORT=str(port),
            IPX_BENCH_SHARP_OPTIONS=systems.IPX_SHARP_OPTIONS,
            IPX_BENCH_HTTP_DOMAINS="127.0.0.1",
        )
        (workdir / "ready.jpg").write_bytes(photo(32, 32).jpegsave_buffer())  # ipx answers 200 from its folder
        node = shutil.which("node") or "node"
        spec = systems.LaunchSpec([node, str(folder / "server.mjs")], env, "/w_16/ready.jpg", folder)
        path = _ipx_path
    elif name == "thumbor":
        venv = systems.install_thumbor()
        conf = systems.thumbor_config(workdir / "thumbor.conf", workdir, None)
        with conf.open("a") as extra:  # later assignments win: the http loader, generous limits
            extra.write("LOADER = 'thumbor.loaders.http_loader'\nHTTP_LOADER_REQUEST_TIMEOUT = 60\n")
        cmd = [str(venv / "bin" / "thumbor"), "-p", str(port), "-i", "127.0.0.1", "-c", str(conf), "-l", "error"]
        spec = systems.LaunchSpec(cmd, env, "/healthcheck")
        path = _thumbor_path
    else:
        raise ValueError(f"unknown peer {name!r}")
    running = systems.start(spec, name, port, workdir / f"{name}.log", ready_timeout=120)
    try:
        yield System(name, running.base_url, running.proc.pid, path)
    finally:
        systems.stop(running)


@dataclass(frozen=True, slots=True)
class Cell:
    latencies: list[float]
    peak_rss: float  # MB
    cpu: float  # CPU seconds per request (the system's process tree): what load on the machine cannot inflate


def cells(source_url: str, requests: int, peers: list[str], workdir: Path) -> dict[str, Cell]:
    """Every system at once, requests going round them in a rotating order, so load drift on a
    shared machine hits all the same; latencies, peak RSS and CPU per request per system."""
    with contextlib.ExitStack() as stack:
        started: list[System] = []
        for stream in (True, False):
            base, pid = stack.enter_context(server(stream))
            started.append(System("streamed" if stream else "buffered", base, pid, _ours(stream)))
        for name in peers:
            try:
                started.append(stack.enter_context(peer(name, workdir)))
            except systems.StartError as exc:
                print(f"<!-- {name} left out: {exc} -->", flush=True)
        rss = {s.name: stack.enter_context(PeakRSS(s.pid, interval=0.05)) for s in started}
        client = stack.enter_context(httpx.Client(timeout=120))
        times: dict[str, list[float]] = {s.name: [] for s in started}
        cpu = {s.name: tree_cpu_seconds(s.pid) for s in started}
        for i in range(requests):
            order = started[i % len(started) :] + started[: i % len(started)]
            for system in order:
                began = time.monotonic()
                response = client.get(system.base + system.path(source_url, i))
                times[system.name].append(time.monotonic() - began)
                if response.status_code != 200 or not response.content.startswith(b"RIFF"):
                    raise RuntimeError(f"{system.name}: {response.status_code}: {response.text[:200]}")
        cpu = {s.name: tree_cpu_seconds(s.pid) - cpu[s.name] for s in started}
    return {name: Cell(latencies, rss[name].peak / MB, cpu[name] / requests) for name, latencies in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="10,50,200", help="origin rates, MB/s")
    parser.add_argument("--requests", type=int, default=5, help="cold misses per cell")
    parser.add_argument("--images", default="jpeg,png")
    parser.add_argument("--peers", default="ipx,thumbor", help='peers run on the same origin ("" for none)')
    args = parser.parse_args()
    peers = [p for p in args.peers.split(",") if p]
    files = {}
    if "jpeg" in args.images:
        files["large.jpg"] = photo(6000, 4000).jpegsave_buffer(Q=90)
    if "png" in args.images:
        files["large.png"] = photo(3000, 2000).pngsave_buffer()
    columns = ["streamed", "buffered", *peers]
    print(
        "| source | MB | rate MB/s | "
        + " | ".join(f"{c} p50 / p99 s" for c in columns)
        + " | streamed / buffered p50 | peak RSS MB "
        + " / ".join(columns)
        + " | CPU s per request "
        + " / ".join(columns)
        + " |"
    )
    print("|---" * (6 + len(columns)) + "|")
    workdir = systems.PEERS / "streaming-bench"
    workdir.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        for rate in (float(r) for r in args.rates.split(",")):
            with throttled_origin(files, rate=rate * MB) as origin:
                results = cells(origin.url(name), args.requests, peers, workdir)
            p50 = {c: statistics.median(cell.latencies) for c, cell in results.items()}
            latency = " | ".join(
                f"{p50[c]:.2f} / {max(results[c].latencies):.2f}" if c in results else "not run" for c in columns
            )
            peaks = " / ".join(f"{results[c].peak_rss:.0f}" if c in results else "-" for c in columns)
            cpu = " / ".join(f"{results[c].cpu:.2f}" if c in results else "-" for c in columns)
            print(
                f"| {name} | {len(data) / MB:.1f} | {rate:g} | {latency} | "
                f"{p50['streamed'] / p50['buffered']:.2f} | {peaks} | {cpu} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
