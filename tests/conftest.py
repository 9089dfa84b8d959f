"""Shared fixtures: settings, the app behind an httpx client, a real HTTP origin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest

from imgproxy_py.server.app import create_app
from imgproxy_py.server.image_endpoint import ImageEndpoint
from imgproxy_py.settings import Settings
from tests.s3_server import S3Server, running_moto
from tests.support import Origin, images_dir, run_origin

ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def origin() -> Iterator[Origin]:
    yield from run_origin(images_dir())


def make_settings(**env: str) -> Settings:
    base = {
        "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(images_dir()),
        "IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES": "true",
        "IMGPROXY_WORKERS": "2",
    }
    base.update(env)
    return Settings.from_env(base)


@asynccontextmanager
async def app_with_service(**env: str) -> AsyncIterator[tuple[httpx.AsyncClient, ImageEndpoint]]:
    """The real ASGI app (lifespan included) behind an httpx client, with its ImageEndpoint; env overrides settings."""
    app = create_app(make_settings(**env))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client, app.state.service


@asynccontextmanager
async def app_client(**env: str) -> AsyncIterator[httpx.AsyncClient]:
    """``app_with_service`` for tests that only need the client."""
    async with app_with_service(**env) as (client, _):
        yield client


@pytest.fixture
def client_factory() -> ClientFactory:
    return app_client


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with app_client() as c:
        yield c


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server, started once per session; make a bucket per test with ``new_bucket``."""
    with running_moto() as server:
        yield server
