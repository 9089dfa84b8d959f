"""The in-process cache hit answered before routing (server/hits.py) keeps every rule of the full path."""

from __future__ import annotations

import time
from typing import Any

import pytest

from imgproxy_py.server.hits import ServeMemoryHits
from tests.conftest import ClientFactory
from tests.support import fixture_path, http_scope, size_of

PHOTO = "2569067123_aca715a2ee_o.jpg"


async def test_hits_still_need_the_secret(client_factory: ClientFactory) -> None:
    fixture_path(PHOTO)
    auth = {"Authorization": "Bearer s3cr3t"}
    async with client_factory(IMGPROXY_SECRET="s3cr3t") as client:
        url = f"/_/w:30/plain/local:///{PHOTO}"
        assert (await client.get(url, headers=auth)).headers["x-cache"] == "MISS"
        assert (await client.get(url, headers=auth)).headers["x-cache"] == "HIT-L1"
        refused = await client.get(url)
        assert refused.status_code == 403 and "x-cache" not in refused.headers


async def test_hits_carry_request_ids_and_validators(client_factory: ClientFactory) -> None:
    fixture_path(PHOTO)
    async with client_factory() as client:
        url = f"/_/w:40/plain/local:///{PHOTO}"
        first = await client.get(url)
        hit = await client.get(url, headers={"X-Request-ID": "trace-123"})
        assert hit.headers["x-cache"] == "HIT-L1" and hit.content == first.content
        assert hit.headers["x-request-id"] == "trace-123"
        generated = {(await client.get(url)).headers["x-request-id"] for _ in range(3)}
        assert len(generated) == 3  # unique per request
        for name in ("etag", "cache-control", "content-type", "content-disposition", "content-security-policy"):
            assert hit.headers[name] == first.headers[name], name
        assert int(hit.headers["content-length"]) == len(hit.content)
        not_modified = await client.get(url, headers={"If-None-Match": first.headers["etag"]})
        assert not_modified.status_code == 304 and not_modified.headers["x-cache"] == "HIT-L1"
        assert not_modified.content == b""
        assert (await client.post(url)).status_code == 405  # only GET and HEAD take the short cut


async def test_expiring_urls_count_down_on_hits(client_factory: ClientFactory) -> None:
    fixture_path(PHOTO)
    async with client_factory(IMGPROXY_TTL="3600") as client:
        url = f"/_/w:20/exp:{int(time.time()) + 600}/plain/local:///{PHOTO}"
        first = await client.get(url)
        hit = await client.get(url)
        assert hit.headers["x-cache"] == "HIT-L1"
        max_age = int(hit.headers["cache-control"].split("max-age=")[1].split(",")[0])
        assert 590 <= max_age <= 600 and first.status_code == 200


async def test_client_hints_are_part_of_the_hit(client_factory: ClientFactory) -> None:
    fixture_path(PHOTO)
    async with client_factory(IMGPROXY_ENABLE_CLIENT_HINTS="1") as client:
        url = f"/_/q:80/plain/local:///{PHOTO}@png"  # no width: the hint supplies it
        small = await client.get(url, headers={"Sec-CH-Width": "50"})
        again = await client.get(url, headers={"Sec-CH-Width": "50"})
        wide = await client.get(url, headers={"Sec-CH-Width": "80"})
        assert again.headers["x-cache"] == "HIT-L1" and size_of(again.content)[0] == 50
        assert wide.headers["x-cache"] == "MISS" and size_of(wide.content)[0] == 80
        assert size_of(small.content)[0] == 50


async def test_only_paths_already_served_are_looked_up(client_factory: ClientFactory) -> None:
    fixture_path(PHOTO)
    async with client_factory() as client:
        app = client._transport.app  # type: ignore[attr-defined]
        service = app.state.service
        url = f"/_/w:24/plain/local:///{PHOTO}"
        scope = http_scope(url.encode())
        assert service.memory_hit(scope) is None  # never parsed: the router decides
        assert (await client.get(url)).status_code == 200
        hit = service.memory_hit(scope)
        assert hit is not None
        headers, body = hit
        assert dict(headers)[b"x-cache"] == b"HIT-L1" and size_of(body)[0] == 24
        conditional = http_scope(url.encode(), [(b"if-none-match", b'"x"')])
        assert service.memory_hit(conditional) is None  # a 304 decision takes the full path
        assert any(m.cls is ServeMemoryHits for m in app.user_middleware)


async def test_a_path_is_verified_and_parsed_once(
    client_factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hits, conditional requests and other clients' formats of a path served before reuse its parse."""
    fixture_path(PHOTO)
    async with client_factory(IMGPROXY_AUTO_WEBP="true") as client:
        resolver = client._transport.app.state.service.resolver  # type: ignore[attr-defined]
        parse = resolver.parser.parse
        calls: list[str] = []

        def counting(path: str, *args: Any) -> Any:
            calls.append(path)
            return parse(path, *args)

        monkeypatch.setattr(resolver.parser, "parse", counting)
        url = f"/_/w:24/plain/local:///{PHOTO}"
        first = await client.get(url)
        assert first.headers["x-cache"] == "MISS"
        assert (await client.get(url)).headers["x-cache"] == "HIT-L1"
        assert (await client.get(url, headers={"If-None-Match": first.headers["etag"]})).status_code == 304
        webp = await client.get(url, headers={"Accept": "image/webp"})
        assert webp.headers["x-cache"] == "MISS" and webp.headers["content-type"] == "image/webp"
        assert calls == ["/w:24/plain/local:///" + PHOTO]
