"""Tiers against a real Redis: storage, promotion, and isolation when Redis dies."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from imgproxy_py.cache.base import CacheEntry
from imgproxy_py.cache.memory import MemoryTier
from imgproxy_py.cache.redis import RedisTier
from imgproxy_py.cache.status import CacheStatus
from imgproxy_py.cache.tiered import GuardedTier, TieredCache
from tests.cache.redis_server import RedisServer


def entry(data: bytes = b"img" * 1000, fresh: float = 60) -> CacheEntry:
    now = time.time()
    return CacheEntry(data, "webp", '"e"', None, now, now + fresh)


async def test_redis_tier_stores_raw_bytes_with_ttl(redis_server: RedisServer) -> None:
    tier = RedisTier(redis_server.url, timeout=1)
    try:
        original = entry(bytes(range(256)) * 100)
        await tier.set("k", original, ttl=0.3)
        assert await tier.get("k") == original
        assert await tier.get("other") is None
        await asyncio.sleep(0.4)
        assert await tier.get("k") is None
    finally:
        await tier.aclose()


async def test_lower_tier_hits_are_promoted(redis_server: RedisServer) -> None:
    redis = RedisTier(redis_server.url, timeout=1)
    memory = MemoryTier(10_000_000)
    cache = TieredCache(memory, [GuardedTier(redis, 1)])
    try:
        await redis.set("k", entry(), ttl=60)
        assert await memory.get("k") is None
        hit = await cache.get("k")
        assert hit is not None and hit[1] is CacheStatus.HIT_L2
        assert await memory.get("k") is not None
        again = await cache.get("k")
        assert again is not None and again[1] is CacheStatus.HIT_L1
        await cache.set("new", entry())
        await cache.flush()
        assert await redis.get("new") is not None
    finally:
        await cache.aclose()


async def test_expired_entries_beyond_the_stale_window_are_misses(redis_server: RedisServer) -> None:
    redis = RedisTier(redis_server.url, timeout=1)
    cache = TieredCache(None, [GuardedTier(redis, 1)], stale_window=0.0)
    try:
        await redis.set("old", entry(fresh=-1), ttl=60)  # stored, but past freshness + window
        assert await cache.get("old") is None
        stale_ok = TieredCache(None, [GuardedTier(redis, 1)], stale_window=30)  # same client, closed below
        hit = await stale_ok.get("old")
        assert hit is not None and not hit[0].is_fresh()
    finally:
        await cache.aclose()


async def test_a_dead_redis_costs_one_timeout_then_nothing_and_recovers(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="imgproxy_py.cache")
    guard = GuardedTier(RedisTier(redis_server.url, timeout=0.2), timeout=0.2, retry_after=0.5)
    cache = TieredCache(MemoryTier(1_000_000), [guard])
    try:
        await cache.set("a", entry())
        await cache.flush()
        redis_server.stop()
        started = time.monotonic()
        assert await cache.get("missing") is None  # first call notices the outage
        assert time.monotonic() - started < 1.5
        started = time.monotonic()
        for i in range(50):
            assert await cache.get(f"missing-{i}") is None
            await cache.set(f"k{i}", entry())
        await cache.flush()
        # bypassed while down: 100 calls waiting out a 0.2 s timeout each would take 20 s
        assert time.monotonic() - started < 2
        assert guard.down
        assert (await cache.get("k3")) is not None  # L1 keeps working
        redis_server.start()
        await asyncio.sleep(0.6)
        await cache.set("after", entry())
        await cache.flush()
        assert not guard.down
        check = RedisTier(redis_server.url, timeout=1)
        assert await check.get("after") is not None
        await check.aclose()
        messages = [r.getMessage() for r in caplog.records]
        assert sum("unavailable" in m for m in messages) == 1
        assert sum("is back" in m for m in messages) == 1
    finally:
        await cache.aclose()
