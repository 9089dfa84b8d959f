"""Admission control, secrets, source policy and SSRF defence through the real app."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import socket
import time
from typing import Any

import httpx
import pytest

from imgproxy_py.errors import SourceUnreachableError
from imgproxy_py.netpolicy import AddressPolicy
from imgproxy_py.sources.base import FetchLimits
from imgproxy_py.sources.http import BlockedAddressError, HTTPSource
from tests.conftest import ClientFactory
from tests.support import Origin, fixture_path

PHOTO = "2569067123_aca715a2ee_o.jpg"


def goto(origin: Origin, target: str) -> str:
    return origin.url("goto/" + base64.urlsafe_b64encode(target.encode()).decode().rstrip("="))


async def test_a_full_queue_answers_429_fast_but_hits_and_health_never_wait(
    client_factory: ClientFactory, origin: Origin
) -> None:
    async with client_factory(IMGPROXY_WORKERS="1", IMGPROXY_REQUESTS_QUEUE_SIZE="1") as client:
        cached = f"/_/w:20/plain/local:///{PHOTO}"
        assert (await client.get(cached)).status_code == 200
        origin.delay = 0.6
        storm = [asyncio.ensure_future(client.get(f"/_/w:{50 + i}/plain/{origin.url(PHOTO)}")) for i in range(5)]
        await asyncio.sleep(0.2)  # one is processing, one waits, the rest are refused
        hit = await client.get(cached)
        health = await client.get("/health")
        # Neither waited behind the queue: the two admitted requests (0.6 s each, one after
        # the other) have not both finished yet. Behaviour, not a wall-clock bound.
        admitted_done = [f for f in storm if f.done() and f.result().status_code == 200]
        assert len(admitted_done) < 2
        assert hit.status_code == 200 and hit.headers["x-cache"] == "HIT-L1"
        assert health.status_code == 200
        responses = await asyncio.gather(*storm)
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 200, 429, 429, 429]
        refused = next(r for r in responses if r.status_code == 429)
        assert refused.headers["retry-after"] == "1"
        assert refused.text == "Too many requests"


async def test_identical_requests_coalesce_instead_of_filling_the_queue(
    client_factory: ClientFactory, origin: Origin
) -> None:
    """Admission on arrival counts one place per key: the copies of a request join its flight."""
    async with client_factory(IMGPROXY_WORKERS="1", IMGPROXY_REQUESTS_QUEUE_SIZE="1") as client:
        origin.delay = 0.6
        busy = asyncio.ensure_future(client.get(f"/_/w:40/plain/{origin.url(PHOTO)}"))
        await asyncio.sleep(0.2)  # the only worker is taken
        same = f"/_/w:41/plain/{origin.url(PHOTO)}"
        copies = [asyncio.ensure_future(client.get(same)) for _ in range(8)]
        other = [asyncio.ensure_future(client.get(f"/_/w:{60 + i}/plain/{origin.url(PHOTO)}")) for i in range(3)]
        copied, others = await asyncio.gather(*copies), await asyncio.gather(*other)
        assert (await busy).status_code == 200
        assert [r.status_code for r in copied] == [200] * 8  # one queued place, eight answers
        assert sorted(r.headers["x-cache"] for r in copied).count("MISS") == 1
        assert sorted(r.status_code for r in others) == [429, 429, 429]  # the queue's place is taken


async def test_secret_is_required_except_for_health(client_factory: ClientFactory) -> None:
    fixture_path(PHOTO)
    async with client_factory(IMGPROXY_SECRET="s3cr3t") as client:
        url = f"/_/w:10/plain/local:///{PHOTO}"
        assert (await client.get(url)).status_code == 403
        assert (await client.get(url, headers={"Authorization": "Bearer wrong"})).status_code == 403
        assert (await client.get(url, headers={"Authorization": "s3cr3t"})).status_code == 403
        assert (await client.get(url, headers={"Authorization": "Bearer s3cr3t"})).status_code == 200
        assert (await client.get("/health")).status_code == 200


async def test_allowed_sources_apply_to_every_hop(client_factory: ClientFactory, origin: Origin) -> None:
    allowed = f"local:///320,{origin.base}/redirect/,{origin.base}/goto/"
    async with client_factory(IMGPROXY_ALLOWED_SOURCES=allowed) as client:
        assert (await client.get("/_/w:10/plain/local:///320x240.jpg")).status_code == 200
        refused = await client.get(f"/_/w:10/plain/local:///{PHOTO}")
        assert refused.status_code == 404 and refused.text == "Invalid source URL"
        assert (await client.get(f"/_/w:10/plain/{origin.url(PHOTO)}")).status_code == 404
        # the first hop is allowed, the redirect target is not
        hop = await client.get(f"/_/w:10/plain/{origin.url('redirect/320x240.jpg')}")
        assert hop.status_code == 404 and hop.text == "Invalid source URL"
        inside = await client.get(f"/_/w:10/plain/{goto(origin, origin.url('redirect/320x240.jpg'))}")
        assert inside.status_code == 404  # goto → redirect/ (allowed) → /320x240.jpg (not allowed)


async def test_too_many_redirects(client_factory: ClientFactory, origin: Origin) -> None:
    url = origin.url("320x240.jpg")
    for _ in range(3):
        url = goto(origin, url)
    async with client_factory(IMGPROXY_MAX_REDIRECTS="2") as client:
        assert (await client.get(f"/_/w:10/plain/{url}")).status_code == 404
    async with client_factory(IMGPROXY_MAX_REDIRECTS="3") as client:
        assert (await client.get(f"/_/w:10/plain/{url}")).status_code == 200


@pytest.mark.parametrize(
    "target",
    [
        "http://10.255.255.1/x.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://192.168.0.1/x.jpg",
        "http://[fd00::1]/x.jpg",
        "http://100.64.0.1/x.jpg",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
    ],
)
async def test_redirects_into_private_networks_are_refused(
    client_factory: ClientFactory, origin: Origin, target: str
) -> None:
    async with client_factory() as client:  # loopback allowed (the origin is there); private is not
        started = time.monotonic()
        response = await client.get(f"/_/w:10/plain/{goto(origin, target)}")
        assert response.status_code == 404
        assert response.text == "Invalid source URL"
        assert time.monotonic() - started < 1.0  # refused before any connection attempt


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/x.jpg",
        "http://localhost:{port}/x.jpg",
        "http://[::1]:{port}/x.jpg",
        "http://[::ffff:127.0.0.1]:{port}/x.jpg",
        "http://0.0.0.0:{port}/x.jpg",
        "http://[::]:{port}/x.jpg",
        "http://2130706433:{port}/x.jpg",
        "http://0x7f000001:{port}/x.jpg",
        "http://127.1:{port}/x.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/x.jpg",
        "http://[64:ff9b::7f00:1]/x.jpg",
        "http://[2002:7f00:1::]/x.jpg",
    ],
)
async def test_loopback_and_link_local_are_refused_by_default(
    client_factory: ClientFactory, origin: Origin, url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    async with client_factory(IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES="false", IMGPROXY_LOG_FORMAT="json") as client:
        response = await client.get(f"/_/w:10/plain/{url.format(port=origin.port)}")
        # The policy's refusal, not a connection that merely failed fast ("Source is unreachable"):
        # a policy bypass for [::1] and [fe80::1] once passed a status-and-time check.
        assert (response.status_code, response.text) == (404, "Invalid source URL")
    assert origin.requests == []
    (logged,) = [json.loads(line) for line in capfd.readouterr().out.splitlines() if '"msg":"request"' in line]
    assert logged["detail"] == "source address is not allowed"


async def test_a_name_resolving_to_loopback_is_refused_at_connect_time(
    monkeypatch: pytest.MonkeyPatch, origin: Origin
) -> None:
    """DNS is outside the test's control, so the resolver answer is faked; the check is real."""

    async def rebinding_resolver(host: str, port: int, **_: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr("anyio.getaddrinfo", rebinding_resolver)
    source = HTTPSource(AddressPolicy(), user_agent="t", max_redirects=0)
    try:
        with pytest.raises(BlockedAddressError):
            await source.fetch(f"http://images.example.com:{origin.port}/{PHOTO}", FetchLimits(timeout=2))
    finally:
        await source.aclose()
    assert origin.requests == []


async def test_public_and_private_answers_connect_only_to_allowed_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name resolving to both a private and a loopback address, with only loopback allowed."""
    seen: list[str] = []

    async def resolver(host: str, port: int, **_: Any) -> list[Any]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    import httpcore

    original = httpcore.AnyIOBackend.connect_tcp

    async def recording(self: Any, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        seen.append(host)
        return await original(self, host, port, *args, **kwargs)

    monkeypatch.setattr("anyio.getaddrinfo", resolver)
    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", recording)
    source = HTTPSource(AddressPolicy(allow_loopback=True), user_agent="t", max_redirects=0)
    try:
        with pytest.raises(SourceUnreachableError):  # nothing listens there; the point is where it connected
            await source.fetch("http://mixed.example.com:9/x.jpg", FetchLimits(timeout=2))
    finally:
        await source.aclose()
    assert seen == ["127.0.0.1"]


async def test_request_ids_are_honoured_or_generated(client: httpx.AsyncClient) -> None:
    fixture_path(PHOTO)
    given = await client.get(f"/_/w:10/plain/local:///{PHOTO}", headers={"X-Request-ID": "abc-123_X"})
    assert given.headers["x-request-id"] == "abc-123_X"
    bad = await client.get(f"/_/w:10/plain/local:///{PHOTO}", headers={"X-Request-ID": "a b<script>"})
    generated = bad.headers["x-request-id"]
    assert generated != "a b<script>" and len(generated) >= 12
    error = await client.get("/_/nope:1/plain/local:///x.jpg")
    assert error.headers["x-request-id"]


async def test_max_src_file_size_option_needs_permission_and_limits_the_fetch(client_factory: ClientFactory) -> None:
    size = fixture_path(PHOTO).stat().st_size
    async with client_factory() as client:
        assert (await client.get(f"/_/msfs:{size - 1}/w:10/plain/local:///{PHOTO}")).status_code == 403
    async with client_factory(IMGPROXY_ALLOW_SECURITY_OPTIONS="true") as client:
        assert (await client.get(f"/_/msfs:{size - 1}/w:10/plain/local:///{PHOTO}")).status_code == 422
        assert (await client.get(f"/_/msfs:{size}/w:10/plain/local:///{PHOTO}")).status_code == 200


async def test_sources_are_read_without_content_decoding(origin: Origin) -> None:
    """Identity is asked for and the raw body is read: a gzip/brotli bomb is never inflated (issue 16)."""
    photo = fixture_path("320x240.jpg").read_bytes()
    source = HTTPSource(AddressPolicy(allow_loopback=True), user_agent="t", max_redirects=0)
    try:
        image = await source.fetch(origin.url("gzip/320x240.jpg"), FetchLimits(timeout=5))
    finally:
        await source.aclose()
    assert origin.accept_encodings == ["identity"]
    assert image.data != photo and gzip.decompress(image.data) == photo  # the bytes as sent, not inflated
