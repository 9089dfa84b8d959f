"""Sources decoded while they download (server/streaming.py), against a throttled loopback origin."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.throttled_origin import ThrottledOrigin, photo, throttled_origin
from imgproxy_py.server.app import create_app
from imgproxy_py.server.image_endpoint import ImageEndpoint
from tests.conftest import make_settings
from tests.s3_server import S3Server
from tests.support import load, mean_abs_diff, size_of

BOUND = 256 * 1024  # IMGPROXY_STREAM_BUFFER_SIZE in these tests
MB = 1 << 20


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    big = photo(6000, 4000)
    return {
        "big.jpg": big.jpegsave_buffer(Q=90),
        "progressive.jpg": photo(1600, 1200).jpegsave_buffer(Q=85, interlace=True),
        "photo.png": photo(2000, 1500).pngsave_buffer(compression=1),
    }


@pytest.fixture
def origin(files: dict[str, bytes]) -> Iterator[ThrottledOrigin]:
    with throttled_origin(files, rate=40 * MB) as served:
        yield served


@asynccontextmanager
async def service_client(**env: str) -> AsyncIterator[tuple[httpx.AsyncClient, ImageEndpoint]]:
    env = {"IMGPROXY_STREAM_BUFFER_SIZE": str(BOUND), **env}
    app = create_app(make_settings(**env))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client, app.state.service


async def _get_both(path: str, **env: str) -> tuple[list[httpx.Response], list[ImageEndpoint]]:
    responses, services = [], []
    for stream in ("true", "false"):
        async with service_client(IMGPROXY_STREAM_SOURCES=stream, **env) as (client, service):
            responses.append(await client.get(path))
            services.append(service)
    return responses, services


def _same_image(a: bytes, b: bytes) -> None:
    assert size_of(a) == size_of(b)
    assert mean_abs_diff(load(a), load(b)) < 1.0


async def test_a_large_jpeg_streams_within_the_bound_and_matches_the_buffered_result(
    origin: ThrottledOrigin, files: dict[str, bytes]
) -> None:
    (streamed, buffered), (on, off) = await _get_both(f"/_/rs:fit:600:600/f:webp/plain/{origin.url('big.jpg')}")
    assert streamed.status_code == buffered.status_code == 200
    assert size_of(streamed.content) == (600, 400)
    _same_image(streamed.content, buffered.content)
    assert streamed.headers["etag"] == buffered.headers["etag"]
    # the source went through the pipe, never more than the bound of it at once
    assert 0 < on.images.peak_stream_bytes <= BOUND < len(files["big.jpg"]) // 10
    assert off.images.peak_stream_bytes == 0


async def test_png_and_local_sources_stream_too(
    origin: ThrottledOrigin, files: dict[str, bytes], tmp_path: Path
) -> None:
    (streamed, buffered), (on, _) = await _get_both(f"/_/rs:fit:300:300/f:png/plain/{origin.url('photo.png')}")
    assert streamed.status_code == 200 and size_of(streamed.content) == (300, 225)
    _same_image(streamed.content, buffered.content)
    assert 0 < on.images.peak_stream_bytes <= BOUND

    (tmp_path / "big.jpg").write_bytes(files["big.jpg"])
    # rs:fit: a crop would ask the feature store for faces, and that reads the source whole
    local = "/_/rs:fit:200:200/f:jpg/plain/local:///big.jpg"
    # a local file streams from IMGPROXY_STREAM_LOCAL_MIN_SIZE on (this one is exactly that large)
    threshold = str(len(files["big.jpg"]))
    (streamed, buffered), (on, _) = await _get_both(
        local, IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(tmp_path), IMGPROXY_STREAM_LOCAL_MIN_SIZE=threshold
    )
    assert streamed.status_code == 200 and size_of(streamed.content)[0] == 200
    assert size_of(streamed.content) == size_of(buffered.content)
    _same_image(streamed.content, buffered.content)
    assert 0 < on.images.peak_stream_bytes <= BOUND


async def test_small_local_files_are_read_whole(files: dict[str, bytes], tmp_path: Path) -> None:
    """Below IMGPROXY_STREAM_LOCAL_MIN_SIZE streaming a local file gains nothing: it is read whole."""
    (tmp_path / "big.jpg").write_bytes(files["big.jpg"])
    (tmp_path / "small.jpg").write_bytes(photo(800, 600).jpegsave_buffer(Q=85))
    root = str(tmp_path)
    threshold = str(len(files["big.jpg"]))
    async with service_client(IMGPROXY_LOCAL_FILESYSTEM_ROOT=root, IMGPROXY_STREAM_LOCAL_MIN_SIZE=threshold) as (
        client,
        service,
    ):
        small = await client.get("/_/rs:fit:200:200/f:jpg/plain/local:///small.jpg")
        assert small.status_code == 200 and size_of(small.content) == (200, 150)
        assert service.images.peak_stream_bytes == 0  # read whole
        big = await client.get("/_/rs:fit:200:200/f:jpg/plain/local:///big.jpg")
        assert big.status_code == 200 and size_of(big.content)[0] == 200
        assert 0 < service.images.peak_stream_bytes <= BOUND  # the large one streamed


async def test_sources_that_cannot_stream_are_buffered_transparently(origin: ThrottledOrigin) -> None:
    # progressive JPEG (its scans are counted over the whole file), and trim (a second pass)
    for path in (
        f"/_/rs:fit:300:300/plain/{origin.url('progressive.jpg')}",
        f"/_/t:10/rs:fit:300:300/plain/{origin.url('photo.png')}",
    ):
        (streamed, buffered), (on, _) = await _get_both(path)
        assert streamed.status_code == buffered.status_code == 200
        _same_image(streamed.content, buffered.content)
        assert on.images.peak_stream_bytes == 0


async def test_without_a_validator_the_digest_is_computed_as_the_bytes_pass(origin: ThrottledOrigin) -> None:
    origin.etag = False
    (streamed, buffered), (on, _) = await _get_both(f"/_/w:500/plain/{origin.url('big.jpg')}")
    assert streamed.status_code == buffered.status_code == 200
    assert on.images.peak_stream_bytes > 0
    assert streamed.headers["etag"] == buffered.headers["etag"]  # the same source digest


async def test_a_client_going_away_stops_the_download_and_the_decode(files: dict[str, bytes]) -> None:
    with throttled_origin(files, rate=2 * MB) as slow:  # the whole file would take ~5 s
        async with service_client(IMGPROXY_STREAM_SOURCES="true", IMGPROXY_WORKERS="1") as (client, service):
            request = asyncio.ensure_future(client.get(f"/_/w:300/plain/{slow.url('big.jpg')}"))
            await asyncio.sleep(1.0)
            request.cancel()  # the client goes away mid-download
            with contextlib.suppress(asyncio.CancelledError):
                await request
            assert await asyncio.to_thread(_wait_served, slow, 5)
            record = slow.served[0]
            assert record.hung_up and record.total is not None and record.sent < record.total // 2
            assert await _eventually(lambda: service.flow.workers.busy == 0, 5)  # the decoder let its slot go
            assert service.images.transforms == 0
            # and the service is still fine
            quick = await client.get(f"/_/w:100/plain/{slow.url('photo.png')}")
            assert quick.status_code == 200


async def test_lying_and_endless_origins_are_refused_as_when_buffered(origin: ThrottledOrigin) -> None:
    for path in ("long/big.jpg", "endless/big.jpg"):
        (streamed, buffered), _ = await _get_both(
            f"/_/w:300/plain/{origin.url(path)}", IMGPROXY_MAX_SRC_FILE_SIZE=str(20 * MB)
        )
        assert streamed.status_code == buffered.status_code == 422, path
    endless = [r for r in origin.served if r.path.startswith("/endless/")]
    assert len(endless) == 2
    for record in endless:  # the origin notices the hang-up at its next write
        assert await asyncio.to_thread(record.done.wait, 10)
        assert record.hung_up and record.sent <= 22 * MB  # the cap, plus what socket buffers took


async def test_a_download_deadline_still_applies(files: dict[str, bytes]) -> None:
    with throttled_origin(files, rate=2 * MB) as slow:
        (streamed, buffered), _ = await _get_both(
            f"/_/w:300/plain/{slow.url('big.jpg')}", IMGPROXY_DOWNLOAD_TIMEOUT="1"
        )
        assert streamed.status_code == buffered.status_code
        assert streamed.status_code >= 400


async def test_variants_of_one_source_share_downloads(origin: ThrottledOrigin) -> None:
    async with service_client(IMGPROXY_STREAM_SOURCES="true", IMGPROXY_WORKERS="4") as (client, _):
        same = [client.get(f"/_/w:300/plain/{origin.url('big.jpg')}") for _ in range(3)]
        assert {r.status_code for r in await asyncio.gather(*same)} == {200}
        assert len(origin.served) == 1  # identical requests coalesce onto one streamed download
        variants = [client.get(f"/_/w:{w}/plain/{origin.url('photo.png')}") for w in (100, 200, 300, 400)]
        responses = await asyncio.gather(*variants)
        assert [size_of(r.content)[0] for r in responses] == [100, 200, 300, 400]
        # variants asking before the header is in turn the download into one shared buffered one
        assert len([r for r in origin.served if r.path.endswith("photo.png")]) == 1
        late = asyncio.ensure_future(client.get(f"/_/w:150/plain/{origin.url('big.jpg')}%3Flate"))
        while not any(r.path.endswith("late") and r.sent for r in origin.served):
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # the first one streams by now; a variant arriving now downloads on its own
        other = await client.get(f"/_/w:160/plain/{origin.url('big.jpg')}%3Flate")
        assert (await late).status_code == other.status_code == 200
        assert len([r for r in origin.served if r.path.endswith("late")]) == 2


def _wait_served(origin: ThrottledOrigin, within: float) -> bool:
    stop = time.monotonic() + within
    while not origin.served and time.monotonic() < stop:
        time.sleep(0.01)
    return bool(origin.served) and origin.served[0].done.wait(max(0.0, stop - time.monotonic()))


async def _eventually(check: Any, within: float) -> bool:
    stop = time.monotonic() + within
    while time.monotonic() < stop:
        if check():
            return True
        await asyncio.sleep(0.02)
    return bool(check())


async def test_a_slow_decoder_does_not_make_the_download_time_out(origin: ThrottledOrigin) -> None:
    """Back-pressure waits are not download time: the pipe holds the origin back while a full-size
    decode runs far longer than the download deadline, and the download still completes."""
    origin.rate = 0  # as fast as loopback goes: the buffered download takes a fraction of the deadline
    (streamed, buffered), (on, _) = await _get_both(
        f"/_/w:4000/f:png/plain/{origin.url('big.jpg')}", IMGPROXY_DOWNLOAD_TIMEOUT="1"
    )
    assert streamed.status_code == buffered.status_code == 200
    assert size_of(streamed.content) == (4000, 2667)  # a PNG encode pulls the decode row by row: slowly
    assert on.images.peak_stream_bytes > 0


async def test_s3_sources_stream(s3_server: S3Server, files: dict[str, bytes]) -> None:
    bucket = s3_server.new_bucket()
    s3_server.put(bucket, "big.jpg", files["big.jpg"])
    path = f"/_/rs:fit:600:600/f:webp/plain/s3://{bucket}/big.jpg"
    (streamed, buffered), (on, _) = await _get_both(path, **s3_server.env())
    assert streamed.status_code == buffered.status_code == 200
    assert size_of(streamed.content) == (600, 400)
    _same_image(streamed.content, buffered.content)
    assert streamed.headers["etag"] == buffered.headers["etag"]
    assert 0 < on.images.peak_stream_bytes <= BOUND


async def test_no_descriptor_is_left_behind(origin: ThrottledOrigin) -> None:
    """Every pipe (a Unix socket pair) is closed, whether the decode succeeds, is refused from the
    header, or the download fails."""
    paths = [
        f"/_/w:300/plain/{origin.url('big.jpg')}",  # streamed, succeeds
        f"/_/w:300/plain/{origin.url('long/big.jpg')}",  # streamed, the download fails
        f"/_/w:300/plain/{origin.url('endless/big.jpg')}",  # decoded, then the drain hits the cap
        f"/_/w:300/plain/{origin.url('photo.png')}",
    ]
    async with service_client(IMGPROXY_MAX_SRC_FILE_SIZE=str(20 * MB), IMGPROXY_MAX_SRC_RESOLUTION="1") as (client, _):
        await client.get(paths[0])  # a first request opens what stays open (connection pools)
        before = _pipes()
        statuses = [(await client.get(path)).status_code for path in paths]
        assert statuses == [422, 422, 422, 422]  # 1 MP limit: refused from the header
    async with service_client(IMGPROXY_MAX_SRC_FILE_SIZE=str(20 * MB)) as (client, service):
        statuses = [(await client.get(path)).status_code for path in paths]
        assert statuses == [200, 422, 422, 200]
        assert await _eventually(lambda: service.flow.workers.busy == 0, 5)
    assert _pipes() <= before


def _pipes() -> int:
    """Unix socket descriptors this process holds (the pipes a streamed source goes through)."""
    with open("/proc/net/unix") as table:
        unix = {f"socket:[{line.split()[6]}]" for line in list(table)[1:] if len(line.split()) > 6}
    count = 0
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{name}") in unix
    return count
