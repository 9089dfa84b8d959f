"""L3 against a real S3 endpoint (moto's server): durable results shared across restarts."""

from __future__ import annotations

import time

from imgproxy_py.cache.base import CacheEntry
from imgproxy_py.cache.s3 import S3Tier
from tests.cache.test_server_cache import PHOTO
from tests.conftest import app_with_service
from tests.s3_server import S3Server
from tests.support import Origin, size_of


async def test_s3_tier_round_trip(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    tier = S3Tier(s3_server.target(), bucket, "results/", timeout=5)
    try:
        now = time.time()
        entry = CacheEntry(bytes(range(256)) * 64, "png", '"t"', None, now, now + 60)
        assert await tier.get("ab" * 20) is None
        await tier.set("ab" * 20, entry, ttl=60)
        assert await tier.get("ab" * 20) == entry
        names = [o.object_name for o in s3_server.client().list_objects(bucket, recursive=True)]
        assert names == ["results/ab/" + "ab" * 20]
    finally:
        await tier.aclose()


async def test_results_survive_a_restart_through_l3(s3_server: S3Server, origin: Origin) -> None:
    bucket = s3_server.new_bucket()
    env = s3_server.env(IMGPROXY_USE_S3="false", IMGPROXY_CACHE_S3_BUCKET=bucket)
    url = f"/_/rs:fill:64:48/plain/{origin.url(PHOTO)}@webp"
    async with app_with_service(**env) as (client, service):
        assert (await client.get(url)).headers["x-cache"] == "MISS"
        assert service.flow.cache is not None
        await service.flow.cache.flush()
    # A second app in this interpreter (empty L1, no Redis); real processes with other hash
    # seeds sharing L3 are in test_shared_keys.py.
    async with app_with_service(**env) as (client, service):
        hit = await client.get(url)
        assert hit.headers["x-cache"] == "HIT-L3"
        assert hit.headers["content-type"] == "image/webp"
        assert size_of(hit.content) == (64, 48)
        assert (await client.get(url)).headers["x-cache"] == "HIT-L1"
        assert service.images.transforms == 0
    assert len(origin.requests) == 1


async def test_s3_as_source_and_result_store(s3_server: S3Server) -> None:
    from tests.support import fixture_path

    sources = s3_server.new_bucket([fixture_path(PHOTO)])
    results = s3_server.new_bucket()
    env = s3_server.env(IMGPROXY_CACHE_S3_BUCKET=results, IMGPROXY_CACHE_MEMORY_SIZE="0")
    url = f"/_/rs:fit:80:80/plain/s3://{sources}/{PHOTO}"
    async with app_with_service(**env) as (client, service):
        first = await client.get(url)
        assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
        assert service.flow.cache is not None
        await service.flow.cache.flush()
        second = await client.get(url)
        assert second.headers["x-cache"] == "HIT-L3"
        assert second.content == first.content


async def test_an_unreachable_results_bucket_never_fails_requests(s3_server: S3Server, origin: Origin) -> None:
    env = s3_server.env(
        IMGPROXY_CACHE_S3_BUCKET="does-not-exist",
        IMGPROXY_CACHE_S3_ENDPOINT="http://127.0.0.1:9",  # nothing listens on the discard port
        IMGPROXY_CACHE_TIMEOUT="0.3",
    )
    async with app_with_service(**env) as (client, _):
        for width in (30, 31, 32, 30):
            started = time.monotonic()
            response = await client.get(f"/_/w:{width}/plain/{origin.url(PHOTO)}")
            assert response.status_code == 200
            assert time.monotonic() - started < 2
