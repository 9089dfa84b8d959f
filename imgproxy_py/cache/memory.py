"""L1: an in-process LRU bounded by bytes (aiocache's memory backend has no bound)."""

from __future__ import annotations

import time
from collections import OrderedDict

from imgproxy_py.cache.base import CacheEntry


class MemoryTier:
    name = "L1"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[CacheEntry, float]] = OrderedDict()
        self._bytes = 0

    @property
    def size(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def get_now(self, key: str) -> CacheEntry | None:
        item = self._items.get(key)
        if item is None:
            return None
        entry, expires_at = item
        if time.time() >= expires_at:
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return entry

    async def get(self, key: str) -> CacheEntry | None:
        return self.get_now(key)

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        size = len(entry.data) + len(key) + 256
        if size > self.max_bytes // 8 or ttl <= 0:  # a huge result would flush everything else
            return
        self._drop(key)
        self._items[key] = (entry, time.time() + ttl)
        self._bytes += size
        while self._bytes > self.max_bytes and self._items:
            oldest = next(iter(self._items))
            self._drop(oldest)

    def purge_now(self, tag: str) -> int:
        """Drop every entry of one source (keys start with its tag). A scan: purges are rare,
        and a second index would cost memory and work on every write."""
        doomed = [key for key in self._items if key.startswith(tag + ".")]
        for key in doomed:
            self._drop(key)
        return len(doomed)

    async def purge(self, tag: str) -> int:
        return self.purge_now(tag)

    def _drop(self, key: str) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self._bytes -= len(item[0].data) + len(key) + 256

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._items.clear()
        self._bytes = 0
