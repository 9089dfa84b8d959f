"""L2: Redis, shared by every process and replica; also the cross-process coalescing lock.

Values are the compact binary entry (no base64). Every call has a short socket timeout
so a slow or dead Redis costs at most that; TieredCache then stops asking for a while.
"""

from __future__ import annotations

import secrets

import redis.asyncio as aioredis

from imgproxy_py.cache.base import CacheEntry

_UNLOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisTier:
    name = "L2"

    def __init__(self, url: str, timeout: float, prefix: str = "imgproxy-py:") -> None:
        self._client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry_on_timeout=False,
            health_check_interval=0,
        )
        self._prefix = prefix

    def _key(self, kind: str, key: str) -> str:
        return f"{self._prefix}{kind}:{key}"

    async def get(self, key: str) -> CacheEntry | None:
        blob = await self._client.get(self._key("r", key))
        return CacheEntry.from_bytes(blob) if isinstance(blob, bytes) else None

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        if ttl > 0:
            await self._client.set(self._key("r", key), entry.to_bytes(), px=max(1, int(ttl * 1000)))

    async def try_lock(self, key: str, ttl: float) -> str | None:
        """Take the cross-process transform lock for ``key``; returns the token, or None if held."""
        token = secrets.token_hex(8)
        ok = await self._client.set(self._key("l", key), token, nx=True, px=max(1, int(ttl * 1000)))
        return token if ok else None

    async def unlock(self, key: str, token: str) -> None:
        await self._client.eval(_UNLOCK, 1, self._key("l", key), token)

    async def is_locked(self, key: str) -> bool:
        return bool(await self._client.exists(self._key("l", key)))

    async def ping(self) -> bool:
        return bool(await self._client.ping())

    async def aclose(self) -> None:
        await self._client.aclose()
