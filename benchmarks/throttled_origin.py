"""A loopback HTTP origin that serves in-memory files at a limited rate (streaming benchmark and tests).

Each response is sent in 64 KiB writes paced to ``rate`` bytes/s; the origin records, per
request, how many bytes it sent and whether the client hung up before the end. ``lie``
variants: ``/long/<name>`` declares 1000 bytes more than it sends, then closes;
``/endless/<name>`` sends the file and then zeros forever (no Content-Length).
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

CHUNK = 64 * 1024


@dataclass
class Served:
    path: str
    sent: int = 0
    total: int | None = None
    hung_up: bool = False  # the client closed the connection before the body ended
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class ThrottledOrigin:
    port: int
    files: dict[str, bytes]
    rate: float  # bytes per second; 0: unlimited
    served: list[Served] = field(default_factory=list)
    etag: bool = True

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


def _handler(origin: ThrottledOrigin) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_HEAD(self) -> None:
            """The headers a GET would send (ipx asks for them before the body)."""
            name = self.path.split("?", 1)[0].rpartition("/")[2]
            data = origin.files.get(name)
            self.send_response(200 if data is not None else 404)
            self.send_header("Content-Type", "application/octet-stream")
            if data is not None and origin.etag:
                self.send_header("ETag", f'"{name}-{len(data)}"')
            self.send_header("Content-Length", str(len(data) if data is not None else 0))
            self.end_headers()

        def do_GET(self) -> None:
            record = Served(self.path)
            origin.served.append(record)
            try:
                self._serve(record)
            except OSError:  # BrokenPipe / ConnectionReset: the client went away
                record.hung_up = True
                self.close_connection = True
            finally:
                record.done.set()

        def _serve(self, record: Served) -> None:
            kind, _, name = self.path.split("?", 1)[0].lstrip("/").rpartition("/")  # a query busts caches only
            data = origin.files.get(name)
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if origin.etag:
                self.send_header("ETag", f'"{name}-{len(data)}"')
            if kind == "endless":
                self.close_connection = True
            elif kind == "long":
                self.send_header("Content-Length", str(len(data) + 1000))
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            record.total = len(data)
            self._send(record, data)
            if kind == "endless":
                zeros = bytes(CHUNK)
                stop = time.monotonic() + 60  # a safety net: the server under test hangs up long before
                while time.monotonic() < stop:
                    self._send(record, zeros)

        def _send(self, record: Served, data: bytes) -> None:
            started = time.monotonic()
            first = record.sent
            view = memoryview(data)
            for offset in range(0, len(view), CHUNK):
                self.wfile.write(view[offset : offset + CHUNK])
                record.sent += min(CHUNK, len(view) - offset)
                if origin.rate:
                    ahead = (record.sent - first) / origin.rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
            self.wfile.flush()

    return Handler


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up early are what the tests provoke, not errors."""


@contextmanager
def throttled_origin(files: dict[str, bytes], rate: float) -> Iterator[ThrottledOrigin]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    origin = ThrottledOrigin(port=port, files=files, rate=rate)
    server = _Server(("127.0.0.1", port), _handler(origin))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield origin
    finally:
        server.shutdown()
        server.server_close()


def photo(width: int = 6000, height: int = 4000) -> Any:
    """A photo-like test image (gradients plus grain): compresses like a camera JPEG, not like noise."""
    import pyvips  # benchmark tooling only; the server's pyvips use stays in processing/vips.py

    xyz = pyvips.Image.xyz(width, height)
    red = xyz[0] * (255 / width)
    green = xyz[1] * (255 / height)
    grain = pyvips.Image.gaussnoise(width, height, sigma=12, mean=0)
    bands = [red + grain, green + grain, (red + green) / 2 + grain]
    return bands[0].bandjoin(bands[1:]).cast("uchar").copy(interpretation="srgb")
