"""The cross-process lock against a real Redis: a waiter that finds the lock free just after the
holder published its result takes that result, it does not produce it a second time."""

from __future__ import annotations

import time

from imgproxy_py.cache.base import CacheEntry
from imgproxy_py.cache.lock import CrossProcessLock
from imgproxy_py.cache.redis import RedisTier
from imgproxy_py.cache.status import CacheStatus
from imgproxy_py.cache.tiered import GuardedTier, TieredCache
from tests.cache.redis_server import RedisServer


class HolderFinishesDuringTheLook(TieredCache):
    """The waiter's first look misses, and the holder writes and unlocks right after it:
    the interleaving that made the cluster drill fetch a source twice under load."""

    def __init__(self, guarded: GuardedTier, holder: CrossProcessLock, token: str, entry: CacheEntry) -> None:
        super().__init__(None, [guarded])
        self.holder, self.token, self.entry = holder, token, entry
        self.looks = 0

    async def get(self, key: str) -> tuple[CacheEntry, CacheStatus] | None:
        self.looks += 1
        found = await super().get(key)
        if self.looks == 1:
            await super().set(key, self.entry, wait_for=self.remote[0].name)
            await self.holder.release(key, self.token)
        return found


async def test_a_waiter_takes_the_result_published_between_its_look_and_the_lock(redis_server: RedisServer) -> None:
    holder_redis, waiter_redis = RedisTier(redis_server.url, timeout=1), RedisTier(redis_server.url, timeout=1)
    holder_tier, waiter_tier = GuardedTier(holder_redis, 1), GuardedTier(waiter_redis, 1)
    holder = CrossProcessLock(holder_tier, TieredCache(None, [holder_tier]), lock_ttl=10)
    deadline = time.monotonic() + 10
    token, _ = await holder.acquire_or_wait("k", deadline)
    assert token is not None
    now = time.time()
    result = CacheEntry(b"result", "webp", '"e"', None, now, now + 60)
    cache = HolderFinishesDuringTheLook(waiter_tier, holder, token, result)
    waiter = CrossProcessLock(waiter_tier, cache, lock_ttl=10)
    try:
        got_token, entry = await waiter.acquire_or_wait("k", deadline)
        assert (got_token, entry) == (None, result)  # the published result, not a second transform
        assert not await waiter_redis.is_locked("k")  # the lock it briefly took is released
    finally:
        await holder_redis.aclose()
        await waiter_redis.aclose()
