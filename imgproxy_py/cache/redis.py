"""L2: Redis, shared by every process and replica; also the cross-process coalescing lock,
the per-source key index for purges and the purge broadcast (pub/sub) to every process's L1.

One Redis, a Redis Cluster (``redis+cluster://host:port[,host:port…]``) or a Sentinel-managed
master (``redis+sentinel://[:password@]host:port[,…]/service[/db]``). Keys carry their source
tag as a hash tag (``{tag}``), so a result, its lock and its source's index live in one slot:
the write-and-index and the purge are single-slot scripts that work the same on a cluster.

Values are the compact binary entry (no base64). Every call has a short socket timeout
so a slow or dead Redis costs at most that; TieredCache then stops asking for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

from imgproxy_py.cache.base import CacheEntry

log = logging.getLogger("imgproxy_py.cache")

_UNLOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""

# KEYS: result, source index. ARGV: value, ttl ms. The index lives as long as its longest entry.
_SET_INDEXED = """
redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2])
redis.call('sadd', KEYS[2], KEYS[1])
if redis.call('pttl', KEYS[2]) < tonumber(ARGV[2]) then redis.call('pexpire', KEYS[2], ARGV[2]) end
return 1
"""

# KEYS: source index. Every member shares its hash tag, so one slot: atomic on a cluster too.
_PURGE = """
local members = redis.call('smembers', KEYS[1])
local n = 0
for _, key in ipairs(members) do n = n + redis.call('del', key) end
redis.call('del', KEYS[1])
return n
"""


@dataclass(frozen=True, slots=True)
class RedisTarget:
    kind: str  # single | cluster | sentinel
    url: str  # single: the URL as given
    nodes: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = None
    service: str = ""
    db: int = 0

    @classmethod
    def parse(cls, url: str) -> RedisTarget:
        """Split a ``redis+cluster://`` or ``redis+sentinel://`` URL; ValueError names what is wrong."""
        if not url.startswith(("redis+cluster://", "redis+sentinel://")):
            return cls("single", url)
        scheme, _, rest = url.partition("://")
        userinfo, at, hostpart = rest.rpartition("@")
        if not at:
            hostpart = rest
        hosts, _, path = hostpart.partition("/")
        path = path.partition("?")[0]
        username = password = None
        if userinfo:
            user, colon, pw = userinfo.partition(":")
            username, password = (unquote(user) or None, unquote(pw)) if colon else (None, unquote(user))
        nodes = []
        for item in hosts.split(","):
            parsed = urlsplit("//" + item.strip())
            if not parsed.hostname or parsed.port is None:
                raise ValueError("expected host:port pairs separated by commas")
            nodes.append((parsed.hostname, parsed.port))
        if scheme == "redis+cluster":
            return cls("cluster", url, tuple(nodes), username, password)
        service, _, db = path.partition("/")
        if not service:
            raise ValueError("a redis+sentinel:// URL needs the master's service name: …/service[/db]")
        if db and not db.isdigit():
            raise ValueError("the database after the service name must be a number")
        return cls("sentinel", url, tuple(nodes), username, password, service, int(db or 0))


def make_client(url: str, timeout: float) -> Any:
    """A redis.asyncio client (plain, cluster or Sentinel master) with short timeouts, no retry."""
    target = RedisTarget.parse(url)
    common: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 0,
    }
    if target.kind == "cluster":
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
            username=target.username,
            password=target.password,
            **common,
        )
    if target.kind == "sentinel":
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(target.nodes),
            sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
            username=target.username,
            password=target.password,
            db=target.db,
            **common,
        )
        return sentinel.master_for(target.service)
    return aioredis.Redis.from_url(url, retry_on_timeout=False, **common)


async def close_client(client: Any) -> None:
    """Close ``client`` and, for a Sentinel master, the Sentinel's own connections to the
    sentinels, which redis-py leaves to whoever made the Sentinel (they leaked a socket per tier)."""
    await client.aclose()
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    if manager is not None:
        await manager.aclose()


