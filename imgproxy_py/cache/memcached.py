"""L2 on Memcached, through aiocache (its MemcachedCache over aiomcache).

aiocache is the right tool here: with ``NullSerializer(encoding=None)`` it passes raw bytes
(our compact entry, no JSON/pickle layer), and its cost over aiomcache is measured at
~7 µs a call with its own per-call timeout off (``benchmarks/aiocache_overhead.py``), small
beside a network round trip; GuardedTier bounds every call's time instead.

Memcached refuses items over its item size (1 MB by default, ``-I``): larger entries are
split into chunks under a per-write generation id, with a small manifest at the key, so a
reader never mixes chunks of two writes and a lost chunk reads as a miss.

Purges: memcached cannot list keys, so each source has an index item (``i:<tag>``) that
writes append their key to; a purge deletes what it names. An evicted index loses only the
ability to purge those entries early; they still expire by their TTL.

Not used for coordination: aiocache's RedLock keeps its waiters' wake-up event in a
process-local dict, so a waiter in another process finds no event and proceeds at once
(no cross-process coalescing), and its memcached release deletes without checking the
owner. The cross-process lock stays on Redis (cache/lock.py: memcached is no LockingTier).
"""

from __future__ import annotations

import json
import math
import secrets
from typing import Any
from urllib.parse import urlsplit

from aiocache import Cache
from aiocache.serializers import NullSerializer

from imgproxy_py.cache.base import CacheEntry

_INLINE = b"\x00"
_CHUNKED = b"\x01"
# Memcached's default item limit is 1 MiB including its ~50-byte header and the key.
DEFAULT_CHUNK = 1024 * 1024 - 4096
_MAX_TTL = 30 * 24 * 3600  # memcached reads larger relative TTLs as unix timestamps


def parse_memcached_url(url: str) -> tuple[str, int]:
    """``memcached://host[:port]`` → (host, port); ValueError if it is not one."""
    parts = urlsplit(url)
    if parts.scheme != "memcached" or not parts.hostname:
        raise ValueError("expected memcached://host[:port]")
    return parts.hostname, parts.port or 11211


class MemcachedTier:
    name = "L2"

    def __init__(self, url: str, prefix: str = "imgproxy-py:", chunk_size: int = DEFAULT_CHUNK) -> None:
        host, port = parse_memcached_url(url)
        # timeout=None: aiocache's own per-call asyncio.wait_for costs ~20 µs a call; GuardedTier
        # already bounds each call.
        self._cache: Any = Cache(
            Cache.MEMCACHED,
            endpoint=host,
            port=port,
            serializer=NullSerializer(encoding=None),
            namespace=prefix,
            timeout=None,
            pool_size=8,
        )
        self._chunk = chunk_size

    async def get(self, key: str) -> CacheEntry | None:
        blob = await self._cache.get(f"r:{key}")
        if not isinstance(blob, bytes) or not blob:
            return None
        if blob[:1] == _INLINE:
            return CacheEntry.from_bytes(blob[1:])
        if blob[:1] != _CHUNKED:
            return None
        try:
            manifest = json.loads(blob[1:])
            count, gen = int(manifest["n"]), str(manifest["g"])
        except (ValueError, KeyError, TypeError):
            return None
        parts = await self._cache.multi_get([f"c:{key}:{gen}:{i}" for i in range(count)])
        if any(not isinstance(p, bytes) for p in parts):
            return None  # a chunk was evicted: the entry is gone
        return CacheEntry.from_bytes(b"".join(parts))

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        if ttl <= 0:
            return
        seconds = min(_MAX_TTL, max(1, math.ceil(ttl)))
        blob = entry.to_bytes()
        if len(blob) + 1 <= self._chunk:
            await self._cache.set(f"r:{key}", _INLINE + blob, ttl=seconds)
        else:
            gen = secrets.token_hex(4)
            count = math.ceil(len(blob) / self._chunk)
            pairs = [(f"c:{key}:{gen}:{i}", blob[i * self._chunk : (i + 1) * self._chunk]) for i in range(count)]
            await self._cache.multi_set(pairs, ttl=seconds)  # chunks first: the manifest publishes them
            manifest = json.dumps({"n": count, "g": gen}, separators=(",", ":")).encode()
            await self._cache.set(f"r:{key}", _CHUNKED + manifest, ttl=seconds)
        await self._index(key, seconds)

    async def _index(self, key: str, seconds: int) -> None:
        tag, dot, _ = key.partition(".")
        if not dot:
            return
        index = self._cache.build_key(f"i:{tag}")
        line = key.encode() + b"\n"
        if not await self._cache.raw("append", index, line):
            if not await self._cache.raw("add", index, line, exptime=seconds):
                await self._cache.raw("append", index, line)  # another writer created it meanwhile
        else:
            await self._cache.raw("touch", index, seconds)  # keep it as long as the newest entry

    async def purge(self, tag: str) -> int:
        """Delete every entry of one source named in its index; returns how many existed."""
        index = self._cache.build_key(f"i:{tag}")
        raw = await self._cache.raw("get", index)
        names = {line for line in (raw or b"").decode(errors="replace").splitlines() if line.startswith(tag + ".")}
        deleted = 0
        for name in names:
            deleted += int(await self._cache.delete(f"r:{name}"))  # chunks expire by themselves, unreachable
        await self._cache.delete(f"i:{tag}")
        return deleted

    async def ping(self) -> bool:
        return bool(await self._cache.raw("version") is not None)

    async def aclose(self) -> None:
        await self._cache.close()
