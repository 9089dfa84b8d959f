"""A real redis-server on a free loopback port, started and stopped by the tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.cache.local_server import LocalServer, running
from tests.support import missing_prerequisite


@dataclass
class RedisServer(LocalServer):
    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing_prerequisite("redis-server is not installed (apt-get install redis-server; .ci/run does)")
        self._launch(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            b"PING\r\n",
            b"+PONG",
            "redis-server",
        )


@contextmanager
def running_redis() -> Iterator[RedisServer]:
    with running(RedisServer) as server:
        yield server
