"""Work stops when nobody waits for it: client disconnects and deadlines reach into libvips."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
from starlette.applications import Starlette

from imgproxy_py.server.app import create_app
from imgproxy_py.server.image_endpoint import ImageEndpoint
from imgproxy_py.server.scope import DISCONNECT, DisconnectWatch
from tests.conftest import make_settings
from tests.support import asgi_call as call
from tests.support import fixture_path, http_scope

PHOTO = "2569067123_aca715a2ee_o.jpg"
HEAVY = f"/_/rs:fit:9000:9000/el:1/q:95/plain/local:///{PHOTO}"  # several seconds of encoding
# Filters on a 66 MP result: measured uncancelled (2 shared cores), the worker stayed busy 8-30 s
# after the 503. The margins below are a fraction of that, never a tight wall-clock bound.
SLOW_FILTERS = {
    "blur": f"/_/bl:150/rs:fit:9000:9000/el:1/plain/local:///{PHOTO}",
    "sharpen": f"/_/sh:10/rs:fit:9000:9000/el:1/plain/local:///{PHOTO}",
}
SMALL = f"/_/rs:fit:100:100/plain/local:///{PHOTO}"


@asynccontextmanager
async def running_app(**env: str) -> AsyncIterator[tuple[Starlette, ImageEndpoint]]:
    fixture_path(PHOTO)
    app = create_app(make_settings(**env))
    async with app.router.lifespan_context(app):
        yield app, app.state.service


async def wait_idle(service: ImageEndpoint, within: float) -> float:
    started = time.monotonic()
    while service.flow.workers.busy and time.monotonic() - started < within:
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_uncancelled_heavy_transform_takes_seconds() -> None:
    """The baseline the other tests rely on: this transform is really slow."""
    # A deadline far beyond the transform's few seconds, so a loaded machine answers 200, not 503.
    async with running_app(IMGPROXY_TIMEOUT="120") as (app, _):
        started = time.monotonic()
        sent = await call(app, HEAVY)
        assert sent[0]["status"] == 200
        assert time.monotonic() - started > 1.0


async def test_a_client_disconnect_stops_the_transform() -> None:
    async with running_app() as (app, service):
        started = time.monotonic()
        sent = await call(app, SLOW_FILTERS["sharpen"], disconnect_after=0.3)
        assert time.monotonic() - started < 4  # uncancelled: over 10 s
        assert sent == [] or sent[0]["status"] == 499
        assert await wait_idle(service, within=15) < 3  # libvips was killed, not left to finish
        assert service.images.transforms == 0


async def test_the_deadline_kills_libvips_and_answers_503() -> None:
    async with running_app(IMGPROXY_TIMEOUT="0.5") as (app, service):
        started = time.monotonic()
        sent = await call(app, SLOW_FILTERS["sharpen"])
        assert sent[0]["status"] == 503
        assert (b"retry-after", b"1") in sent[0]["headers"]  # a CDN retries a 503 that says when
        assert time.monotonic() - started < 4  # uncancelled: over 10 s
        assert await wait_idle(service, within=15) < 3


@pytest.mark.parametrize("path", SLOW_FILTERS.values(), ids=SLOW_FILTERS.keys())
async def test_filters_stop_at_the_deadline_and_free_the_only_worker(path: str) -> None:
    """The issue's case: with one worker, a filter past the deadline kept the slot for seconds,
    so the next requests got 503 too. Now the 503 comes and the very next request is served."""
    async with running_app(IMGPROXY_TIMEOUT="1", IMGPROXY_WORKERS="1") as (app, service):
        sent = await call(app, path)
        assert sent[0]["status"] == 503
        assert await wait_idle(service, within=30) < 4  # uncancelled: 8-30 s more
        sent = await call(app, SMALL)
        assert sent[0]["status"] == 200


async def test_one_of_two_waiters_leaving_does_not_cancel_the_other() -> None:
    async with running_app(IMGPROXY_TIMEOUT="120") as (app, service):
        leaver = asyncio.ensure_future(call(app, HEAVY, disconnect_after=0.3))
        stayer = asyncio.ensure_future(call(app, HEAVY))
        await leaver
        sent = await stayer
        assert sent[0]["status"] == 200
        assert service.images.transforms == 1


async def _call_watched(app: Starlette, path: str, watch: DisconnectWatch) -> list[dict[str, Any]]:
    """A request whose connection reports its loss through ``watch`` (as our uvicorn protocol
    does); ``receive()`` never says anything, so only the watch can end the work early."""
    scope = http_scope(path.encode())
    scope[DISCONNECT] = watch
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    return sent


async def test_a_connection_lost_mid_transform_stops_it_through_the_watch() -> None:
    async with running_app() as (app, service):
        watch = DisconnectWatch()
        asyncio.get_running_loop().call_later(0.3, watch.connection_lost)
        started = time.monotonic()
        sent = await _call_watched(app, SLOW_FILTERS["sharpen"], watch)
        assert time.monotonic() - started < 4  # uncancelled: over 10 s
        assert sent[0]["status"] == 499
        assert await wait_idle(service, within=15) < 3
        assert service.images.transforms == 0


async def test_a_connection_already_lost_gets_499_without_any_work() -> None:
    async with running_app() as (app, service):
        watch = DisconnectWatch()
        watch.connection_lost()
        sent = await _call_watched(app, SMALL, watch)
        assert sent[0]["status"] == 499
        assert service.images.transforms == 0
        assert (await call(app, SMALL))[0]["status"] == 200  # the next request is served as usual
