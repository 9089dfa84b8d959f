"""Cache keys and ETags are the same in every process: real processes, different hash seeds, one Redis.

Set-valued settings (IMGPROXY_ALLOWED_PROCESSING_OPTIONS, IMGPROXY_SKIP_PROCESSING_FORMATS)
once entered the settings fingerprint through ``repr``, whose order follows the per-process
string hash seed: replicas and restarts never shared a Redis entry and CDN revalidation
failed after each deploy. Two app objects in one interpreter cannot show this; separate
``imgproxy-py serve`` processes with different PYTHONHASHSEEDs can.
"""

from __future__ import annotations

import time

import httpx
import redis

from tests.cache.redis_server import RedisServer
from tests.s3_server import S3Server
from tests.support import REPO, serving

ENV = {
    "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(REPO / "examples" / "images"),
    "IMGPROXY_ALLOWED_PROCESSING_OPTIONS": "rs,resize,q,quality,w,h,f,format,g,gravity,bl,sh",
    "IMGPROXY_SKIP_PROCESSING_FORMATS": "gif,svg,ico",
    "IMGPROXY_CACHE_MEMORY_SIZE": "0",  # every hit below must come from Redis
    "IMGPROXY_CACHE_TIMEOUT": "3",  # a loaded machine must not turn Redis calls into fallbacks
}
PATH = "/_/rs:fill:120:80/q:70/plain/local:///flowers.jpeg@webp"


def _entries(client: redis.Redis) -> set[bytes]:
    return {k for k in client.keys("*") if isinstance(k, bytes) and b"lock" not in k}


def _keys(client: redis.Redis, within: float = 10) -> set[bytes]:
    """The entries in Redis once the background write has landed (not the coalescing locks)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        keys = _entries(client)
        if keys:
            return keys
        time.sleep(0.05)
    return set()


def test_processes_with_different_hash_seeds_share_keys_and_etags(redis_server: RedisServer) -> None:
    env = {**ENV, "IMGPROXY_CACHE_REDIS_URL": redis_server.url}
    client = redis.Redis.from_url(redis_server.url)
    try:
        with (
            serving(env={**env, "PYTHONHASHSEED": "1"}) as (a, _),
            serving(env={**env, "PYTHONHASHSEED": "2"}) as (b, _),
        ):
            first = httpx.get(a + PATH, timeout=30)
            assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
            keys = _keys(client)
            assert keys
            second = httpx.get(b + PATH, timeout=30)
            assert second.status_code == 200 and second.headers["x-cache"] == "HIT-L2"
            assert second.headers["etag"] == first.headers["etag"]
            assert _entries(client) == keys  # no second entry
        # A real restart, with yet another seed: the entry written before is found.
        with serving(env={**env, "PYTHONHASHSEED": "3"}) as (c, _):
            third = httpx.get(c + PATH, timeout=30)
            assert third.headers["x-cache"] == "HIT-L2" and third.headers["etag"] == first.headers["etag"]
            revalidated = httpx.get(c + PATH, headers={"If-None-Match": first.headers["etag"]}, timeout=30)
            assert revalidated.status_code == 304
        assert _entries(client) == keys
    finally:
        client.close()


def test_a_restarted_process_with_another_seed_hits_l3(s3_server: S3Server) -> None:
    """The durable tier across a real restart: the second process finds the first one's object."""
    bucket = s3_server.new_bucket()
    env = {**ENV, **s3_server.env(IMGPROXY_USE_S3="false", IMGPROXY_CACHE_S3_BUCKET=bucket)}
    with serving(env={**env, "PYTHONHASHSEED": "11"}) as (a, _):
        first = httpx.get(a + PATH, timeout=30)
        assert first.headers["x-cache"] == "MISS"
        deadline = time.monotonic() + 10  # the write to L3 happens after the response
        while not list(s3_server.client().list_objects(bucket, recursive=True)) and time.monotonic() < deadline:
            time.sleep(0.05)
    with serving(env={**env, "PYTHONHASHSEED": "12"}) as (b, _):
        second = httpx.get(b + PATH, timeout=30)
        assert second.headers["x-cache"] == "HIT-L3" and second.headers["etag"] == first.headers["etag"]
