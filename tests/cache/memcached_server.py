"""A real memcached on a free loopback port, started and stopped by the tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.support import free_port, missing_prerequisite


@dataclass
class MemcachedServer:
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"memcached://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("memcached")
        if binary is None:
            missing_prerequisite("memcached is not installed (CI installs it: apt-get install memcached)")
        as_root = ["-u", "nobody"] if os.geteuid() == 0 else []  # memcached refuses to run as root
        # -I 1m is memcached's default item size, stated so the chunking test knows the limit.
        self.proc = subprocess.Popen(
            [binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "64", "-I", "1m", *as_root],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"version\r\n")
                    if conn.recv(64).startswith(b"VERSION"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("memcached did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@contextmanager
def running_memcached() -> Iterator[MemcachedServer]:
    server = MemcachedServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
