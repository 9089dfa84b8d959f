"""One conformance suite that every source kind must pass (local and http here; s3 joins later)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from imgproxy_py.errors import SourceError, SourceTimeoutError, SourceTooBigError
from imgproxy_py.netpolicy import AddressPolicy
from imgproxy_py.sources.base import FetchLimits, Source
from imgproxy_py.sources.http import HTTPSource
from imgproxy_py.sources.local import LocalSource
from tests.support import Origin, fixture_path, run_origin


@dataclass
class Backend:
    """A source plus how to address, change and slow down objects in it."""

    source: Source
    root: Path
    url: Callable[[str], str]
    slow_down: Callable[[float], None]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    for name in ("320x240.jpg", "with-alpha.png"):
        shutil.copy(fixture_path(name), tmp_path / name)
    return tmp_path


@pytest.fixture
def http_origin(store: Path) -> Iterator[Origin]:
    yield from run_origin(store)


@pytest.fixture(params=["local", "http"])
async def backend(request: pytest.FixtureRequest, store: Path) -> AsyncIterator[Backend]:
    if request.param == "local":
        yield Backend(LocalSource(str(store)), store, lambda name: f"local:///{name}", lambda _: None)
        return
    origin: Origin = request.getfixturevalue("http_origin")
    source = HTTPSource(AddressPolicy(allow_loopback=True), user_agent="test", max_redirects=3)

    def slow(seconds: float) -> None:
        origin.delay = seconds

    try:
        yield Backend(source, store, origin.url, slow)
    finally:
        await source.aclose()


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
    path = backend.root / "320x240.jpg"
    path.write_bytes(path.read_bytes() + b"\x00")
    changed = await backend.source.fetch(backend.url("320x240.jpg"), LIMITS)
    assert changed.etag != first.etag


async def test_missing_object_is_404(backend: Backend) -> None:
    with pytest.raises(SourceError) as info:
        await backend.source.fetch(backend.url("missing.jpg"), LIMITS)
    assert info.value.status_code == 404


async def test_size_cap(backend: Backend) -> None:
    size = (backend.root / "320x240.jpg").stat().st_size
    with pytest.raises(SourceTooBigError):
        await backend.source.fetch(backend.url("320x240.jpg"), FetchLimits(max_bytes=size - 1, timeout=5))
    exact = await backend.source.fetch(backend.url("320x240.jpg"), FetchLimits(max_bytes=size, timeout=5))
    assert len(exact.data) == size


async def test_timeout(backend: Backend) -> None:
    if isinstance(backend.source, LocalSource):
        pytest.skip("a local read cannot be slowed down from outside")
    backend.slow_down(1.0)
    with pytest.raises(SourceTimeoutError):
        await backend.source.fetch(backend.url("320x240.jpg"), FetchLimits(timeout=0.2))
