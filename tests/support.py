"""Test helpers: fixture paths, a real HTTP origin, image comparison."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import gzip
import hashlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn

import pytest
from starlette.types import ASGIApp

from imgproxy_py.processing import vips

REPO = Path(__file__).resolve().parent.parent
FIXTURES = (REPO / ".." / "shared" / "fixtures").resolve()
IMAGES = FIXTURES / "images"


def fixture_path(name: str) -> Path:
    """Path of a shared fixture image; skips the test (or, at import, the module) saying so if absent."""
    path = IMAGES / name
    if not path.exists():
        _no_fixtures()
    return path


def images_dir() -> Path:
    if not IMAGES.is_dir():
        _no_fixtures()
    return IMAGES


def _no_fixtures() -> NoReturn:
    pytest.skip(
        f"test fixtures not found at {IMAGES} (expected ../shared/fixtures next to the repo)", allow_module_level=True
    )


def missing_prerequisite(message: str) -> NoReturn:
    """A tool the tests need is not installed: skip, saying so; under ``CI=true``, fail.

    CI installs every prerequisite (.ci/run), so there a missing one is a broken set-up,
    and a suite that skips it would pass while proving less than it says.
    """
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true and a prerequisite is missing: {message}", pytrace=False)
    pytest.skip(message)


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on, never one this process has handed out before: a test
    that asks for two (a server and its metrics listener) before either binds would otherwise
    sometimes get the same port twice, and the server then exits at start-up."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


# --- images ------------------------------------------------------------------------------


def load(data: bytes) -> Any:
    """Decode with the server's own loader path (memory source; SVG allowed only this way)."""
    return vips.open_source(data)


def size_of(data: bytes) -> tuple[int, int]:
    img = load(data)
    return img.width, img.height


def loader_of(data: bytes) -> str:
    return str(load(data).get("vips-loader"))


def mean_abs_diff(a: Any, b: Any, size: int = 64) -> float:
    """Mean absolute difference (0..255) of two images scaled to the same small sRGB square."""

    def norm(img: Any) -> Any:
        if img.hasalpha():
            img = img.flatten(background=[255] * (img.bands - 1))
        img = img.colourspace("srgb") if img.bands < 3 else img
        return img.thumbnail_image(size, height=size, size="force").cast("float")

    return float((norm(a) - norm(b)).abs().avg())


# --- a real HTTP origin on a loopback port -----------------------------------------------


@dataclass
class Origin:
    """A threaded HTTP server serving the fixture images, with knobs for failure modes."""

    port: int
    root: Path
    requests: list[str] = field(default_factory=list)
    delay: float = 0.0
    fail_with: int = 0  # answer every request with this status (simulates an outage)
    accept_encodings: list[str] = field(default_factory=list)  # what /gzip/ requests asked for

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"


def _make_handler(origin: Origin) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            origin.requests.append(self.path)
            if origin.delay:
                time.sleep(origin.delay)
            if origin.fail_with:
                self._send(origin.fail_with, b"outage", "text/plain")
                return
            path = self.path.split("?", 1)[0]
            if path.startswith("/status/"):
                code = int(path.split("/")[2])
                self._send(code, b"error body", "text/plain")
                return
            if path.startswith("/goto/"):  # redirect to any URL, base64url-encoded in the path
                target = base64.urlsafe_b64decode(path[len("/goto/") :] + "==").decode()
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if path.startswith("/redirect/"):
                self.send_response(302)
                self.send_header("Location", "/" + path[len("/redirect/") :])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if path.startswith("/endless"):  # a body that never ends (no Content-Length), until the client hangs up
                self._endless()
                return
            if path.startswith("/gzip/"):  # gzip-encoded whatever the request asked for (a hostile origin)
                body = gzip.compress((origin.root / path[len("/gzip/") :]).read_bytes())
                origin.accept_encodings.append(self.headers.get("Accept-Encoding", ""))
                self._send(200, body, "image/jpeg", {"Content-Encoding": "gzip"})
                return
            if path.startswith("/truncate/"):
                data = (origin.root / path[len("/truncate/") :]).read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            if path.startswith("/noetag/"):
                data = (origin.root / path[len("/noetag/") :]).read_bytes()
                self._send(200, data, "application/octet-stream")
                return
            file = origin.root / path.lstrip("/")
            if not file.is_file():
                self._send(404, b"not found", "text/plain")
                return
            data = file.read_bytes()
            etag = '"' + hashlib.md5(data).hexdigest() + '"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            mtime = email.utils.formatdate(file.stat().st_mtime, usegmt=True)
            self._send(200, data, "image/octet-stream", {"ETag": etag, "Last-Modified": mtime})

        def _endless(self, limit: float = 60.0) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            chunk = b"\xff\xd8\xff\xe0" + bytes(256 * 1024 - 4)  # a JPEG's first bytes, then zeros
            self.close_connection = True
            stop = time.monotonic() + limit  # a safety net: the server under test hangs up long before
            try:
                while time.monotonic() < stop:
                    self.wfile.write(chunk)
            except OSError:
                pass

        def _send(self, code: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up early (timeouts under test) are expected, not errors."""


def run_origin(root: Path) -> Iterator[Origin]:
    origin = Origin(port=free_port(), root=root)
    server = _QuietServer(("127.0.0.1", origin.port), _make_handler(origin))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield origin
    finally:
        server.shutdown()
        server.server_close()


def env_for(**overrides: str) -> dict[str, str]:
    """A clean IMGPROXY_* environment (the test process's own variables never leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGPROXY_")}
    env.update(overrides)
    return env


@contextmanager
def serving(
    *args: str, env: dict[str, str], output: IO[str] | None = None, health: str = "/health"
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A real ``imgproxy-py serve`` on a free loopback port, yielded once /health answers.

    Its output goes to ``output`` (a file: a pipe nobody reads would block a chatty server)
    or, by default, to a pipe the test may read with ``communicate()``. Afterwards the whole
    process group is killed if it is still running.
    """
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgproxy_py", "serve", "--bind", f"127.0.0.1:{port}", *args],
        stdout=output if output is not None else subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env_for(**env),
        cwd=REPO,
        start_new_session=True,  # its own process group: a failed test can kill the workers too
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc, health=health)
        yield base, proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)


def _wait_healthy(base: str, proc: subprocess.Popen[str], within: float = 30, health: str = "/health") -> None:
    import httpx

    deadline = time.monotonic() + within
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base}{health}", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):  # it may have exited (and its group with it)
        os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("server did not start: " + (proc.communicate(timeout=30)[0] or "(output in its log file)"))


def http_scope(raw_path: bytes, headers: list[tuple[bytes, bytes]] | None = None, query: bytes = b"") -> dict[str, Any]:
    """A GET scope as uvicorn builds it: ``path`` percent-decoded, ``raw_path`` as sent."""
    from urllib.parse import unquote

    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }


async def asgi_call(app: ASGIApp, path: str, disconnect_after: float | None = None) -> list[dict[str, Any]]:
    """One request straight into the ASGI app; the client disconnects ``disconnect_after`` s after sending it."""
    scope = http_scope(path.encode())
    sent: list[dict[str, Any]] = []
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"", "more_body": False}
        if disconnect_after is None:
            await asyncio.Event().wait()
        await asyncio.sleep(disconnect_after or 0)
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    return sent
