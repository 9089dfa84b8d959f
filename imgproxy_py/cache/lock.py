"""Coalescing across processes and replicas through a short lock in a shared tier.

The first process to miss a key takes the lock and transforms; the others poll the
shared tier until the result appears (HIT-COALESCED), or the lock disappears without a
result (the holder failed) and they take over. If the tier is down, everyone just works
on their own: coalescing is an optimisation, never a dependency.
"""

from __future__ import annotations

import asyncio
import time

from imgproxy_py.cache.base import CacheEntry, LockingTier
from imgproxy_py.cache.tiered import GuardedTier, TieredCache

_DOWN = object()


class CrossProcessLock:
    def __init__(self, shared: GuardedTier, cache: TieredCache, lock_ttl: float, poll: float = 0.02) -> None:
        if not isinstance(shared.tier, LockingTier):
            raise TypeError(f"cache tier {shared.name} cannot hold locks")
        self._guard = shared
        self._tier: LockingTier = shared.tier
        self._cache = cache
        self._ttl = lock_ttl
        self._poll = poll

    async def acquire_or_wait(self, key: str, deadline: float) -> tuple[str | None, CacheEntry | None]:
        """Either (token, None): we hold the lock and must do the work; or (None, entry): another
        process produced it; or (None, None): no lock available (the tier is down), do the work."""
        poll = self._poll
        waited = False
        while True:
            token = await self._guard.call(lambda: self._tier.try_lock(key, self._ttl), _DOWN)
            if token is _DOWN:
                return None, None
            if isinstance(token, str):
                if waited:
                    # The holder writes the shared tier, then unlocks. If it did both between our
                    # last look and is_locked(), we took a free lock for a result that exists:
                    # look once more rather than fetch and transform it a second time.
                    hit = await self._cache.get(key)
                    if hit is not None:
                        await self.release(key, token)
                        return None, hit[0]
                return token, None
            waited = True
            while time.monotonic() < deadline:
                await asyncio.sleep(poll)
                poll = min(poll * 1.5, 0.2)
                hit = await self._cache.get(key)
                if hit is not None:
                    return None, hit[0]
                locked = await self._guard.call(lambda: self._tier.is_locked(key), _DOWN)
                if locked is _DOWN:
                    return None, None
                if not locked:
                    break  # the holder gave up without a result: try to take over
            else:
                raise TimeoutError("waited for another process's transform past the deadline")

    @property
    def tier_name(self) -> str:
        """The shared tier waiters poll: the holder writes it before releasing the lock."""
        return self._guard.name

    async def release(self, key: str, token: str) -> None:
        await self._guard.call(lambda: self._tier.unlock(key, token), None)


def lock_for(cache: TieredCache, lock_ttl: float) -> CrossProcessLock | None:
    """The lock in the first shared tier that can hold one (None: no such tier, no cross-process coalescing)."""
    for guarded in cache.remote:
        if isinstance(guarded.tier, LockingTier):
            return CrossProcessLock(guarded, cache, lock_ttl)
    return None
