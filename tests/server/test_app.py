"""End-to-end through the real ASGI app: URLs, signatures, headers, negotiation, errors."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from imgproxy_py.security import compute_signature
from tests.codec_samples import decode_any
from tests.conftest import ClientFactory
from tests.support import Origin, fixture_path, load, loader_of, size_of

PHOTO = "2569067123_aca715a2ee_o.jpg"
KEY = "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881"
SALT = "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5"


def signed(path: str, size: int = 32) -> str:
    sig = compute_signature(bytes.fromhex(KEY), bytes.fromhex(SALT), path, size)
    return f"/{sig}{path}"


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"


async def test_the_issue_example_is_an_exact_webp(client: httpx.AsyncClient) -> None:
    fixture_path(PHOTO)
    response = await client.get(f"/insecure/rs:fill:300:200/g:sm/plain/local:///{PHOTO}@webp")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/webp"
    assert int(response.headers["content-length"]) == len(response.content)
    assert loader_of(response.content).startswith("webpload")
    assert size_of(response.content) == (300, 200)


async def test_base64_source_url_in_chunks(client: httpx.AsyncClient) -> None:
    import base64

    encoded = base64.urlsafe_b64encode(f"local:///{PHOTO}".encode()).decode().rstrip("=")
    chunked = "/".join(encoded[i : i + 7] for i in range(0, len(encoded), 7))
    response = await client.get(f"/_/rs:fit:100:100/{chunked}.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert max(size_of(response.content)) == 100


async def test_signed_urls(client_factory: ClientFactory) -> None:
    fixture_path(PHOTO)
    path = f"/rs:fit:300:300/plain/local:///{PHOTO}"
    async with client_factory(IMGPROXY_KEY=KEY, IMGPROXY_SALT=SALT) as client:
        good = await client.get(signed(path))
        assert good.status_code == 200
        assert size_of(good.content) == (300, 245)
        for bad in (f"/insecure{path}", f"/{'A' * 43}{path}", signed(path)[:-3] + "abc", signed(path, 8)):
            response = await client.get(bad)
            assert response.status_code == 403, bad
            assert "cache-control" not in response.headers
        tampered = signed(path).replace("300:300", "301:300")
        assert (await client.get(tampered)).status_code == 403
    async with client_factory(IMGPROXY_KEY=KEY, IMGPROXY_SALT=SALT, IMGPROXY_SIGNATURE_SIZE="8") as client:
        assert (await client.get(signed(path, 8))).status_code == 200
    rotated = {"IMGPROXY_KEY": f"{'ab' * 32},{KEY}", "IMGPROXY_SALT": f"{'cd' * 32},{SALT}"}
    async with client_factory(**rotated) as client:
        assert (await client.get(signed(path))).status_code == 200


async def test_options_in_the_signature_place_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/rs:fit:300:300/plain/local:///{PHOTO}")
    assert response.status_code == 403
    assert "signature" in response.text


async def test_cdn_mangled_urls_still_work(client: httpx.AsyncClient) -> None:
    fixture_path(PHOTO)
    response = await client.get(f"/_/rs%3Afit%3A50%3A50/plain/local:/{PHOTO}")
    assert response.status_code == 200
    assert max(size_of(response.content)) == 50


async def test_cache_headers_and_disposition(client: httpx.AsyncClient) -> None:
    fixture_path(PHOTO)
    response = await client.get(f"/_/rs:fit:100:100/plain/local:///{PHOTO}")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "max-age=31536000, public"
    assert response.headers["content-disposition"] == 'inline; filename="2569067123_aca715a2ee_o.jpg"'
    assert response.headers["etag"].startswith('"')
    assert "last-modified" in response.headers
    assert "vary" not in response.headers
    named = await client.get(f"/_/fn:holiday/att:1/rs:fit:100:100/plain/local:///{PHOTO}@png")
    assert named.headers["content-disposition"] == 'attachment; filename="holiday.png"'


async def test_ttl_and_expires(client_factory: ClientFactory) -> None:
    fixture_path(PHOTO)
    async with client_factory(IMGPROXY_TTL="3600") as client:
        plain = await client.get(f"/_/w:50/plain/local:///{PHOTO}")
        assert plain.headers["cache-control"] == "max-age=3600, public"
        soon = int(time.time()) + 600
        expiring = await client.get(f"/_/w:50/exp:{soon}/plain/local:///{PHOTO}")
        max_age = int(expiring.headers["cache-control"].split("=")[1].split(",")[0])
        assert 590 <= max_age <= 600
        expired = await client.get(f"/_/w:50/exp:{int(time.time()) - 5}/plain/local:///{PHOTO}")
        assert expired.status_code == 404


async def test_etag_changes_whenever_bytes_would(client_factory: ClientFactory, tmp_path: Path) -> None:
    shutil.copy(fixture_path(PHOTO), tmp_path / "a.jpg")
    # No result cache: with one, a source changed in place is seen only after the TTL (tests/cache).
    env = {
        "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(tmp_path),
        "IMGPROXY_AUTO_WEBP": "true",
        "IMGPROXY_CACHE_MEMORY_SIZE": "0",
    }
    async with client_factory(**env) as client:

        async def etag(path: str, accept: str = "") -> str:
            response = await client.get(path, headers={"Accept": accept})
            assert response.status_code == 200
            return response.headers["etag"]

        base = await etag("/_/w:100/plain/local:///a.jpg")
        assert base == await etag("/_/width:100/plain/local:///a.jpg")  # same options, other spelling
        assert base != await etag("/_/w:101/plain/local:///a.jpg")
        assert base != await etag("/_/w:100/plain/local:///a.jpg@png")
        assert base != await etag("/_/w:100/plain/local:///a.jpg", accept="image/webp")
        assert base != await etag("/_/w:100/cb:2/plain/local:///a.jpg")
        path = tmp_path / "a.jpg"
        path.write_bytes(path.read_bytes())
        os.utime(path, (time.time() + 10, time.time() + 10))
        assert base != await etag("/_/w:100/plain/local:///a.jpg")


async def test_conditional_get_and_head(client: httpx.AsyncClient) -> None:
    fixture_path(PHOTO)
    url = f"/_/rs:fill:120:80/plain/local:///{PHOTO}"
    first = await client.get(url)
    etag = first.headers["etag"]
    again = await client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == first.headers["cache-control"]
    listed = await client.get(url, headers={"If-None-Match": f'"nope", W/{etag}'})
    assert listed.status_code == 304
    other = await client.get(url, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200
    head = await client.head(url)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == "image/jpeg"
    assert head.headers["content-length"] == first.headers["content-length"]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("image/avif,image/webp,*/*", "image/avif"),
        ("image/webp,*/*", "image/webp"),
        ("image/avif;q=0,image/webp;q=0,*/*", "image/jpeg"),  # q=0: not acceptable
        ("image/avif;q=0,image/webp;q=0.5", "image/webp"),
        ("text/html,*/*", "image/jpeg"),
        ("", "image/jpeg"),
    ],
)
async def test_accept_negotiation(client_factory: ClientFactory, accept: str, expected: str) -> None:
    fixture_path(PHOTO)
    async with client_factory(IMGPROXY_AUTO_WEBP="1", IMGPROXY_AUTO_AVIF="1") as client:
        response = await client.get(f"/_/rs:fit:200:200/plain/local:///{PHOTO}", headers={"Accept": accept})
        assert response.status_code == 200
        assert response.headers["content-type"] == expected
        assert response.headers["vary"] == "Accept"
        assert load(response.content).width == 200
        explicit = await client.get(f"/_/rs:fit:200:200/plain/local:///{PHOTO}@png", headers={"Accept": accept})
        assert explicit.headers["content-type"] == "image/png"


async def test_jxl_is_chosen_only_when_enabled(client_factory: ClientFactory) -> None:
    fixture_path(PHOTO)
    accept = {"Accept": "image/jxl,image/avif,image/webp,*/*"}
    url = f"/_/rs:fit:120:120/plain/local:///{PHOTO}"
    async with client_factory(IMGPROXY_AUTO_WEBP="1", IMGPROXY_AUTO_AVIF="1") as client:
        assert (await client.get(url, headers=accept)).headers["content-type"] == "image/avif"
    async with client_factory(IMGPROXY_AUTO_JXL="1", IMGPROXY_AUTO_WEBP="1") as client:
        response = await client.get(url, headers=accept)
        assert response.headers["content-type"] == "image/jxl"
        assert response.headers["vary"] == "Accept"
        assert decode_any(response.content).width == 120
        webp_only = await client.get(url, headers={"Accept": "image/webp"})
        assert webp_only.headers["content-type"] == "image/webp"
        assert (await client.get(f"{url}@png", headers=accept)).headers["content-type"] == "image/png"
    async with client_factory(IMGPROXY_ENFORCE_JXL="1") as client:
        assert (await client.get(f"{url}@png", headers=accept)).headers["content-type"] == "image/jxl"


async def test_enforce_overrides_explicit_format(client_factory: ClientFactory) -> None:
    fixture_path(PHOTO)
    async with client_factory(IMGPROXY_ENFORCE_WEBP="1") as client:
        response = await client.get(f"/_/w:50/plain/local:///{PHOTO}@png", headers={"Accept": "image/webp"})
        assert response.headers["content-type"] == "image/webp"
        plain = await client.get(f"/_/w:50/plain/local:///{PHOTO}@png", headers={"Accept": "image/png"})
        assert plain.headers["content-type"] == "image/png"


async def test_presets(client_factory: ClientFactory) -> None:
    fixture_path(PHOTO)
    presets = "default=q:50,thumb=rs:fill:64:64/f:png"
    async with client_factory(IMGPROXY_PRESETS=presets) as client:
        response = await client.get(f"/_/pr:thumb/plain/local:///{PHOTO}")
        assert response.headers["content-type"] == "image/png"
        assert size_of(response.content) == (64, 64)
        low = await client.get(f"/_/w:300/plain/local:///{PHOTO}")
        high = await client.get(f"/_/w:300/q:95/plain/local:///{PHOTO}")
        assert len(low.content) < len(high.content)
        assert (await client.get(f"/_/pr:nope/plain/local:///{PHOTO}")).status_code == 404


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/", 404),
        ("/_", 404),
        ("/_/", 404),
        ("/_/w:100", 404),
        ("/_/nope:1/plain/local:///x.jpg", 404),
        ("/_/w:abc/plain/local:///x.jpg", 404),
        ("/_/fit/100/100/plain/local:///x.jpg", 404),
        ("/_/w:100/plain/local:///x.jpg@jpg@png", 404),
        ("/_/w:100/plain/local:///x.jpg@xyz", 404),
        ("/_/w:100/!!!notbase64.png", 404),
        ("/_/w:100/plain/local:///missing.jpg", 404),
        ("/_/w:100/plain/local:///../support.py", 404),
        ("/_/w:100/plain/local:///..%2fsupport.py", 404),
        ("/_/w:100/plain/gs://bucket/x.jpg", 404),
        ("/_/w:100/plain/ftp://example.com/x.jpg", 404),
        ("/_/w:100/plain/local:///65536-uint32-limit.png", 422),
        ("/_/w:100/plain/local:///giant-image.jpg", 422),
        ("/_/w:100/plain/local:///truncated.jpg", 422),
        ("/_/w:100/plain/local:///truncated.png", 422),
        ("/_/w:100/plain/local:///corrupt-header.jpg", 422),
        ("/_/w:100/plain/local:///SOURCES.md", 404),
        ("/_/w:100/plain/local:///320x240.jpg@svg", 422),  # SVG out only for SVG sources
    ],
)
async def test_error_statuses(client: httpx.AsyncClient, path: str, status: int) -> None:
    fixture_path(PHOTO)
    started = time.monotonic()
    response = await client.get(path)
    assert response.status_code == status, response.text
    assert "cache-control" not in response.headers
    assert response.headers["content-type"].startswith("text/plain")
    assert len(response.text) < 200
    assert "Traceback" not in response.text and "/work/" not in response.text
    assert time.monotonic() - started < 2


async def test_disabled_scheme_names_its_setting(client: httpx.AsyncClient) -> None:
    response = await client.get("/_/w:10/plain/s3://bucket/key.jpg")
    assert response.status_code == 404
    assert "IMGPROXY_USE_S3" in response.text


async def test_decompression_bomb_is_refused_quickly(client: httpx.AsyncClient) -> None:
    fixture_path("65536-uint32-limit.png")
    started = time.monotonic()
    response = await client.get("/_/w:100/plain/local:///65536-uint32-limit.png")
    assert response.status_code == 422
    assert time.monotonic() - started < 2  # decoding it would take minutes and 16 GB


async def test_larger_resolution_limit_admits_the_giant(client_factory: ClientFactory) -> None:
    fixture_path("giant-image.jpg")
    async with client_factory(IMGPROXY_MAX_SRC_RESOLUTION="300") as client:
        response = await client.get("/_/rs:fit:200:200/plain/local:///giant-image.jpg")
        assert response.status_code == 200
        assert size_of(response.content) == (200, 140)


async def test_max_src_file_size(client_factory: ClientFactory) -> None:
    size = fixture_path(PHOTO).stat().st_size
    async with client_factory(IMGPROXY_MAX_SRC_FILE_SIZE=str(size - 1)) as client:
        assert (await client.get(f"/_/w:10/plain/local:///{PHOTO}")).status_code == 422
        assert (await client.get("/_/w:10/plain/local:///320x240.jpg")).status_code == 200


# --- http sources --------------------------------------------------------------------------


async def test_http_source(client: httpx.AsyncClient, origin: Origin) -> None:
    response = await client.get(f"/_/rs:fill:100:100/plain/{origin.url(PHOTO)}@webp")
    assert response.status_code == 200
    assert size_of(response.content) == (100, 100)
    redirected = await client.get(f"/_/w:50/plain/{origin.url('redirect/320x240.jpg')}")
    assert redirected.status_code == 200
    assert size_of(redirected.content) == (50, 38)


@pytest.mark.parametrize(
    ("path", "status"),
    [("status/404", 404), ("status/403", 403), ("status/410", 410), ("status/500", 502), ("status/503", 502)],
)
async def test_http_source_errors_map(client: httpx.AsyncClient, origin: Origin, path: str, status: int) -> None:
    response = await client.get(f"/_/w:50/plain/{origin.url(path)}")
    assert response.status_code == status
    assert "error body" not in response.text


async def test_http_truncated_and_timeout(client_factory: ClientFactory, origin: Origin) -> None:
    async with client_factory(IMGPROXY_DOWNLOAD_TIMEOUT="0.3") as client:
        truncated = await client.get(f"/_/w:50/plain/{origin.url('truncate/' + PHOTO)}")
        assert truncated.status_code == 422
        origin.delay = 1.0
        timed_out = await client.get(f"/_/w:50/plain/{origin.url(PHOTO)}")
        assert timed_out.status_code == 504


async def test_loopback_sources_are_refused_by_default(client_factory: ClientFactory, origin: Origin) -> None:
    async with client_factory(IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES="false") as client:
        for url in (origin.url(PHOTO), f"http://localhost:{origin.port}/{PHOTO}", f"http://[::1]:{origin.port}/x"):
            response = await client.get(f"/_/w:50/plain/{url}")
            assert response.status_code == 404, url
            assert response.text == "Invalid source URL"
    assert origin.requests == []


async def test_request_timeout_is_503(client_factory: ClientFactory, origin: Origin) -> None:
    origin.delay = 1.0
    async with client_factory(IMGPROXY_TIMEOUT="0.3", IMGPROXY_DOWNLOAD_TIMEOUT="5") as client:
        response = await client.get(f"/_/w:50/plain/{origin.url(PHOTO)}")
        assert response.status_code == 503


async def test_non_ascii_filenames_are_encoded_per_rfc_6266(client: httpx.AsyncClient) -> None:
    import base64

    fixture_path(PHOTO)
    name = base64.urlsafe_b64encode('фото "1"'.encode()).decode().rstrip("=")
    for _ in range(2):  # the second answer comes from the cache with memoised headers
        response = await client.get(f"/_/fn:{name}:1/w:20/plain/local:///{PHOTO}")
        assert response.status_code == 200
        disposition = response.headers["content-disposition"]
        assert disposition.startswith('inline; filename="____ %221%22.jpg"; ')
        assert disposition.endswith("filename*=UTF-8''%D1%84%D0%BE%D1%82%D0%BE%20%221%22.jpg")


async def test_expiring_urls_are_rechecked_on_every_request(client: httpx.AsyncClient) -> None:
    fixture_path(PHOTO)
    url = f"/_/w:30/exp:{int(time.time()) + 2}/plain/local:///{PHOTO}"
    assert (await client.get(url)).status_code == 200
    assert (await client.get(url)).headers["x-cache"] == "HIT-L1"
    await asyncio.sleep(2.1)
    assert (await client.get(url)).status_code == 404


async def test_client_hints_set_dpr_and_width_when_enabled(client_factory: ClientFactory) -> None:
    fixture_path(PHOTO)
    url = f"/_/q:80/plain/local:///{PHOTO}"  # no width in the URL: a hint may supply it
    async with client_factory(IMGPROXY_ENABLE_CLIENT_HINTS="true") as client:
        plain = await client.get(url)
        assert size_of(plain.content) == (2725, 2225)
        assert plain.headers["vary"] == "Sec-CH-DPR, DPR, Sec-CH-Width, Width"
        # Width 600 device px at DPR 2 → width 300 CSS px × dpr 2 → 600 px wide
        hinted = await client.get(url, headers={"Sec-CH-DPR": "2", "Sec-CH-Width": "600"})
        assert size_of(hinted.content) == (600, 490)
        legacy = await client.get(url, headers={"DPR": "1", "Width": "400"})
        assert size_of(legacy.content) == (400, 327)
        explicit = await client.get(f"/_/w:100/plain/local:///{PHOTO}", headers={"Width": "400"})
        assert size_of(explicit.content)[0] == 100  # the URL's own options win
        for bad in ({"DPR": "0"}, {"DPR": "9"}, {"DPR": "nan"}, {"Width": "-5"}, {"Width": "abc"}):
            assert size_of((await client.get(url, headers=bad)).content) == (2725, 2225)
    async with client_factory() as client:  # disabled: hints ignored, no Vary
        ignored = await client.get(url, headers={"Width": "400"})
        assert size_of(ignored.content) == (2725, 2225) and "vary" not in ignored.headers


async def test_raw_streams_the_source_untouched(client: httpx.AsyncClient, origin: Origin) -> None:
    original = fixture_path("with-alpha.png").read_bytes()
    for url in ("/_/raw:1/w:10/plain/local:///with-alpha.png@jpg", f"/_/raw:1/plain/{origin.url('with-alpha.png')}"):
        response = await client.get(url)
        assert response.status_code == 200
        assert response.content == original  # byte for byte: nothing was processed
        assert response.headers["content-type"] == "image/png"
        assert response.headers["content-disposition"] == 'inline; filename="with-alpha.png"'
        again = await client.get(url, headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304


async def test_raw_never_serves_a_source_as_html(client_factory: ClientFactory, tmp_path: Path) -> None:
    (tmp_path / "page.jpg").write_bytes(b"<html><script>alert(1)</script></html>")
    async with client_factory(IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(tmp_path)) as client:
        response = await client.get("/_/raw:1/plain/local:///page.jpg")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/octet-stream"
        assert "sandbox" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
