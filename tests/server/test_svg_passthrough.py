"""SVG sources through the real app: passed through sanitised, or rasterised when asked."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.conftest import ClientFactory
from tests.support import fixture_path, load, size_of

HOSTILE = (
    b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="40" height="40"'
    b' onload="alert(1)"><script>alert(2)</script>'
    b'<foreignObject><iframe xmlns="http://www.w3.org/1999/xhtml" src="javascript:alert(3)"/></foreignObject>'
    b'<image href="https://tracker.example/p.png" width="1" height="1"/>'
    b"<style>@import url(https://evil.example/x.css); rect{fill:#00ff00}</style>"
    b'<rect x="10" y="10" width="20" height="20"/></svg>'
)


def hostile_root(tmp_path: Path) -> Path:
    (tmp_path / "hostile.svg").write_bytes(HOSTILE)
    (tmp_path / "xxe.svg").write_bytes(
        b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<svg xmlns="http://www.w3.org/2000/svg">&x;</svg>'
    )
    depth = 100_000
    (tmp_path / "deep.svg").write_bytes(
        b'<svg xmlns="http://www.w3.org/2000/svg">' + b"<g>" * depth + b"</g>" * depth + b"</svg>"
    )
    return tmp_path


async def test_svg_without_format_is_sanitised_svg(client_factory: ClientFactory, tmp_path: Path) -> None:
    async with client_factory(IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(hostile_root(tmp_path))) as client:
        response = await client.get("/_/rs:fit:300:300/plain/local:///hostile.svg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.headers["content-disposition"] == 'inline; filename="hostile.svg"'
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "script-src" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    body = response.content
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<svg')
    for gone in (b"alert", b"script", b"onload", b"iframe", b"foreignObject", b"tracker.example", b"@import"):
        assert gone not in body, gone
    picture = load(body)  # still an SVG that renders: the green square is there
    assert (picture.width, picture.height) == (40, 40)
    assert picture.getpoint(20, 20) == [0, 255, 0, 255]


async def test_fixture_svg_passes_through(client: httpx.AsyncClient) -> None:
    fixture_path("struct-image-04-t.svg")
    response = await client.get("/_/plain/local:///struct-image-04-t.svg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert b"data:image/jpeg;base64," in response.content
    assert size_of(response.content) == (480, 360)
    cached = await client.get("/_/plain/local:///struct-image-04-t.svg")
    assert cached.headers["x-cache"] == "HIT-L1" and cached.content == response.content


async def test_explicit_svg_format(client: httpx.AsyncClient) -> None:
    fixture_path("check.svg")
    response = await client.get("/_/plain/local:///check.svg@svg")
    assert response.headers["content-type"] == "image/svg+xml"
    raster = await client.get("/_/plain/local:///320x240.jpg@svg")
    assert raster.status_code == 422  # SVG output exists only as passthrough


async def test_svg_is_rasterised_at_the_requested_size_when_a_format_is_asked(client: httpx.AsyncClient) -> None:
    fixture_path("check.svg")
    response = await client.get("/_/rs:fit:500:500/plain/local:///check.svg@png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert size_of(response.content) == (500, 500)
    assert "img-src" not in response.headers["content-security-policy"]


async def test_negotiation_does_not_rasterise(client_factory: ClientFactory) -> None:
    fixture_path("check.svg")
    async with client_factory(IMGPROXY_AUTO_WEBP="true", IMGPROXY_ENFORCE_AVIF="true") as client:
        response = await client.get("/_/plain/local:///check.svg", headers={"Accept": "image/avif,image/webp"})
    assert response.headers["content-type"] == "image/svg+xml"


async def test_always_rasterize_svg(client_factory: ClientFactory) -> None:
    fixture_path("check.svg")
    async with client_factory(IMGPROXY_ALWAYS_RASTERIZE_SVG="true") as client:
        response = await client.get("/_/rs:fit:64:64/plain/local:///check.svg")
    assert response.headers["content-type"] == "image/png"
    assert size_of(response.content) == (64, 64)


async def test_sanitising_can_be_switched_off(client_factory: ClientFactory, tmp_path: Path) -> None:
    env = {"IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(hostile_root(tmp_path)), "IMGPROXY_SANITIZE_SVG": "false"}
    async with client_factory(**env) as client:
        response = await client.get("/_/plain/local:///hostile.svg")
    assert response.content == HOSTILE  # untouched; only the CSP header stands between it and a browser
    assert "sandbox" in response.headers["content-security-policy"]


async def test_hostile_documents_are_clear_422s(client_factory: ClientFactory, tmp_path: Path) -> None:
    async with client_factory(IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(hostile_root(tmp_path))) as client:
        xxe = await client.get("/_/plain/local:///xxe.svg")
        assert xxe.status_code == 422
        assert "DTD" in xxe.text
        started = time.monotonic()
        deep = await client.get("/_/plain/local:///deep.svg")
        assert deep.status_code == 422
        assert "nesting" in deep.text
        assert time.monotonic() - started < 1.0
