"""Issue 16's attacks, once, against a real `imgproxy-py serve` with default settings (one-off numbers).

    .venv/bin/python -m benchmarks.wire_abuse [--partial 2000] [--hold 15]

Everything on loopback: an origin streaming an endless body (requested twice, RSS before
and after), a 16 MB header with `/health` timed beside it, ``--partial`` connections that
send half a request head and are held ``--hold`` seconds while normal requests are timed
(with as many silent connections again), the 10¹⁰-element `<use>` SVG rasterised and
passed through, a flood of clients hanging up mid-transform (the access log's statuses),
and `Accept: image/webp;q=0`. Prints one markdown line per attack (the README quotes them).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from benchmarks.loadgen import tree_rss
from benchmarks.systems import REPO, free_port

SAMPLES = REPO / "examples" / "images"
PARTIAL = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


class _Endless(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.end_headers()
        chunk = b"\xff\xd8\xff\xe0" + bytes(256 * 1024 - 4)
        stop = time.monotonic() + 30
        with contextlib.suppress(OSError):
            while time.monotonic() < stop:
                self.wfile.write(chunk)


def use_bomb() -> bytes:
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="100" height="100">'
    ]
    parts.append('<defs><rect id="l0" width="1" height="1" fill="red"/>')
    for level in range(1, 11):
        parts.append(f'<g id="l{level}">' + f'<use xlink:href="#l{level - 1}"/>' * 10 + "</g>")
    parts.append('</defs><use href="#l10"/></svg>')
    return "".join(parts).encode()


@contextlib.contextmanager
def serve(root: Path, log: Path, **extra: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGPROXY_")}
    env.update(IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(root), IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES="1", **extra)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "imgproxy_py", "serve", "--bind", f"127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                time.sleep(0.1)
            yield base, proc.pid
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def timed(client: httpx.Client, path: str, **kwargs: Any) -> tuple[int, float]:
    started = time.monotonic()
    status = client.get(path, **kwargs).status_code
    return status, time.monotonic() - started


def endless(client: httpx.Client, pid: int, origin: str) -> str:
    before = tree_rss(pid) // 2**20
    answers = [timed(client, f"/insecure/w:10/plain/{origin}/endless.jpg") for _ in range(2)]
    time.sleep(3)
    after = tree_rss(pid) // 2**20
    shown = ", ".join(f"{s} in {t:.2f} s" for s, t in answers)
    return f"endless source twice: {shown}; RSS {before} MB before, {after} MB 3 s after"


def giant_header(base: str, client: httpx.Client) -> str:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    health: list[tuple[int, float]] = []
    beside = threading.Thread(target=lambda: health.append(timed(client, "/health")))
    started = time.monotonic()
    answer = b""
    with contextlib.suppress(OSError):
        sock.sendall(PARTIAL + b"a" * (16 * 2**20) + b"\r\n\r\n")
        beside.start()
        answer = sock.recv(64)
    elapsed = time.monotonic() - started
    beside.join()
    sock.close()
    status = answer.split(b" ")[1].decode() if answer.startswith(b"HTTP/") else "reset"
    return (
        f"16 MB header: {status} in {elapsed:.2f} s; /health beside it {health[0][0]} in {health[0][1] * 1000:.0f} ms"
    )


def slowloris(base: str, client: httpx.Client, pid: int, count: int, hold: float) -> str:
    host, port = base.removeprefix("http://").split(":")
    socks = []
    for i in range(count * 2):
        with contextlib.suppress(OSError):
            sock = socket.create_connection((host, int(port)), timeout=30)
            if i % 2 == 0:
                sock.sendall(PARTIAL)
            socks.append(sock)
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    times: list[float] = []
    statuses: Counter[int] = Counter()
    stop = time.monotonic() + hold
    while time.monotonic() < stop:
        status, elapsed = timed(client, "/insecure/rs:fit:300:200/plain/local:///flowers.jpeg@webp")
        statuses[status] += 1
        times.append(elapsed)
        time.sleep(0.2)
    closed = 0
    for sock in socks:
        sock.settimeout(0.01)
        try:
            closed += sock.recv(1) == b""
        except TimeoutError:
            pass
        except OSError:
            closed += 1
        sock.close()
    times.sort()
    return (
        f"{count} partial + {count} silent connections held {hold:.0f} s: {len(socks)} opened, server fds {fds}; "
        f"normal requests {dict(statuses)}, median {times[len(times) // 2] * 1000:.0f} ms, "
        f"max {times[-1] * 1000:.0f} ms; {closed} closed by the server by the end"
    )


def svg(client: httpx.Client) -> str:
    raster = timed(client, "/insecure/rs:fit:100:100/plain/local:///use-bomb.svg@png")
    passed = timed(client, "/insecure/plain/local:///use-bomb.svg")
    return (
        f"<use> bomb (2.6 KB, 10^10 elements): rasterised {raster[0]} in {raster[1] * 1000:.0f} ms, "
        f"passed through {passed[0]} in {passed[1] * 1000:.0f} ms"
    )


def flood(base: str, log: Path) -> str:
    host, port = base.removeprefix("http://").split(":")

    def one(i: int) -> None:
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            path = f"/insecure/rs:fit:{900 + i % 5}:0/bl:{1 + i % 3}/plain/local:///Landscape_6.jpg@png"
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
            time.sleep((i % 10) / 20)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
    for thread in threads:
        thread.start()
        time.sleep(0.005)
    for thread in threads:
        thread.join()
    time.sleep(3)
    lines = log.read_text().splitlines()
    statuses = Counter(line.split()[6] for line in lines if " access: GET " in line and "Landscape_6.jpg@png" in line)
    tracebacks = log.read_text().count("Traceback")
    return f"200 clients hanging up mid-transform: access-log statuses {dict(statuses)}, tracebacks {tracebacks}"


def negotiation(client: httpx.Client) -> str:
    path = "/insecure/rs:fit:100:100/plain/local:///flowers.jpeg"
    plain = client.get(path, headers={"Accept": "image/webp,*/*"}).headers["content-type"]
    refused = client.get(path, headers={"Accept": "image/webp;q=0,*/*"}).headers["content-type"]
    return f"Accept image/webp → {plain}; image/webp;q=0 → {refused} (IMGPROXY_AUTO_WEBP=true)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partial", type=int, default=2000)
    parser.add_argument("--hold", type=float, default=15)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    origin = ThreadingHTTPServer(("127.0.0.1", free_port()), _Endless)
    origin.daemon_threads = True
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    origin_url = f"http://127.0.0.1:{origin.server_address[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for sample in SAMPLES.iterdir():
            if sample.is_file():
                (root / sample.name).write_bytes(sample.read_bytes())
        (root / "use-bomb.svg").write_bytes(use_bomb())
        log = root / "server.log"
        with serve(root, log) as (base, pid), httpx.Client(base_url=base, timeout=60) as client:
            print("-", endless(client, pid, origin_url), flush=True)
            print("-", giant_header(base, client), flush=True)
            print("-", slowloris(base, client, pid, args.partial, args.hold), flush=True)
            print("-", svg(client), flush=True)
            print("-", flood(base, log), flush=True)
        with (
            serve(root, root / "server2.log", IMGPROXY_AUTO_WEBP="true") as (base, _),
            httpx.Client(base_url=base, timeout=60) as client,
        ):
            print("-", negotiation(client), flush=True)
    origin.shutdown()
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


if __name__ == "__main__":
    main()
