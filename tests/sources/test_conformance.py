"""One conformance suite that every source kind must pass: local, http and s3 (moto's server)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from imgproxy_py.errors import SourceError, SourceTimeoutError, SourceTooBigError
from imgproxy_py.netpolicy import AddressPolicy
from imgproxy_py.s3conn import S3Target
from imgproxy_py.sources.base import FetchLimits, Source
from imgproxy_py.sources.http import HTTPSource
from imgproxy_py.sources.local import LocalSource
from imgproxy_py.sources.s3 import S3Source
from tests.s3_server import S3Server, blackhole
from tests.support import Origin, fixture_path, run_origin


@dataclass
class Backend:
    """A source plus how to address, change and slow down objects in it."""

    source: Source
    root: Path
    url: Callable[[str], str]
    slow_down: Callable[[float], None]
    upload: Callable[[str, bytes], None] = lambda name, data: None

    def write(self, name: str, data: bytes) -> None:
        """Change an object: the file under root and, for a remote store, its stored copy."""
        (self.root / name).write_bytes(data)
        self.upload(name, data)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    for name in ("320x240.jpg", "with-alpha.png"):
        shutil.copy(fixture_path(name), tmp_path / name)
    return tmp_path


@pytest.fixture
def http_origin(store: Path) -> Iterator[Origin]:
    yield from run_origin(store)


@pytest.fixture(params=["local", "http", "s3"])
async def backend(request: pytest.FixtureRequest, store: Path) -> AsyncIterator[Backend]:
    if request.param == "local":
        yield Backend(LocalSource(str(store)), store, lambda name: f"local:///{name}", lambda _: None)
        return
    if request.param == "s3":
        async with s3_backend(request.getfixturevalue("s3_server"), store) as backend:
            yield backend
        return
    origin: Origin = request.getfixturevalue("http_origin")
    source = HTTPSource(AddressPolicy(allow_loopback=True), user_agent="test", max_redirects=3)

    def slow(seconds: float) -> None:
        origin.delay = seconds

    try:
        yield Backend(source, store, origin.url, slow)
    finally:
        await source.aclose()


@asynccontextmanager
async def s3_backend(server: S3Server, store: Path) -> AsyncIterator[Backend]:
    """A fresh bucket holding the store; slowing down points the source at an endpoint that never answers."""
    bucket = server.new_bucket(sorted(store.iterdir()))
    async with AsyncExitStack() as stack:
        source = S3Source(server.target(), timeout=5)
        stack.push_async_callback(source.aclose)
        backend = Backend(source, store, lambda name: f"s3://{bucket}/{name}", lambda _: None)

        def slow(seconds: float) -> None:
            silent = S3Source(S3Target(stack.enter_context(blackhole())), timeout=seconds + 1)
            stack.push_async_callback(silent.aclose)
            backend.source = silent

        def upload(name: str, data: bytes) -> None:
            server.put(bucket, name, data)

        backend.slow_down = slow
        backend.upload = upload
        yield backend


LIMITS = FetchLimits(max_bytes=0, timeout=5)


async def test_fetch_returns_the_exact_bytes(backend: Backend) -> None:
    image = await backend.source.fetch(backend.url("320x240.jpg"), LIMITS)
    assert image.data == (backend.root / "320x240.jpg").read_bytes()


async def test_validators_are_stable_and_follow_changes(backend: Backend) -> None:
    first = await backend.source.fetch(backend.url("320x240.jpg"), LIMITS)
    again = await backend.source.fetch(backend.url("320x240.jpg"), LIMITS)
    assert first.etag and first.etag.startswith('"') and first.etag.endswith('"')
    assert first.etag == again.etag
    assert first.last_modified
    other = await backend.source.fetch(backend.url("with-alpha.png"), LIMITS)
    assert other.etag != first.etag
    backend.write("320x240.jpg", (backend.root / "320x240.jpg").read_bytes() + b"\x00")
    changed = await backend.source.fetch(backend.url("320x240.jpg"), LIMITS)
    assert changed.etag != first.etag


async def test_missing_object_is_404(backend: Backend) -> None:
    with pytest.raises(SourceError) as info:
        await backend.source.fetch(backend.url("missing.jpg"), LIMITS)
    assert info.value.status_code == 404


async def test_size_cap(backend: Backend) -> None:
    size = (backend.root / "320x240.jpg").stat().st_size
    with pytest.raises(SourceTooBigError) as info:
        await backend.source.fetch(backend.url("320x240.jpg"), FetchLimits(max_bytes=size - 1, timeout=5))
    assert (info.value.status_code, info.value.public_message) == (422, "Source image file is too big")
    exact = await backend.source.fetch(backend.url("320x240.jpg"), FetchLimits(max_bytes=size, timeout=5))
    assert len(exact.data) == size


async def test_timeout(backend: Backend) -> None:
    if isinstance(backend.source, LocalSource):
        pytest.skip("a local read cannot be slowed down from outside")
    backend.slow_down(1.0)
    with pytest.raises(SourceTimeoutError):
        await backend.source.fetch(backend.url("320x240.jpg"), FetchLimits(timeout=0.2))
