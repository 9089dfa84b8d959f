"""/info through the real ASGI app: URL forms, signatures, caching, 304s, limits, errors."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from imgproxy_py.processing import vips
from imgproxy_py.processing.describe import hamming
from imgproxy_py.security import compute_signature
from imgproxy_py.server.app import create_app
from tests.conftest import ClientFactory, make_settings
from tests.support import Origin, asgi_call, fixture_path

KEY = "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881"
SALT = "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5"
PHOTO = "2569067123_aca715a2ee_o.jpg"


def sig(path: str) -> str:
    return compute_signature(bytes.fromhex(KEY), bytes.fromhex(SALT), path)


async def get_info(client: httpx.AsyncClient, url: str, **kwargs: Any) -> dict[str, Any]:
    response = await client.get(url, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    data: dict[str, Any] = response.json()
    return data


async def test_info_json_and_headers(client: httpx.AsyncClient) -> None:
    fixture_path("Landscape_6.jpg")
    response = await client.get("/_/info/plain/local:///Landscape_6.jpg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "max-age=31536000, public"
    assert response.headers["etag"].startswith('"')
    assert "last-modified" in response.headers
    assert "sandbox" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-cache"] == "MISS"
    data = response.json()
    assert (data["width"], data["height"], data["orientation"]) == (600, 450, 6)
    assert data["file_size"] == fixture_path("Landscape_6.jpg").stat().st_size


async def test_imgproxy_url_form_and_base64_sources(client: httpx.AsyncClient) -> None:
    fixture_path(PHOTO)
    expected = await get_info(client, f"/_/info/plain/local:///{PHOTO}")
    assert await get_info(client, f"/info/_/plain/local:///{PHOTO}") == expected
    encoded = base64.urlsafe_b64encode(f"local:///{PHOTO}".encode()).decode().rstrip("=")
    chunked = "/".join(encoded[i : i + 9] for i in range(0, len(encoded), 9))
    assert await get_info(client, f"/_/info/{chunked}") == expected
    assert await get_info(client, f"/info/_/cb:x/{encoded}") == expected


@pytest.mark.parametrize(
    ("name", "facts"),
    [
        ("Landscape_6.jpg", {"format": "jpeg", "width": 600, "height": 450, "orientation": 6}),
        ("Channel_digital_image_CMYK_color.jpg", {"colorspace": "cmyk", "bands": 4, "alpha": False}),
        ("with-alpha.png", {"format": "png", "alpha": True, "bands": 4}),
        ("animated-loop-3.gif", {"format": "gif", "pages": 10}),
        ("sdr_cosmos12920_cicp1-13-6_yuv444_full_qp10.avif", {"format": "avif", "width": 2048, "height": 858}),
        ("check.svg", {"format": "svg", "width": 100, "height": 100, "average_color": "#008000"}),
    ],
)
async def test_info_for_each_kind_of_image(client: httpx.AsyncClient, name: str, facts: dict[str, Any]) -> None:
    fixture_path(name)
    data = await get_info(client, f"/_/info/plain/local:///{name}")
    assert {key: data[key] for key in facts} == facts
    assert len(data["phash"]) == 16 and data["blurhash"] and data["dominant_colors"]
    if name.endswith(".gif"):
        assert data["animation"]["frames"] == 10 and data["animation"]["loop"] == 3


async def test_signed_info_urls(client_factory: ClientFactory) -> None:
    fixture_path(PHOTO)
    path = f"/plain/local:///{PHOTO}"
    async with client_factory(IMGPROXY_KEY=KEY, IMGPROXY_SALT=SALT) as client:
        # The lead's form: the signature covers "/info/…".
        assert (await client.get(f"/{sig('/info' + path)}/info{path}")).status_code == 200
        # imgproxy Pro's form: "/info" comes first and the signature covers what follows it.
        assert (await client.get(f"/info/{sig(path)}{path}")).status_code == 200
        bad = [
            f"/insecure/info{path}",
            f"/info/insecure{path}",
            f"/{sig(path)}/info{path}",  # an image signature does not open the second form
            f"/info/{sig('/info' + path)}{path}",
            f"/{sig('/info' + path)}/info/cb:1{path}",  # tampered
            f"/{'A' * 43}/info{path}",
        ]
        for url in bad:
            response = await client.get(url)
            assert response.status_code == 403, url
            assert "cache-control" not in response.headers


async def test_conditional_requests(client_factory: ClientFactory) -> None:
    fixture_path(PHOTO)
    url = f"/_/info/plain/local:///{PHOTO}"
    for cache_size in ("256", "0"):  # with the result cache and without it
        async with client_factory(IMGPROXY_CACHE_MEMORY_SIZE=cache_size) as client:
            first = await client.get(url)
            etag = first.headers["etag"]
            for header in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
                again = await client.get(url, headers={"If-None-Match": header})
                assert again.status_code == 304, (cache_size, header)
                assert again.content == b""
                assert again.headers["etag"] == etag
                assert again.headers["cache-control"] == "max-age=31536000, public"
            other = await client.get(url, headers={"If-None-Match": '"nope"'})
            assert other.status_code == 200 and other.json() == first.json()


async def test_etag_follows_the_source_and_the_options(client_factory: ClientFactory, tmp_path: Path) -> None:
    shutil.copy(fixture_path("320x240.jpg"), tmp_path / "a.jpg")
    env = {"IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(tmp_path), "IMGPROXY_CACHE_MEMORY_SIZE": "0"}
    async with client_factory(**env) as client:
        first = await client.get("/_/info/plain/local:///a.jpg")
        assert (await client.get("/_/info/plain/local:///a.jpg")).headers["etag"] == first.headers["etag"]
        busted = await client.get("/_/info/cb:2/plain/local:///a.jpg")
        assert busted.headers["etag"] != first.headers["etag"]
        image = await client.get("/_/plain/local:///a.jpg")
        assert image.headers["etag"] != first.headers["etag"]
        time.sleep(0.01)
        shutil.copy(fixture_path("Landscape_1.jpg"), tmp_path / "a.jpg")
        changed = await client.get("/_/info/plain/local:///a.jpg", headers={"If-None-Match": first.headers["etag"]})
        assert changed.status_code == 200
        assert changed.headers["etag"] != first.headers["etag"]
        assert changed.json()["width"] == 600


async def test_ttl_and_expires(client_factory: ClientFactory) -> None:
    fixture_path(PHOTO)
    async with client_factory(IMGPROXY_TTL="3600") as client:
        plain = await client.get(f"/_/info/plain/local:///{PHOTO}")
        assert plain.headers["cache-control"] == "max-age=3600, public"
        soon = int(time.time()) + 600
        expiring = await client.get(f"/_/info/exp:{soon}/plain/local:///{PHOTO}")
        max_age = int(expiring.headers["cache-control"].split("=")[1].split(",")[0])
        assert 590 <= max_age <= 600
        expired = await client.get(f"/_/info/exp:{int(time.time()) - 5}/plain/local:///{PHOTO}")
        assert expired.status_code == 404


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/_/info/rs:fit:10:10/plain/local:///{PHOTO}", 404),  # processing options are not info options
        (f"/_/info/size:1/plain/local:///{PHOTO}", 404),
        (f"/_/info/plain/local:///{PHOTO}@png", 404),
        (f"/_/info/cb:1:2/plain/local:///{PHOTO}", 404),
        ("/_/info/", 404),
        ("/_/info/plain/", 404),
        ("/info/_/", 404),
        ("/_/info/plain/local:///missing.jpg", 404),
        ("/_/info/plain/s3://bucket/x.jpg", 404),
        ("/_/info/plain/local:///truncated.jpg", 422),
        ("/_/info/plain/local:///corrupt-header.jpg", 422),
        ("/_/info/plain/local:///giant-image.jpg", 422),
        ("/_/info/plain/local:///SOURCES.md", 422),
    ],
)
async def test_errors(client_factory: ClientFactory, path: str, status: int) -> None:
    root = fixture_path(PHOTO).parent
    if "SOURCES" in path:  # a text file, not an image
        root = root.parent
    async with client_factory(IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(root)) as client:
        response = await client.get(path)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("text/plain")
        assert "cache-control" not in response.headers


async def test_decompression_bomb_is_422_fast(client: httpx.AsyncClient) -> None:
    fixture_path("65536-uint32-limit.png")
    started = time.monotonic()
    response = await client.get("/_/info/plain/local:///65536-uint32-limit.png")
    assert response.status_code == 422
    assert time.monotonic() - started < 1.0


async def test_source_file_size_limit(client_factory: ClientFactory) -> None:
    fixture_path(PHOTO)
    async with client_factory(IMGPROXY_MAX_SRC_FILE_SIZE="1000") as client:
        assert (await client.get(f"/_/info/plain/local:///{PHOTO}")).status_code == 422


async def test_result_cache_and_http_source(client: httpx.AsyncClient, origin: Origin) -> None:
    url = f"/_/info/plain/{origin.url(PHOTO)}"
    first = await client.get(url)
    assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
    second = await client.get(url)
    assert second.headers["x-cache"] == "HIT-L1"
    assert second.content == first.content
    not_modified = await client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert not_modified.status_code == 304
    assert len(origin.requests) == 1  # the cache answered; the source was asked once
    # The image endpoint for the same source keeps its own entries.
    image = await client.get(f"/_/plain/{origin.url(PHOTO)}")
    assert image.headers["content-type"] == "image/jpeg" and image.headers["x-cache"] == "MISS"
    again = await client.get(url)
    assert again.headers["content-type"] == "application/json" and again.headers["x-cache"] == "HIT-L1"


async def test_concurrent_requests_share_one_fetch_and_computation(client: httpx.AsyncClient, origin: Origin) -> None:
    origin.delay = 0.2
    url = f"/_/info/plain/{origin.url(PHOTO)}"
    responses = await asyncio.gather(*(client.get(url) for _ in range(5)))
    assert {r.status_code for r in responses} == {200}
    assert sorted(r.headers["x-cache"] for r in responses) == ["HIT-COALESCED"] * 4 + ["MISS"]
    assert len(origin.requests) == 1


async def test_source_errors_map_like_images(client: httpx.AsyncClient, origin: Origin) -> None:
    assert (await client.get(f"/_/info/plain/{origin.url('status/404')}")).status_code == 404
    assert (await client.get(f"/_/info/plain/{origin.url('status/500')}")).status_code == 502
    assert (await client.get(f"/_/info/plain/{origin.url('truncate/' + PHOTO)}")).status_code == 422


async def test_stale_if_error(client_factory: ClientFactory, origin: Origin) -> None:
    async with client_factory(IMGPROXY_CACHE_TTL="1", IMGPROXY_CACHE_STALE_IF_ERROR="60") as client:
        url = f"/_/info/plain/{origin.url(PHOTO)}"
        fresh = await client.get(url)
        await asyncio.sleep(1.1)
        origin.fail_with = 503
        stale = await client.get(url)
        assert stale.status_code == 200 and stale.headers["x-cache"] == "STALE"
        assert stale.content == fresh.content
        assert stale.headers["cache-control"] == "max-age=60, public"


async def test_head_and_path_prefix(client_factory: ClientFactory) -> None:
    fixture_path(PHOTO)
    async with client_factory(IMGPROXY_PATH_PREFIX="/img") as client:
        assert (await client.get(f"/img/_/info/plain/local:///{PHOTO}")).status_code == 200
        assert (await client.get(f"/img/info/_/plain/local:///{PHOTO}")).status_code == 200
        head = await client.head(f"/img/_/info/plain/local:///{PHOTO}")
        assert head.status_code == 200 and head.content == b""


async def test_phash_over_http_is_stable_under_reencoding(client_factory: ClientFactory, tmp_path: Path) -> None:
    original = fixture_path(PHOTO)
    shutil.copy(original, tmp_path / "a.jpg")
    (tmp_path / "b.jpg").write_bytes(bytes(vips.open_source(original.read_bytes()).jpegsave_buffer(Q=90)))
    shutil.copy(fixture_path("Landscape_1.jpg"), tmp_path / "c.jpg")
    async with client_factory(IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(tmp_path)) as client:
        a, b, c = [(await get_info(client, f"/_/info/plain/local:///{n}.jpg"))["phash"] for n in "abc"]
    assert hamming(a, b) <= 4
    assert hamming(a, c) >= 16


async def test_info_shares_the_image_endpoints_machinery(client: httpx.AsyncClient) -> None:
    app = client._transport.app  # type: ignore[attr-defined]
    info, images = app.state.info, app.state.service
    assert info.flow is images.flow  # one flow: the same workers, shared downloads, cache and lock


async def test_video_info_and_still_through_the_app(tmp_path: Path, client_factory: ClientFactory) -> None:
    """With IMGPROXY_ENABLE_VIDEO_THUMBNAILS, /info describes a clip and the image URL makes a still."""
    from tests.security.hostile_codecs import clip

    (tmp_path / "a.mp4").write_bytes(clip(frames=20, size=(96, 64)))
    async with client_factory(IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(tmp_path)) as client:
        assert (await client.get("/_/info/plain/local:///a.mp4")).status_code == 422  # off by default
    env = {"IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(tmp_path), "IMGPROXY_ENABLE_VIDEO_THUMBNAILS": "true"}
    async with client_factory(**env) as client:
        data = await get_info(client, "/_/info/plain/local:///a.mp4")
        assert (data["format"], data["mime_type"], data["width"], data["height"]) == ("mp4", "video/mp4", 96, 64)
        assert data["video"]["codec"] == "h264" and data["video"]["duration"] == pytest.approx(2.0, abs=0.15)
        still = await client.get("/_/rs:fill:48:32/vts:1/plain/local:///a.mp4@webp")
        assert still.status_code == 200 and still.headers["content-type"] == "image/webp"
        img = vips.Image.new_from_buffer(still.content, "")
        assert (img.width, img.height) == (48, 32)


# --- /info through the one result flow: what it gained with images' machinery ---------------


def _access_lines(out: str) -> list[dict[str, Any]]:
    return [line for line in map(json.loads, filter(None, out.splitlines())) if line.get("msg") == "request"]


async def test_info_requests_are_in_the_access_log_with_cache_tier_errors_and_spans(
    client_factory: ClientFactory, origin: Origin, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    async with client_factory(IMGPROXY_LOG_FORMAT="json") as client:
        url = f"/_/info/plain/{origin.url(PHOTO)}"
        assert (await client.get(url)).status_code == 200
        assert (await client.get(url)).status_code == 200
        assert (await client.get(f"/_/info/plain/{origin.url('status/404')}")).status_code == 404
    lines = _access_lines(capfd.readouterr().out)  # the log is flushed when the app stops
    miss, hit, missing = lines[-3:]
    assert miss["cache"] == "MISS" and miss["source_bytes"] > 0 and miss["result_bytes"] > 0
    assert {"queue", "downloading_source_image", "processing_image"} <= set(miss["spans_ms"])
    assert hit["cache"] == "HIT-L1" and hit["result_bytes"] == miss["result_bytes"]
    assert missing["status"] == 404 and missing["error"] == "download"


async def test_info_errors_and_cache_tiers_are_counted(client_factory: ClientFactory, origin: Origin) -> None:
    async with client_factory(IMGPROXY_PROMETHEUS_BIND="127.0.0.1:9") as client:
        sample = client._transport.app.state.metrics.registry.get_sample_value  # type: ignore[attr-defined]
        url = f"/_/info/plain/{origin.url(PHOTO)}"
        await client.get(url)
        await client.get(url)
        assert (await client.get(f"/_/info/plain/{origin.url('status/500')}")).status_code == 502
        assert (await client.get("/_/info/zz:1/plain/local:///x.jpg")).status_code == 404
        assert sample("cache_misses_total") == 1  # an error is no miss, as for images
        assert sample("cache_hits_total", {"tier": "L1"}) == 1
        assert sample("errors_total", {"type": "download"}) == 1
        assert sample("errors_total", {"type": "path_parsing"}) == 1


async def test_info_work_stops_when_the_client_disconnects(origin: Origin) -> None:
    origin.delay = 5
    app = create_app(make_settings())
    async with app.router.lifespan_context(app):
        started = time.monotonic()
        sent = await asgi_call(app, f"/_/info/plain/{origin.url(PHOTO)}", disconnect_after=0.3)
        assert sent == [] or sent[0]["status"] == 499
        assert time.monotonic() - started < 3  # not answered after the source's delay
        flow = app.state.info.flow
        assert len(flow.flights) == 0 and len(flow.fetches) == 0  # the fetch was abandoned with it


@pytest.mark.parametrize(
    ("env", "status"),
    [({"IMGPROXY_MAX_SRC_RESOLUTION": "0.1"}, 422), ({"IMGPROXY_MAX_SRC_FILE_SIZE": "1000"}, 422)],
)
async def test_info_and_images_apply_the_same_source_limits(
    client_factory: ClientFactory, env: dict[str, str], status: int
) -> None:
    fixture_path(PHOTO)
    async with client_factory(**env) as client:
        image = await client.get(f"/_/rs:fit:100:100/plain/local:///{PHOTO}")
        info = await client.get(f"/_/info/plain/local:///{PHOTO}")
    assert image.status_code == info.status_code == status
