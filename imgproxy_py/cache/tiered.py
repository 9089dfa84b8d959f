"""Read-through, write-through tiers with promotion and failure isolation.

L1 (memory) answers synchronously. Remote tiers (Redis, S3) sit behind GuardedTier: every
call has a short timeout, and after a failure the tier is skipped for a while, so a dead
or slow tier costs at most one timeout per retry period, never a failed request. It is
logged once when it goes down and once when it comes back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from imgproxy_py.cache.base import CacheEntry, CacheTier
from imgproxy_py.cache.memory import MemoryTier
from imgproxy_py.cache.status import CacheStatus

log = logging.getLogger("imgproxy_py.cache")
T = TypeVar("T")

_MAX_PENDING_WRITES = 256


class GuardedTier:
    def __init__(self, tier: CacheTier, timeout: float, retry_after: float = 5.0) -> None:
        self.tier = tier
        self.name = tier.name
        self.timeout = timeout
        self.retry_after = retry_after
        self._down_until = 0.0
        self._down = False

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    @property
    def down(self) -> bool:
        return self._down

    async def call(self, op: Callable[[], Awaitable[T]], default: T) -> T:
        """``op()`` within the timeout; ``default`` when the tier is down, slow or failing."""
        if not self.available:
            return default
        try:
            async with asyncio.timeout(self.timeout):
                result = await op()
        except Exception as exc:
            self._down_until = time.monotonic() + self.retry_after
            if not self._down:
                self._down = True
                log.warning("cache tier %s unavailable (%s); bypassing it for now", self.name, type(exc).__name__)
            return default
        if self._down:
            self._down = False
            log.warning("cache tier %s is back", self.name)
        return result

    async def get(self, key: str) -> CacheEntry | None:
        return await self.call(lambda: self.tier.get(key), None)

    async def probe(self) -> bool:
        """Ask the tier directly (ignoring the bypass window): is it up right now?"""
        self._down_until = 0.0
        return await self.call(self.tier.ping, False)

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        await self.call(lambda: self.tier.set(key, entry, ttl), None)

    def probe_soon(self) -> None:
        """Let the next call through even inside the bypass window (a purge must try)."""
        self._down_until = 0.0


class TieredCache:
    def __init__(self, memory: MemoryTier | None, remote: Sequence[GuardedTier], *, stale_window: float = 0.0) -> None:
        self.memory = memory
        self.remote = list(remote)
        self.stale_window = stale_window
        self._writes: set[asyncio.Task[None]] = set()

    def ttl_for(self, entry: CacheEntry, now: float | None = None) -> float:
        now = time.time() if now is None else now
        return max(0.0, entry.fresh_until - now) + self.stale_window

    def _usable(self, entry: CacheEntry, now: float) -> bool:
        return now < entry.fresh_until + self.stale_window

    def get_memory(self, key: str) -> CacheEntry | None:
        return self.memory.get_now(key) if self.memory is not None else None

    async def get(self, key: str) -> tuple[CacheEntry, CacheStatus] | None:
        """The entry and which tier had it (a CacheStatus hit); lower hits are promoted upwards."""
        entry = self.get_memory(key)
        if entry is not None:
            return entry, CacheStatus.HIT_L1
        for index, tier in enumerate(self.remote):
            entry = await tier.get(key)
            now = time.time()
            if entry is None or not self._usable(entry, now):
                continue
            ttl = self.ttl_for(entry, now)
            if self.memory is not None:
                await self.memory.set(key, entry, ttl)
            for upper in self.remote[:index]:
                self._background(upper.set(key, entry, ttl))
            return entry, CacheStatus.hit(tier.name)
        return None

    async def set(self, key: str, entry: CacheEntry, *, wait_for: str | None = None) -> None:
        """Store in every tier: memory now, remote tiers in the background (never delaying the
        response), except ``wait_for``, written before returning: a process that holds the
        cross-process lock must publish the result before it lets the others look."""
        ttl = self.ttl_for(entry)
        if ttl <= 0:
            return
        if self.memory is not None:
            await self.memory.set(key, entry, ttl)
        for tier in self.remote:
            if tier.name == wait_for:
                await tier.set(key, entry, ttl)
            else:
                self._background(tier.set(key, entry, ttl))

    def _background(self, coro: Awaitable[None]) -> None:
        if len(self._writes) >= _MAX_PENDING_WRITES:  # a slow tier must not pile up memory
            if asyncio.iscoroutine(coro):
                coro.close()
            return
        task = asyncio.ensure_future(coro)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def purge(self, tag: str) -> dict[str, int | None]:
        """Drop every entry of one source from every tier; per tier how many (None: the tier
        failed or is down, so its entries expire by TTL instead). The shared tier that can
        broadcast (Redis pub/sub) then tells every other process to drop its L1 entries."""
        counts: dict[str, int | None] = {}
        if self.memory is not None:
            counts[self.memory.name] = self.memory.purge_now(tag)
        for guarded in self.remote:
            purge = getattr(guarded.tier, "purge", None)
            if purge is None:
                continue
            guarded.probe_soon()
            counts[guarded.name] = await guarded.call(lambda purge=purge: purge(tag), None)  # type: ignore[misc]
        for guarded in self.remote:
            publish = getattr(guarded.tier, "publish_purge", None)
            if publish is not None:
                await guarded.call(lambda publish=publish: publish(tag), None)  # type: ignore[misc]
        return counts

    async def flush(self) -> None:
        """Wait for background writes (tests and shutdown)."""
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    async def aclose(self) -> None:
        await self.flush()
        if self.memory is not None:
            await self.memory.aclose()
        for tier in self.remote:
            await tier.tier.aclose()
