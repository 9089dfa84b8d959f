"""L2 on a real memcached (through aiocache): raw bytes, TTLs, entries over the item size,
purges, sharing between instances, a dead memcached; and the aiocache lock's reach."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from imgproxy_py import keys
from imgproxy_py.cache.base import CacheEntry
from imgproxy_py.cache.memcached import MemcachedTier
from imgproxy_py.errors import SettingsError
from imgproxy_py.settings import Settings
from tests.cache.memcached_server import MemcachedServer
from tests.cache.test_server_cache import PHOTO
from tests.conftest import app_with_service
from tests.support import REPO, Origin, size_of


def entry(data: bytes, fresh: float = 60) -> CacheEntry:
    now = time.time()
    return CacheEntry(data, "png", '"e"', "Mon, 01 Jan 2024 00:00:00 GMT", now, now + fresh)


def key_for(source: str, n: int = 0) -> str:
    return f"{keys.source_tag(source)}.{n:040x}"


def test_memcached_url_is_validated() -> None:
    assert Settings.from_env({"IMGPROXY_CACHE_MEMCACHED_URL": "memcached://mc:11211"}).cache.enabled
    for bad in ("redis://x:1", "memcached://", "memcached://h:notaport"):
        with pytest.raises(SettingsError, match="IMGPROXY_CACHE_MEMCACHED_URL"):
            Settings.from_env({"IMGPROXY_CACHE_MEMCACHED_URL": bad})
    with pytest.raises(SettingsError, match="not both"):
        Settings.from_env({"IMGPROXY_CACHE_MEMCACHED_URL": "memcached://a", "IMGPROXY_CACHE_REDIS_URL": "redis://b"})


async def test_raw_bytes_ttl_and_values_over_the_item_size(memcached_server: MemcachedServer) -> None:
    tier = MemcachedTier(memcached_server.url)
    try:
        small = entry(bytes(range(256)) * 40)
        await tier.set(key_for("a"), small, ttl=60)
        assert await tier.get(key_for("a")) == small
        assert await tier.get(key_for("missing")) is None

        # 3 MB of incompressible bytes: three times memcached's 1 MB item limit.
        big = entry(bytes(range(251)) * 12_000)
        assert len(big.to_bytes()) > 3 * 1024 * 1024 - 200_000
        await tier.set(key_for("big"), big, ttl=60)
        assert await tier.get(key_for("big")) == big
        # Rewritten with other bytes: readers see the new write whole, never a mix.
        big2 = entry(bytes(reversed(range(251))) * 12_000)
        await tier.set(key_for("big"), big2, ttl=60)
        assert await tier.get(key_for("big")) == big2

        await tier.set(key_for("short"), small, ttl=1)
        assert await tier.get(key_for("short")) is not None
        await asyncio.sleep(2.1)  # memcached's TTL granularity is a second
        assert await tier.get(key_for("short")) is None
        assert await tier.ping()
    finally:
        await tier.aclose()


async def test_a_lost_chunk_reads_as_a_miss(memcached_server: MemcachedServer) -> None:
    tier = MemcachedTier(memcached_server.url, chunk_size=1000)
    try:
        key = key_for("chunky")
        await tier.set(key, entry(b"z" * 5000), ttl=60)
        assert await tier.get(key) is not None
        manifest = await tier._cache.get(f"r:{key}")
        gen = manifest[1:].decode().split('"g":"')[1].split('"')[0]
        await tier._cache.delete(f"c:{key}:{gen}:2")
        assert await tier.get(key) is None
    finally:
        await tier.aclose()


async def test_purge_drops_every_variant_of_one_source(memcached_server: MemcachedServer) -> None:
    tier = MemcachedTier(memcached_server.url)
    try:
        for n in range(3):
            await tier.set(key_for("http://o/a.jpg", n), entry(b"a%d" % n), ttl=60)
        await tier.set(key_for("http://o/b.jpg"), entry(b"b"), ttl=60)
        assert await tier.purge(keys.source_tag("http://o/a.jpg")) == 3
        assert [await tier.get(key_for("http://o/a.jpg", n)) for n in range(3)] == [None] * 3
        assert await tier.get(key_for("http://o/b.jpg")) is not None
        assert await tier.purge(keys.source_tag("http://o/a.jpg")) == 0
    finally:
        await tier.aclose()


async def test_memcached_l2_is_shared_and_its_outage_costs_no_request(
    memcached_server: MemcachedServer, origin: Origin
) -> None:
    env = {"IMGPROXY_CACHE_MEMCACHED_URL": memcached_server.url, "IMGPROXY_CACHE_TIMEOUT": "1"}
    url = f"/_/rs:fit:70:70/plain/{origin.url(PHOTO)}"
    async with app_with_service(**env) as (a, service_a):
        assert (await a.get(url)).headers["x-cache"] == "MISS"
        assert service_a.flow.cache is not None
        await service_a.flow.cache.flush()
    async with app_with_service(**env) as (b, service_b):
        hit = await b.get(url)
        assert hit.headers["x-cache"] == "HIT-L2" and size_of(hit.content) == (70, 57)
        assert service_b.images.transforms == 0
        memcached_server.stop()
        other = await b.get(f"/_/rs:fit:60:60/plain/{origin.url(PHOTO)}")
        assert other.status_code == 200 and other.headers["x-cache"] == "MISS"


_HOLDER = """
import asyncio, sys
from aiocache import Cache
from aiocache.lock import RedLock
from aiocache.serializers import NullSerializer

async def main():
    cache = Cache(Cache.MEMCACHED, endpoint="127.0.0.1", port=int(sys.argv[1]), serializer=NullSerializer())
    async with RedLock(cache, "work", lease=20):
        print("held", flush=True)
        await asyncio.sleep(5)

asyncio.run(main())
"""


async def test_aiocache_redlock_does_not_make_another_process_wait(memcached_server: MemcachedServer) -> None:
    """Why the coalescing lock is not aiocache's: a RedLock held in one process does not hold
    back a waiter in another (its wake-up event lives in a process-local dict; the waiter
    finds none and goes on at once, without the lock), and on memcached the waiter's release
    deletes the holder's lock."""
    from aiocache import Cache
    from aiocache.lock import RedLock
    from aiocache.serializers import NullSerializer

    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(memcached_server.port)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        cache = Cache(Cache.MEMCACHED, endpoint="127.0.0.1", port=memcached_server.port, serializer=NullSerializer())
        try:
            assert await cache.exists("work-lock")  # the lock really is held, in memcached
            started = time.monotonic()
            with pytest.raises(KeyError):  # aiocache 0.12.3: leaving pops an event this process never had
                async with RedLock(cache, "work", lease=20):
                    waited = time.monotonic() - started
            assert waited < 2  # a lock that coordinated would have kept us ~5 s (or up to the 20 s lease)
            assert holder.poll() is None  # ...while the holder was still inside its critical section
            assert not await cache.exists("work-lock")  # and leaving deleted the holder's lock (no owner check)
        finally:
            await cache.close()
    finally:
        holder.kill()
        holder.communicate(timeout=10)
