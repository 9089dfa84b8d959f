"""The playground's server side: when it is reachable, what it signs, what it says the server can do.

What the page does in a browser is tested in tests/browser/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from imgproxy_py.cli import main
from imgproxy_py.options.parser import split_signature
from imgproxy_py.security import verify_signature
from imgproxy_py.server.app import create_app
from imgproxy_py.settings import Settings
from tests.conftest import make_settings

KEY, SALT = "ab" * 32, "cd" * 32


@asynccontextmanager
async def client_from(host: str, **env: str) -> AsyncIterator[httpx.AsyncClient]:
    """The real app, seen from a client at ``host``."""
    app = create_app(make_settings(**env))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(host, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def test_off_by_default() -> None:
    async with client_from("127.0.0.1") as client:
        assert (await client.get("/")).status_code == 404
        assert (await client.get("/playground")).text == "Invalid URL"
        assert (await client.post("/playground/api/sign", json={"paths": ["/w:1/plain/x"]})).status_code == 405


async def test_page_assets_and_capabilities() -> None:
    async with client_from("203.0.113.7", IMGPROXY_PLAYGROUND="true", IMGPROXY_PRESETS="thumb=w:100") as client:
        for path in ("/", "/playground"):
            page = await client.get(path)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert "playground/playground.js" in page.text
        assert (await client.get("/playground/playground.js")).headers["content-type"].startswith("text/javascript")
        assert (await client.get("/playground/playground.css")).status_code == 200
        assert (await client.get("/playground/settings.py")).status_code == 404
        caps = (await client.get("/playground/api/capabilities")).json()
        assert caps["signing"] is False and caps["presets"] == ["thumb"]
        assert "webp" in caps["formats"] and "sm" in caps["gravity"]
        # Not-yet-existing features are reported absent, so the page hides their controls.
        assert (caps["face_gravity"], caps["format_best"], caps["autoquality"]) == (False, False, False)
        images = (await client.get("/playground/api/images")).json()["images"]
        assert {"name": "flowers.jpeg", "url": "local:///flowers.jpeg"}.items() <= next(
            i for i in images if i["name"] == "flowers.jpeg"
        ).items()
        # images are still served next to the page
        assert (await client.get("/insecure/w:50/plain/local:///flowers.jpeg")).status_code == 200


async def test_with_a_key_only_loopback_clients_reach_it_and_it_signs() -> None:
    env = {"IMGPROXY_PLAYGROUND": "true", "IMGPROXY_KEY": KEY, "IMGPROXY_SALT": SALT, "IMGPROXY_SIGNATURE_SIZE": "8"}
    async with client_from("203.0.113.7", **env) as remote:
        for path in ("/", "/playground", "/playground/api/capabilities", "/playground/api/images"):
            assert (await remote.get(path)).status_code == 404, path
        refused = await remote.post("/playground/api/sign", json={"paths": ["/w:10/plain/local:///flowers.jpeg"]})
        assert refused.status_code == 404 and "signed" not in refused.text
    async with client_from("::1", **env) as local:
        assert (await local.get("/")).status_code == 200
        signed = await local.post("/playground/api/sign", json={"paths": ["/w:10/plain/local:///flowers.jpeg"]})
        path = signed.json()["signed"][0]
        signature, rest = split_signature(path)
        verify_signature(Settings.from_env(env).security, signature, rest)
        assert (await local.get(path)).status_code == 200
        assert KEY not in (await local.get("/playground/api/capabilities")).text


@pytest.mark.parametrize(
    "body, headers",
    [
        (b'{"paths": ["/w:1/plain/x"]}', {"content-type": "text/plain"}),  # a cross-site "simple" request
        (b"not json", {"content-type": "application/json"}),
        (b'{"paths": []}', {"content-type": "application/json"}),
        (b'{"paths": ["no-slash"]}', {"content-type": "application/json"}),
        (b'{"paths": [' + b",".join([b'"/a"'] * 65) + b"]}", {"content-type": "application/json"}),
    ],
)
async def test_sign_refuses_bad_requests(body: bytes, headers: dict[str, str]) -> None:
    async with client_from("127.0.0.1", IMGPROXY_PLAYGROUND="true") as client:
        response = await client.post("/playground/api/sign", content=body, headers=headers)
    assert response.status_code == 400 and "error" in response.json()


def test_serve_dev_enables_it_only_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Settings] = []

    def fake_serve(settings: Settings) -> int:
        seen.append(settings)
        return 0

    monkeypatch.setattr("imgproxy_py.cli._serve", fake_serve)
    for name in ("IMGPROXY_PLAYGROUND", "IMGPROXY_DEVELOPMENT_ERRORS_MODE", "IMGPROXY_KEY", "IMGPROXY_SALT"):
        monkeypatch.delenv(name, raising=False)
    assert main(["serve", "--dev"]) == 0
    assert seen[-1].server.playground and seen[-1].server.development_errors
    monkeypatch.delenv("IMGPROXY_PLAYGROUND")
    monkeypatch.setenv("IMGPROXY_KEY", KEY)
    monkeypatch.setenv("IMGPROXY_SALT", SALT)
    assert main(["serve", "--dev"]) == 0
    assert not seen[-1].server.playground and seen[-1].server.development_errors
    monkeypatch.delenv("IMGPROXY_DEVELOPMENT_ERRORS_MODE")
    assert main(["serve"]) == 0
    assert not seen[-1].server.playground and not seen[-1].server.development_errors


async def test_under_a_path_prefix() -> None:
    """The page uses relative links, and signed paths carry the prefix, so it works under IMGPROXY_PATH_PREFIX."""
    async with client_from("127.0.0.1", IMGPROXY_PLAYGROUND="true", IMGPROXY_PATH_PREFIX="/img") as client:
        for path in ("/img/", "/img/playground", "/img/playground/playground.js", "/img/playground/api/capabilities"):
            assert (await client.get(path)).status_code == 200, path
        assert (await client.get("/playground")).status_code == 404
        paths = ["/w:40/plain/local:///flowers.jpeg", "/plain/local:///flowers.jpeg"]
        image, info = (await client.post("/img/playground/api/sign", json={"paths": paths})).json()["signed"]
        assert image.startswith("/img/insecure/")
        assert (await client.get(image)).status_code == 200
        assert (await client.get("/img/info" + info.removeprefix("/img"))).json()["format"] == "jpeg"
