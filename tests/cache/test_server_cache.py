"""The result cache through the real app: tier headers, coalescing, 304s, stale, outages."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import httpx

from tests.cache.redis_server import RedisServer
from tests.conftest import ClientFactory, app_with_service
from tests.support import Origin, fixture_path, size_of

PHOTO = "2569067123_aca715a2ee_o.jpg"


async def test_miss_then_memory_hit(client: httpx.AsyncClient) -> None:
    fixture_path(PHOTO)
    url = f"/_/rs:fill:100:80/plain/local:///{PHOTO}"
    first = await client.get(url)
    second = await client.get(url)
    assert first.headers["x-cache"] == "MISS"
    assert second.headers["x-cache"] == "HIT-L1"
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]
    assert second.headers["content-type"] == "image/jpeg"
    assert second.headers["content-disposition"] == first.headers["content-disposition"]
    head = await client.head(url)
    assert head.headers["x-cache"] == "HIT-L1" and head.content == b""


async def test_formats_and_options_never_share_an_entry(client_factory: ClientFactory) -> None:
    fixture_path(PHOTO)
    async with client_factory(IMGPROXY_AUTO_WEBP="1") as client:
        url = f"/_/w:64/plain/local:///{PHOTO}"
        jpeg = await client.get(url, headers={"Accept": "image/jpeg"})
        webp = await client.get(url, headers={"Accept": "image/webp"})
        assert (jpeg.headers["content-type"], webp.headers["content-type"]) == ("image/jpeg", "image/webp")
        assert webp.headers["x-cache"] == "MISS"
        again = await client.get(url, headers={"Accept": "image/webp,*/*"})
        assert again.headers["content-type"] == "image/webp" and again.headers["x-cache"] == "HIT-L1"
        other = await client.get(f"/_/w:65/plain/local:///{PHOTO}", headers={"Accept": "image/webp"})
        assert other.headers["x-cache"] == "MISS"


async def test_redis_is_shared_between_instances(redis_server: RedisServer, origin: Origin) -> None:
    url = f"/_/rs:fit:90:90/plain/{origin.url(PHOTO)}"
    async with app_with_service(IMGPROXY_CACHE_REDIS_URL=redis_server.url) as (a, service_a):
        assert (await a.get(url)).headers["x-cache"] == "MISS"
        assert service_a.flow.cache is not None
        await service_a.flow.cache.flush()
    async with app_with_service(IMGPROXY_CACHE_REDIS_URL=redis_server.url) as (b, service_b):
        hit = await b.get(url)
        assert hit.status_code == 200 and hit.headers["x-cache"] == "HIT-L2"
        assert size_of(hit.content) == (90, 73)
        assert (await b.get(url)).headers["x-cache"] == "HIT-L1"
        assert service_b.images.transforms == 0
    assert len(origin.requests) == 1


async def test_conditional_requests_are_answered_without_source_traffic(
    client: httpx.AsyncClient, origin: Origin
) -> None:
    url = f"/_/rs:fit:50:50/plain/{origin.url(PHOTO)}"
    first = await client.get(url)
    assert len(origin.requests) == 1
    for _ in range(3):
        conditional = await client.get(url, headers={"If-None-Match": first.headers["etag"]})
        assert conditional.status_code == 304
        assert conditional.headers["etag"] == first.headers["etag"]
    assert len(origin.requests) == 1


async def test_concurrent_misses_do_one_fetch_and_one_transform(origin: Origin) -> None:
    origin.delay = 0.3
    url = f"/_/rs:fill:120:120/plain/{origin.url(PHOTO)}"
    async with app_with_service() as (client, service):
        responses = await asyncio.gather(*(client.get(url) for _ in range(8)))
        assert [r.status_code for r in responses] == [200] * 8
        tiers = sorted(r.headers["x-cache"] for r in responses)
        assert tiers == ["HIT-COALESCED"] * 7 + ["MISS"]
        assert service.images.transforms == 1
        assert len({r.content for r in responses}) == 1
    assert len(origin.requests) == 1


async def test_concurrent_variants_of_one_source_share_one_download(origin: Origin) -> None:
    origin.delay = 0.3
    async with app_with_service(IMGPROXY_WORKERS="4") as (client, service):  # all four admitted at once
        urls = [f"/_/w:{w}/plain/{origin.url(PHOTO)}" for w in (40, 50, 60, 70)]
        responses = await asyncio.gather(*(client.get(u) for u in urls))
        assert [size_of(r.content)[0] for r in responses] == [40, 50, 60, 70]
        assert service.images.transforms == 4
    assert len(origin.requests) == 1


async def test_instances_sharing_redis_coalesce_a_cold_key(redis_server: RedisServer, origin: Origin) -> None:
    origin.delay = 0.4
    url = f"/_/rs:fill:130:70/plain/{origin.url(PHOTO)}"
    # A generous tier timeout: on a loaded machine a 0.25 s Redis call can time out, and the
    # designed fallback (work alone) would then look like a coalescing failure.
    env = {"IMGPROXY_CACHE_REDIS_URL": redis_server.url, "IMGPROXY_CACHE_TIMEOUT": "3"}
    async with app_with_service(**env) as (a, service_a), app_with_service(**env) as (b, service_b):
        responses = await asyncio.gather(*(c.get(url) for c in (a, b, a, b, a, b)))
        assert [r.status_code for r in responses] == [200] * 6
        assert service_a.images.transforms + service_b.images.transforms == 1
        assert sorted(r.headers["x-cache"] for r in responses) == ["HIT-COALESCED"] * 5 + ["MISS"]
    assert len(origin.requests) == 1


async def test_stale_if_error_serves_expired_entries_while_the_source_is_down(
    client_factory: ClientFactory, origin: Origin
) -> None:
    env = {"IMGPROXY_CACHE_TTL": "1", "IMGPROXY_CACHE_STALE_IF_ERROR": "60"}
    async with client_factory(**env) as client:
        url = f"/_/w:60/plain/{origin.url(PHOTO)}"
        fresh = await client.get(url)
        assert fresh.headers["x-cache"] == "MISS"
        await asyncio.sleep(1.1)
        origin.fail_with = 503
        stale = await client.get(url)
        assert stale.status_code == 200
        assert stale.headers["x-cache"] == "STALE"
        assert stale.content == fresh.content
        assert stale.headers["cache-control"] == "max-age=60, public"
        origin.fail_with = 404  # the image is gone, not the source down: no stale answer
        assert (await client.get(url)).status_code == 404
        origin.fail_with = 0
        recovered = await client.get(url)
        assert recovered.status_code == 200 and recovered.headers["x-cache"] == "MISS"


async def test_without_stale_if_error_an_outage_is_an_error(client_factory: ClientFactory, origin: Origin) -> None:
    async with client_factory(IMGPROXY_CACHE_TTL="1") as client:
        url = f"/_/w:61/plain/{origin.url(PHOTO)}"
        assert (await client.get(url)).status_code == 200
        await asyncio.sleep(1.1)
        origin.fail_with = 500
        assert (await client.get(url)).status_code == 502


async def test_source_changed_in_place_is_served_from_cache_until_a_new_url(
    client_factory: ClientFactory, tmp_path: Path
) -> None:
    shutil.copy(fixture_path("320x240.jpg"), tmp_path / "a.jpg")
    async with client_factory(IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(tmp_path)) as client:
        first = await client.get("/_/w:100/plain/local:///a.jpg")
        shutil.copy(fixture_path("flowers.jpeg"), tmp_path / "a.jpg")
        cached = await client.get("/_/w:100/plain/local:///a.jpg")
        assert cached.headers["x-cache"] == "HIT-L1" and cached.content == first.content
        busted = await client.get("/_/w:100/cb:2/plain/local:///a.jpg")
        assert busted.headers["x-cache"] == "MISS"
        assert size_of(busted.content) == (100, 56)  # the new source's aspect ratio


async def test_requests_keep_succeeding_when_redis_dies_mid_run(redis_server: RedisServer, origin: Origin) -> None:
    env = {"IMGPROXY_CACHE_REDIS_URL": redis_server.url, "IMGPROXY_CACHE_TIMEOUT": "0.2"}
    async with app_with_service(**env) as (client, _):
        urls = [f"/_/w:{30 + i % 12}/plain/{origin.url('320x240.jpg')}" for i in range(60)]
        statuses: list[int] = []
        slowest = 0.0
        for i, url in enumerate(urls):
            if i == 20:
                redis_server.stop()
            if i == 45:
                redis_server.start()
            started = time.monotonic()
            response = await client.get(url)
            slowest = max(slowest, time.monotonic() - started)
            statuses.append(response.status_code)
        assert statuses == [200] * len(urls)
        assert slowest < 2.0


async def test_info_takes_the_cross_process_lock(redis_server: RedisServer, origin: Origin) -> None:
    """Two processes (here two apps) sharing Redis compute one document for a cold key, as for images."""
    origin.delay = 0.4
    url = f"/_/info/plain/{origin.url(PHOTO)}"
    env = {"IMGPROXY_CACHE_REDIS_URL": redis_server.url, "IMGPROXY_CACHE_TIMEOUT": "3"}
    async with app_with_service(**env) as (a, _), app_with_service(**env) as (b, _):
        responses = await asyncio.gather(*(c.get(url) for c in (a, b, a, b)))
    assert [r.status_code for r in responses] == [200] * 4
    assert sorted(r.headers["x-cache"] for r in responses) == ["HIT-COALESCED"] * 3 + ["MISS"]
    assert len(origin.requests) == 1  # without the lock each process fetched the source
