"""The floor of a one-process HTTP image server: uvicorn, a raw ASGI app, one thread hop doing the loop's item.

What this server's request layer is measured against on the miss workloads (W1, W1cold):
the same uvicorn flags as ``imgproxy-py serve`` (uvloop, httptools, no access log), and per
request exactly the ceiling's item (``benchmarks/ceiling.py``: read the file, shrink on load,
resize, save) on a pool of threads, without parsing, signing, cache, coalescing, admission,
cancellation, headers or logging. ceiling → floor is the cost of HTTP and of handing work
to a thread; floor → server is the cost of everything this server does on top of that (on
two cores the event loop's Python competes with the workers for the GIL and the cores).

    python -m benchmarks.floor_app --port 8098 --root DIR [--threads 4]

``FLOOR_LOOP_PYTHON_US=N`` in its environment (``benchmarks.run --server-env``, which the floor
also takes) adds N µs of pure-Python work on the event loop per image request: what a
millisecond of the loop's Python costs the workers (benchmarks/RESULTS.md).

Answers this server's W1/W1cold paths (``/<sig>/[cb:…/]rs:fit:<w>:0/q:<q>/plain/local:///<image>@<ext>``)
and ``/health``; anything else is a 404.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.bare_app import serve_like_the_server
from benchmarks.ceiling import item
from benchmarks.workloads import SERVER_SUFFIX, Op

_PATH = re.compile(rb"/rs:fit:(\d+):0/q:(\d+)/plain/local:///([^@?]+)@(jpg|webp|avif)$")
_FORMAT = {SERVER_SUFFIX[fmt].encode(): fmt for fmt in ("jpeg", "webp", "avif")}  # the URL's extension → format
_MIME = {"jpeg": b"image/jpeg", "webp": b"image/webp", "avif": b"image/avif"}


def create_app(root: Path, threads: int) -> Any:
    os.environ.setdefault("VIPS_CONCURRENCY", "1")  # as the server and the ceiling
    import pyvips

    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.cache_set_max_files(0)
    pool = ThreadPoolExecutor(threads, thread_name_prefix="floor")
    loop_python = float(os.environ.get("FLOOR_LOOP_PYTHON_US", "0")) / 1e6

    def busy() -> None:
        end = time.thread_time() + loop_python
        while time.thread_time() < end:
            sum(range(50))

    def work(op: Op) -> bytes:
        return item(pyvips, (root / op.image).read_bytes(), op)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        found = _PATH.search(raw)
        if found is None:
            status, body, mime = (200, b"ok", b"text/plain") if raw == b"/health" else (404, b"", b"text/plain")
        else:
            width, _quality, image, ext = found.groups()
            op = Op(image.decode(), int(width), _FORMAT[ext])  # the quality follows the format, as in the URL
            if loop_python:
                busy()
            body = await asyncio.get_running_loop().run_in_executor(pool, work, op)
            status, mime = 200, _MIME[op.fmt]
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", mime)]})
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    serve_like_the_server(create_app(args.root, args.threads), args.port)


if __name__ == "__main__":
    main()