class RedisTier:
    name = "L2"

    def __init__(self, url: str, timeout: float, prefix: str = "imgproxy-py:") -> None:
        self._url = url
        self._target = RedisTarget.parse(url)
        self._timeout = timeout
        self._client = make_client(url, timeout)
        self._prefix = prefix
        self._set_script = self._client.register_script(_SET_INDEXED)
        self._purge_script = self._client.register_script(_PURGE)
        self._unlock_script = self._client.register_script(_UNLOCK)
        self.channel = f"{prefix}purge"

    def _key(self, kind: str, key: str) -> str:
        tag, dot, rest = key.partition(".")
        if not dot:  # not a source-tagged key
            return f"{self._prefix}{kind}:{key}"
        return f"{self._prefix}{kind}:{{{tag}}}{rest}"

    def _index(self, tag: str) -> str:
        return f"{self._prefix}i:{{{tag}}}"

    async def get(self, key: str) -> CacheEntry | None:
        blob = await self._client.get(self._key("r", key))
        return CacheEntry.from_bytes(blob) if isinstance(blob, bytes) else None

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        if ttl <= 0:
            return
        ms = max(1, int(ttl * 1000))
        tag, dot, _ = key.partition(".")
        if not dot:
            await self._client.set(self._key("r", key), entry.to_bytes(), px=ms)
            return
        await self._set_script(keys=[self._key("r", key), self._index(tag)], args=[entry.to_bytes(), ms])

    async def purge(self, tag: str) -> int:
        """Delete every entry of one source (its index names them); returns how many."""
        return int(await self._purge_script(keys=[self._index(tag)]))

    async def publish_purge(self, tag: str) -> None:
        await self._client.execute_command("PUBLISH", self.channel, tag)

    async def try_lock(self, key: str, ttl: float) -> str | None:
        """Take the cross-process transform lock for ``key``; returns the token, or None if held."""
        token = secrets.token_hex(8)
        ok = await self._client.set(self._key("l", key), token, nx=True, px=max(1, int(ttl * 1000)))
        return token if ok else None

    async def unlock(self, key: str, token: str) -> None:
        await self._unlock_script(keys=[self._key("l", key)], args=[token])

    async def is_locked(self, key: str) -> bool:
        return bool(await self._client.exists(self._key("l", key)))

    async def ping(self) -> bool:
        return bool(await self._client.ping())

    async def listen_for_purges(self, on_tag: Callable[[str], object], stop: asyncio.Event) -> None:
        """Call ``on_tag`` for every purge any process publishes; runs until ``stop`` is set.

        Reconnects after failures. On a cluster a classic PUBLISH reaches every node, so one
        subscription to any live node is enough (redis-py's asyncio cluster client has no
        pub/sub of its own); the next node is tried when one goes away. The owner sets ``stop``
        and also cancels: a cancellation landing inside redis-py's read timeout can come out
        as an ordinary error, which alone would read as "reconnect" and never end the loop.
        """
        attempt = 0
        while not stop.is_set():
            client = self._subscriber_client(attempt)
            attempt += 1
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                async with contextlib.aclosing(pubsub):
                    await pubsub.subscribe(self.channel)
                    while not stop.is_set():
                        message = await pubsub.get_message(timeout=1.0)
                        if message is not None and message.get("type") == "message":
                            data = message["data"]
                            on_tag(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if stop.is_set():
                    return
                log.debug("purge subscription lost (%s); reconnecting", type(exc).__name__)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await close_client(client)

    def _subscriber_client(self, attempt: int) -> Any:
        target = self._target
        if target.kind == "cluster":
            host, port = target.nodes[attempt % len(target.nodes)]
            return aioredis.Redis(
                host=host,
                port=port,
                username=target.username,
                password=target.password,
                socket_connect_timeout=self._timeout,
                health_check_interval=0,
            )
        return (
            make_client(self._url, self._timeout)
            if target.kind == "sentinel"
            else aioredis.Redis.from_url(self._url, socket_connect_timeout=self._timeout, health_check_interval=0)
        )

    async def aclose(self) -> None:
        await close_client(self._client)
