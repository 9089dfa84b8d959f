"""What the redis and memcached starters share: launch a server binary on loopback, wait until it answers, kill it."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from tests.support import free_port


@dataclass
class LocalServer:
    port: int
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        raise NotImplementedError

    def _launch(self, argv: list[str], probe: bytes, reply: bytes, name: str) -> None:
        """Start argv, then poll the port with `probe` until the answer starts with `reply` (10 s at most)."""
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(probe)
                    if conn.recv(64).startswith(reply):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{name} did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


ServerT = TypeVar("ServerT", bound=LocalServer)


@contextmanager
def running(kind: type[ServerT]) -> Iterator[ServerT]:
    """A started server of this kind on a free port, stopped on exit."""
    server = kind(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
