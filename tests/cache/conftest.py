from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cache.memcached_server import MemcachedServer, running_memcached
from tests.cache.redis_server import RedisServer, running_redis


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
def memcached_server() -> Iterator[MemcachedServer]:
    with running_memcached() as server:
        yield server
