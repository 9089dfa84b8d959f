"""One cold miss's timeline through the streamed path: when the decode starts, when the download ends.

    .venv/bin/python -m benchmarks.stream_timeline [--rate 50] [--requests 5] [--buffered]

Runs this server in-process (uvicorn on loopback, as ``serve`` does: uvloop) against the
throttled origin's 9.3 MB JPEG and prints, per request, milliseconds from sending it to: the
first source byte, the decoder opening the stream, the last source byte, the download's end,
the encode's start and end, the response; then the process's CPU time for the request and how
long the download waited for the decoder (back-pressure: the decoder was the slower). The
points are recorded by wrapping the functions that reach them (no code in the server for it).
What it showed (benchmarks/RESULTS.md): the decode starts within ms of the first byte and ends
shortly after the last one, and an OS pipe cost a third more CPU than buffering (fixed).
"""

from __future__ import annotations

import argparse
import inspect
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import uvicorn

from benchmarks.systems import free_port
from benchmarks.throttled_origin import photo, throttled_origin
from imgproxy_py.processing import vips
from imgproxy_py.server import streaming
from imgproxy_py.sources import pipe

MB = 1 << 20
marks: dict[str, float] = {}
waits: list[float] = []  # seconds the download waited for the decoder, and how many times
_zero = [0.0]


def _mark(name: str, last: bool = False) -> None:
    now = time.monotonic() - _zero[0]
    if last:
        marks[name] = now
    else:
        marks.setdefault(name, now)


def _around(owner: Any, name: str, before: str | None, after: str | None = None, last: bool = False) -> None:
    """Wrap ``owner.name`` so that calling it marks ``before`` and returning marks ``after``."""
    inner: Callable[..., Any] = getattr(owner, name)
    if inspect.iscoroutinefunction(inner):

        async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
            if before:
                _mark(before)
            result = await inner(*args, **kwargs)
            if after:
                _mark(after, last)
            return result

        setattr(owner, name, wrapped_async)
        return

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if before:
            _mark(before)
        result = inner(*args, **kwargs)
        if after:
            _mark(after, last)
        return result

    setattr(owner, name, wrapped)


def instrument() -> None:
    _around(streaming._Sink, "write", "source first byte", "source last byte", last=True)
    _around(pipe.SourcePipe, "close", "download end")
    close = pipe.SourcePipe.close

    def close_and_count(self: pipe.SourcePipe) -> None:
        if not self._closed:
            waits[:] = [self.blocked(), self.wakeups]
        close(self)

    pipe.SourcePipe.close = close_and_count  # type: ignore[method-assign]
    pipe.SourcePipe.abort = close_and_count
    _around(vips, "open_stream", "decode opens the stream")
    _around(vips, "save", "encode start", "encode end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=50, help="origin rate, MB/s")
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--buffered", action="store_true", help="IMGPROXY_STREAM_SOURCES=false")
    args = parser.parse_args()
    for key in [k for k in os.environ if k.startswith("IMGPROXY_")]:
        del os.environ[key]
    os.environ.update(
        IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES="true",
        IMGPROXY_STREAM_SOURCES="false" if args.buffered else "true",
        IMGPROXY_WORKERS="2",
        IMGPROXY_LOG_LEVEL="warning",
    )
    instrument()
    from imgproxy_py.server.app import create_app
    from imgproxy_py.settings import Settings

    data = photo(6000, 4000).jpegsave_buffer(Q=90)
    port = free_port()
    app = create_app(Settings.from_env())
    config = uvicorn.Config(app, host="127.0.0.1", port=port, loop="uvloop", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        with throttled_origin({"large.jpg": data}, rate=args.rate * MB) as origin, httpx.Client(timeout=60) as client:
            print(f"{len(data) / MB:.1f} MB JPEG at {args.rate:g} MB/s -> 600-px WebP; ms since the request was sent")
            for i in range(args.requests):
                marks.clear()
                waits.clear()
                _zero[0], cpu = time.monotonic(), time.process_time()
                url = f"http://127.0.0.1:{port}/_/rs:fit:600:600/f:webp/plain/{origin.url('large.jpg')}%3Fn={i}"
                response = client.get(url)
                marks["response"] = time.monotonic() - _zero[0]
                if response.status_code != 200:
                    raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
                points = sorted(marks.items(), key=lambda kv: kv[1])
                print(
                    "  ".join(f"{k} {v * 1000:.0f}" for k, v in points)
                    + f"  | CPU {(time.process_time() - cpu) * 1000:.0f}"
                    + (f"  | download waited {waits[0] * 1000:.0f} ms in {waits[1]:.0f} waits" if waits else "")
                )
    finally:
        server.should_exit = True
        thread.join(10)


if __name__ == "__main__":
    main()
