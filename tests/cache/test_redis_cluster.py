"""L2 on a real Redis Cluster (3 masters + 3 replicas on loopback): keys, TTLs, the
coalescing lock and purges across shards, and a master killed mid-run."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imgproxy_py import keys
from imgproxy_py.cache.base import CacheEntry
from imgproxy_py.cache.redis import RedisTarget, RedisTier
from imgproxy_py.errors import SettingsError
from imgproxy_py.settings import Settings
from tests.cache.redis_cluster import ClusterUnavailable, RedisCluster, running_cluster
from tests.cache.redis_server import RedisServer
from tests.cache.test_server_cache import PHOTO
from tests.conftest import app_with_service
from tests.support import Origin, free_port, size_of


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    try:
        with running_cluster() as c:
            yield c
    except ClusterUnavailable as exc:
        pytest.skip(str(exc))


def entry(data: bytes, fresh: float = 60) -> CacheEntry:
    now = time.time()
    return CacheEntry(data, "webp", '"e"', None, now, now + fresh)


def test_cluster_and_sentinel_urls_parse() -> None:
    target = RedisTarget.parse("redis+cluster://:s%40cret@10.0.0.1:7000,10.0.0.2:7001")
    assert (target.kind, target.nodes, target.password) == (
        "cluster",
        (("10.0.0.1", 7000), ("10.0.0.2", 7001)),
        "s@cret",
    )
    sentinel = RedisTarget.parse("redis+sentinel://a:26379,b:26379/mymaster/2")
    assert (sentinel.kind, sentinel.service, sentinel.db) == ("sentinel", "mymaster", 2)
    with pytest.raises(ValueError):
        RedisTarget.parse("redis+sentinel://a:26379")
    assert RedisTarget.parse("redis://localhost:6379/0").kind == "single"
    for bad in ("redis+cluster://", "redis+cluster://host", "redis+cluster://a:1,,b"):
        with pytest.raises(SettingsError, match="IMGPROXY_CACHE_REDIS_URL"):
            Settings.from_env({"IMGPROXY_CACHE_REDIS_URL": bad})


async def test_keys_ttls_locks_and_purges_across_shards(cluster: RedisCluster) -> None:
    tier = RedisTier(cluster.url, timeout=2)
    try:
        sources = [f"http://origin/{i}.jpg" for i in range(12)]
        stored = {}
        for i, source in enumerate(sources):
            key = f"{keys.source_tag(source)}.{i:040x}"
            stored[key] = entry(bytes([i]) * 5000)
            await tier.set(key, stored[key], ttl=60)
        # The keys really are spread over several masters, and each reads back intact.
        masters = {cluster.master_for("{" + keys.tag_of(k) + "}") for k in stored}
        assert len(masters) >= 2
        for key, value in stored.items():
            assert await tier.get(key) == value

        # A second variant of the first source: the same slot, found and purged together.
        first = next(iter(stored))
        sibling = f"{keys.tag_of(first)}.{'f' * 40}"
        await tier.set(sibling, entry(b"variant"), ttl=60)
        assert await tier.purge(keys.tag_of(first)) == 2
        assert await tier.get(first) is None and await tier.get(sibling) is None
        assert await tier.get(list(stored)[1]) is not None  # other sources untouched

        # TTLs hold on every shard.
        short = f"{keys.source_tag('http://origin/short.jpg')}.{'0' * 40}"
        await tier.set(short, entry(b"brief"), ttl=0.3)
        assert await tier.get(short) is not None
        await asyncio.sleep(0.5)
        assert await tier.get(short) is None

        # The coalescing lock: one holder, released only by its token, expiring by itself.
        token = await tier.try_lock(sibling, ttl=5)
        assert token is not None
        assert await tier.try_lock(sibling, ttl=5) is None and await tier.is_locked(sibling)
        await tier.unlock(sibling, "not-the-token")
        assert await tier.is_locked(sibling)
        await tier.unlock(sibling, token)
        assert not await tier.is_locked(sibling)
        assert await tier.try_lock(short, ttl=0.2) is not None
        await asyncio.sleep(0.35)
        assert not await tier.is_locked(short)
        assert await tier.ping()
    finally:
        await tier.aclose()


async def test_a_master_killed_mid_run_costs_no_request(cluster: RedisCluster, origin: Origin) -> None:
    """Requests keep succeeding while a shard fails over (by processing), then L2 serves again."""
    env = {
        "IMGPROXY_CACHE_REDIS_URL": cluster.url,
        "IMGPROXY_CACHE_MEMORY_SIZE": "0",  # every hit must come from Redis
        "IMGPROXY_CACHE_TIMEOUT": "1",
        "IMGPROXY_CACHE_RETRY_AFTER": "0.5",
    }
    paths = [f"/_/rs:fit:{40 + i}:{40 + i}/plain/{origin.url(PHOTO)}" for i in range(8)]
    async with app_with_service(**env) as (client, service):
        assert service.flow.cache is not None
        expected = {}
        for path in paths:
            response = await client.get(path)
            assert response.status_code == 200
            expected[path] = size_of(response.content)
        await service.flow.cache.flush()
        assert {(await client.get(p)).headers["x-cache"] for p in paths} == {"HIT-L2"}

        # Every variant of one source lives in one slot: kill the master that serves it.
        victim = cluster.master_for("{" + keys.source_tag(origin.url(PHOTO)) + "}")
        cluster.kill(victim)
        statuses: list[int] = []
        wrong_sizes = []
        deadline = time.monotonic() + 25
        served_by_l2_again = False
        while time.monotonic() < deadline:
            for path in paths:
                response = await client.get(path)
                statuses.append(response.status_code)
                if response.status_code == 200 and size_of(response.content) != expected[path]:
                    wrong_sizes.append(path)
            await service.flow.cache.flush()
            hits = [(await client.get(p)).headers["x-cache"] for p in paths]
            if all(h == "HIT-L2" for h in hits) and victim not in cluster.masters():
                served_by_l2_again = True
                break
            await asyncio.sleep(0.3)
        assert set(statuses) == {200}
        assert wrong_sizes == []
        assert served_by_l2_again, "the cluster failed over but L2 never served again"


async def test_a_sentinel_url_reaches_the_monitored_master(redis_server: RedisServer, tmp_path: Path) -> None:
    """``redis+sentinel://`` asks a real redis-sentinel for the master and stores there."""
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\nsentinel monitor imgmaster 127.0.0.1 {redis_server.port} 1\n")
    binary = shutil.which("redis-server")
    assert binary is not None
    proc = subprocess.Popen([binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tier = RedisTier(f"redis+sentinel://127.0.0.1:{port}/imgmaster/0", timeout=2)
    try:
        key = f"{keys.source_tag('http://origin/s.jpg')}.{'a' * 40}"
        deadline = time.monotonic() + 15
        while True:
            try:
                await tier.set(key, entry(b"via sentinel"), ttl=60)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        read = await tier.get(key)
        assert read is not None and read.data == b"via sentinel"
        direct = RedisTier(redis_server.url, timeout=2)
        try:
            stored = await direct.get(key)
            assert stored is not None and stored.data == b"via sentinel"
        finally:
            await direct.aclose()
    finally:
        await tier.aclose()
        proc.kill()
        proc.wait(timeout=10)
