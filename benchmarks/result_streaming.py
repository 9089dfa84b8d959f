"""Large results sent while they are encoded vs after: time to first byte and to the last one.

    .venv/bin/python -m benchmarks.result_streaming [--requests 5]

Two servers side by side (IMGPROXY_STREAM_RESULTS=true and false; sources read whole, no
intermediate reuse) get the same cold misses of a generated 6000×4000 JPEG on a local root,
alternating: a 4000-px PNG (streamed), a 4000-px JPEG and a 600-px PNG (buffered in both: the
comparison shows they are unaffected). Prints a markdown table of p50s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from benchmarks import systems
from benchmarks.throttled_origin import photo

CASES = {
    "4000-px PNG": "rs:fit:4000:4000/f:png",
    "4000-px JPEG": "rs:fit:4000:4000/f:jpg",
    "600-px PNG": "rs:fit:600:600/f:png",
}


def _timed(client: httpx.Client, url: str) -> tuple[float, float, int, bool]:
    started = time.monotonic()
    first = None
    size = 0
    with client.stream("GET", url) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code} for {url}")
        chunked = response.headers.get("transfer-encoding") == "chunked"
        for chunk in response.iter_raw():
            if first is None:
                first = time.monotonic() - started
            size += len(chunk)
    return first or 0.0, time.monotonic() - started, size, chunked


@contextlib.contextmanager
def _server(env: dict[str, str], log: Path) -> Iterator[str]:
    port = systems.free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("IMGPROXY_")} | env
    cmd = [sys.executable, "-m", "imgproxy_py", "serve", "--bind", f"127.0.0.1:{port}"]
    running = systems.start(systems.LaunchSpec(cmd, environ, "/health", systems.REPO), "server", port, log)
    try:
        yield running.base_url
    finally:
        systems.stop(running)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        root = Path(folder)
        (root / "photo.jpg").write_bytes(photo(6000, 4000).jpegsave_buffer(Q=90))
        bases = {}
        for stream in (True, False):
            env = {
                "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(root),
                "IMGPROXY_STREAM_RESULTS": "true" if stream else "false",
                "IMGPROXY_STREAM_LOCAL_MIN_SIZE": str(1 << 30),
                "IMGPROXY_INTERMEDIATE_CACHE_SIZE": "0",
                "IMGPROXY_TIMEOUT": "60",
            }
            bases[stream] = stack.enter_context(_server(env, root / f"server-{stream}.log"))
        client = stack.enter_context(httpx.Client(timeout=120))
        print("| result | size MB | streamed: first byte / last byte s (p50) | buffered: first / last s (p50) |")
        print("|---|---|---|---|")
        for name, options in CASES.items():
            samples: dict[bool, list[tuple[float, float, int, bool]]] = {True: [], False: []}
            for i in range(args.requests):
                for stream in (True, False) if i % 2 else (False, True):
                    url = f"{bases[stream]}/_/cb:{i}/{options}/plain/local:///photo.jpg"
                    samples[stream].append(_timed(client, url))
            cells = []
            for stream in (True, False):
                firsts = [s[0] for s in samples[stream]]
                lasts = [s[1] for s in samples[stream]]
                mark = " (chunked)" if all(s[3] for s in samples[stream]) else ""
                cells.append(f"{statistics.median(firsts):.2f} / {statistics.median(lasts):.2f}{mark}")
            size = samples[True][0][2] / (1 << 20)
            print(f"| {name} | {size:.1f} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
