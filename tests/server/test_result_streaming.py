"""Large results sent while they are encoded (server/result_stream.py), over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from benchmarks.throttled_origin import photo
from tests.support import load, mean_abs_diff, serving, size_of

LARGE = "/_/rs:fit:3000:3000/f:png/plain/local:///photo.jpg"  # 3000×2000 PNG: streamed
SMALL = "/_/rs:fit:600:600/f:png/plain/local:///photo.jpg"  # under the pixel threshold: buffered


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("result-streaming")
    data = photo(3000, 2000).jpegsave_buffer(Q=90)
    (folder / "photo.jpg").write_bytes(data)
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])  # a damaged source: half a JPEG
    return folder


@contextmanager
def _server(root: Path, stream: bool, log: Path) -> Iterator[str]:
    env = {
        "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(root),
        "IMGPROXY_STREAM_RESULTS": "true" if stream else "false",
        "IMGPROXY_STREAM_LOCAL_MIN_SIZE": str(1 << 30),  # sources read whole: the only ones whose results stream
    }
    with log.open("w") as out, serving(env=env, output=out) as (base, _):
        yield base


@pytest.fixture(scope="module")
def streaming(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _server(root, True, tmp_path_factory.mktemp("logs") / "streaming.log") as base:
        yield base


def _get(base: str, path: str) -> httpx.Response:
    return httpx.get(base + path, timeout=60)


def test_a_large_png_is_sent_as_it_is_encoded_and_cached_whole(streaming: str, root: Path, tmp_path: Path) -> None:
    first = _get(streaming, LARGE)
    assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
    assert first.headers.get("transfer-encoding") == "chunked" and "content-length" not in first.headers
    assert first.headers["content-type"] == "image/png" and first.headers.get("etag")
    assert size_of(first.content) == (3000, 2000)

    again = _get(streaming, LARGE)  # the cache got the complete result
    assert again.headers["x-cache"].startswith("HIT")
    assert int(again.headers["content-length"]) == len(again.content) == len(first.content)
    assert again.headers["etag"] == first.headers["etag"]

    with _server(root, False, tmp_path / "buffered.log") as buffered_base:
        buffered = _get(buffered_base, LARGE)
        assert buffered.status_code == 200 and "content-length" in buffered.headers
        assert size_of(buffered.content) == size_of(first.content)
        assert mean_abs_diff(load(buffered.content), load(first.content)) < 1.0
        assert buffered.headers["etag"] == first.headers["etag"]


def test_small_results_keep_their_content_length(streaming: str) -> None:
    small = _get(streaming, SMALL)
    assert small.status_code == 200 and int(small.headers["content-length"]) == len(small.content)
    # and so do results that must compare or repeat encodes
    for options in ("rs:fit:3000:3000/f:png/mb:2000000", "rs:fit:3000:3000/f:jpg"):
        response = _get(streaming, f"/_/{options}/plain/local:///photo.jpg")
        assert response.status_code == 200 and "content-length" in response.headers


def test_a_damaged_source_is_refused_before_the_first_byte(streaming: str) -> None:
    response = _get(streaming, "/_/rs:fit:3000:3000/f:png/plain/local:///cut.jpg")
    assert response.status_code == 422  # the pixels are computed before the 200 is sent


def test_a_client_leaving_mid_body_leaves_the_server_serving_and_the_result_cached(streaming: str) -> None:
    path = "/_/rs:fit:2800:2800/f:png/plain/local:///photo.jpg"
    with httpx.Client(timeout=60) as client, client.stream("GET", streaming + path) as response:
        assert response.headers.get("transfer-encoding") == "chunked"
        next(response.iter_raw())  # the first bytes, then hang up
    assert _get(streaming, "/health").status_code == 200
    # the computation went on without the client: the next request joins it or hits the cache
    again = _get(streaming, path)
    assert again.status_code == 200 and again.headers["x-cache"].startswith("HIT")
    assert size_of(again.content) == (2800, 1867) and int(again.headers["content-length"]) == len(again.content)


def test_an_encode_stopped_mid_body_cuts_the_response_short_and_caches_nothing(root: Path, tmp_path: Path) -> None:
    """Once the 200 is sent an error cannot become a 4xx: the deadline passing mid-encode drops the
    connection before the body's last chunk, which a client sees as an incomplete response, and
    nothing is cached. (Where the deadline falls depends on the machine's speed: an encode that
    made it in time must then be a whole image.)"""
    path = "/_/rs:fit:4800:4800/el:1/f:png/plain/local:///photo.jpg"  # 15 MP: seconds of PNG encode
    env = {
        "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(root),
        "IMGPROXY_STREAM_LOCAL_MIN_SIZE": str(1 << 30),
        "IMGPROXY_TIMEOUT": "2",
    }
    log = tmp_path / "server.log"
    with log.open("w") as out, serving(env=env, output=out) as (base, _), httpx.Client(timeout=60) as client:
        with client.stream("GET", base + path) as response:
            assert response.status_code == 200 and response.headers.get("transfer-encoding") == "chunked"
            body = bytearray()
            try:
                for chunk in response.iter_raw():
                    body += chunk
                cut = False
            except httpx.RemoteProtocolError:  # "incomplete chunked read"
                cut = True
        assert client.get(base + "/health").status_code == 200
        assert client.get(base + SMALL).status_code == 200  # the worker serves on
        with client.stream("GET", base + path) as again:  # its headers say whether it was cached
            cached = again.headers["x-cache"].startswith("HIT")
    if cut:
        assert "streamed result cut short" in log.read_text()
        assert not cached
    else:  # the encode made it in time: a whole image (cached unless over the memory tier's entry size)
        assert size_of(bytes(body)) == (4800, 3200)


def test_a_result_too_large_to_hold_is_encoded_lazily_and_buffered(streaming: str) -> None:
    """Above 16 MP holding the pixels would cost more memory than the lazy, strip-by-strip encode."""
    response = _get(streaming, "/_/rs:fit:6000:6000/el:1/f:png/plain/local:///photo.jpg")  # 24 MP
    assert response.status_code == 200 and int(response.headers["content-length"]) == len(response.content)
