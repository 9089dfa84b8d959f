"""A real memcached on a free loopback port, started and stopped by the tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.cache.local_server import LocalServer, running
from tests.support import missing_prerequisite


@dataclass
class MemcachedServer(LocalServer):
    @property
    def url(self) -> str:
        return f"memcached://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("memcached")
        if binary is None:
            missing_prerequisite("memcached is not installed (CI installs it: apt-get install memcached)")
        as_root = ["-u", "nobody"] if os.geteuid() == 0 else []  # memcached refuses to run as root
        # -I 1m is memcached's default item size, stated so the chunking test knows the limit.
        self._launch(
            [binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "64", "-I", "1m", *as_root],
            b"version\r\n",
            b"VERSION",
            "memcached",
        )


@contextmanager
def running_memcached() -> Iterator[MemcachedServer]:
    with running(MemcachedServer) as server:
        yield server
