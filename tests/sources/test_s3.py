"""s3:// specifics against a real S3 endpoint (moto's server): versions, bucket lists, error mapping, the app."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from imgproxy_py.errors import (
    InvalidSourceURLError,
    SourceError,
    SourceNotFoundError,
    SourceStatusError,
    SourceTimeoutError,
    SourceTooBigError,
    SourceTruncatedError,
    SourceUnreachableError,
)
from imgproxy_py.s3conn import S3Target
from imgproxy_py.sources.base import FetchLimits
from imgproxy_py.sources.s3 import S3Source
from tests.conftest import ClientFactory
from tests.s3_server import S3Server, blackhole, closed_port_endpoint
from tests.support import Origin, fixture_path, run_origin, size_of

LIMITS = FetchLimits(max_bytes=0, timeout=5)
JPEG = "320x240.jpg"


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.new_bucket([fixture_path(JPEG), fixture_path("with-alpha.png")])


@pytest.fixture
async def source(s3_server: S3Server) -> AsyncIterator[S3Source]:
    src = S3Source(s3_server.target(), timeout=5)
    yield src
    await src.aclose()


# --- addressing ---------------------------------------------------------------------------


async def test_version_id_after_the_question_mark(s3_server: S3Server, source: S3Source) -> None:
    bucket = s3_server.new_bucket(versioned=True)
    old = s3_server.put(bucket, "photo.jpg", b"first version")
    new = s3_server.put(bucket, "photo.jpg", b"second version")
    assert old and new and old != new
    latest = await source.fetch(f"s3://{bucket}/photo.jpg", LIMITS)
    older = await source.fetch(f"s3://{bucket}/photo.jpg?{old}", LIMITS)
    assert latest.data == b"second version"
    assert older.data == b"first version"
    assert older.etag != latest.etag
    with pytest.raises(SourceNotFoundError):
        await source.fetch(f"s3://{bucket}/photo.jpg?00000000-0000-0000-0000-000000000000", LIMITS)


async def test_key_is_taken_as_written(s3_server: S3Server, source: S3Source) -> None:
    """The parser already decoded the URL once; the key is not decoded again (as imgproxy)."""
    bucket = s3_server.new_bucket()
    s3_server.put(bucket, "dir/a b/ü%41.jpg", b"literal")
    s3_server.put(bucket, "dir/a b/üA.jpg", b"decoded twice")
    image = await source.fetch(f"s3://{bucket}/dir/a b/ü%41.jpg", LIMITS)
    assert image.data == b"literal"


async def test_validators_are_passed_through(bucket: str, source: S3Source) -> None:
    image = await source.fetch(f"s3://{bucket}/{JPEG}", LIMITS)
    assert image.data == fixture_path(JPEG).read_bytes()
    assert image.etag and image.etag.startswith('"') and image.etag.endswith('"')
    assert image.last_modified and image.last_modified.endswith(" GMT")


@pytest.mark.parametrize(
    "url",
    ["s3://", "s3://bucket", "s3://bucket/", "s3://Upper/key.jpg", "s3://a/key.jpg", "s3:///key.jpg", "s3://b_/k"],
)
async def test_malformed_urls(source: S3Source, url: str) -> None:
    with pytest.raises(InvalidSourceURLError) as info:
        await source.fetch(url, LIMITS)
    assert info.value.status_code == 404


async def test_missing_bucket_is_404(source: S3Source) -> None:
    with pytest.raises(SourceNotFoundError) as info:
        await source.fetch("s3://no-such-bucket-here/x.jpg", LIMITS)
    assert info.value.status_code == 404


# --- bucket lists -------------------------------------------------------------------------


async def test_allowed_buckets(s3_server: S3Server, bucket: str) -> None:
    other = s3_server.new_bucket([fixture_path(JPEG)])
    source = S3Source(s3_server.target(), timeout=5, allowed_buckets=(bucket,))
    try:
        assert (await source.fetch(f"s3://{bucket}/{JPEG}", LIMITS)).data
        with pytest.raises(InvalidSourceURLError) as info:
            await source.fetch(f"s3://{other}/{JPEG}", LIMITS)
        assert (info.value.status_code, info.value.public_message) == (404, "Invalid source URL")
    finally:
        await source.aclose()


async def test_denied_buckets(s3_server: S3Server, bucket: str) -> None:
    other = s3_server.new_bucket([fixture_path(JPEG)])
    source = S3Source(s3_server.target(), timeout=5, denied_buckets=(bucket,))
    try:
        assert (await source.fetch(f"s3://{other}/{JPEG}", LIMITS)).data
        with pytest.raises(InvalidSourceURLError):
            await source.fetch(f"s3://{bucket}/{JPEG}", LIMITS)
    finally:
        await source.aclose()


# --- error mapping ------------------------------------------------------------------------


async def test_access_denied_looks_missing(s3_server: S3Server, bucket: str) -> None:
    key, secret = s3_server.unprivileged_keys()
    source = S3Source(S3Target(s3_server.endpoint, "us-east-1", True, key, secret), timeout=5)
    try:
        with s3_server.enforcing_auth(), pytest.raises(SourceNotFoundError) as info:
            await source.fetch(f"s3://{bucket}/{JPEG}", LIMITS)
        assert info.value.status_code == 404
        assert "access denied" in info.value.detail
    finally:
        await source.aclose()


async def test_wrong_secret_looks_missing(s3_server: S3Server, bucket: str) -> None:
    source = S3Source(s3_server.target(secret_key="not-the-secret-of-anyone-at-all"), timeout=5)
    try:
        with s3_server.enforcing_auth(), pytest.raises(SourceNotFoundError):
            await source.fetch(f"s3://{bucket}/{JPEG}", LIMITS)
    finally:
        await source.aclose()


async def test_backend_down_is_unreachable_quickly() -> None:
    source = S3Source(S3Target(closed_port_endpoint()), timeout=5)
    try:
        started = time.monotonic()
        with pytest.raises(SourceUnreachableError) as info:
            await source.fetch(f"s3://bucket/{JPEG}", LIMITS)
        assert time.monotonic() - started < 3  # no retries: well under the 5 s timeout (a margin)
        assert info.value.status_code == 404
    finally:
        await source.aclose()


async def test_unresolvable_endpoint_is_unreachable() -> None:
    source = S3Source(S3Target("http://s3.invalid:9000"), timeout=2)
    try:
        with pytest.raises(SourceUnreachableError):
            await source.fetch(f"s3://bucket/{JPEG}", LIMITS)
    finally:
        await source.aclose()


async def test_silent_backend_times_out_on_the_deadline() -> None:
    with blackhole() as endpoint:
        source = S3Source(S3Target(endpoint), timeout=5)
        try:
            started = time.monotonic()
            with pytest.raises(SourceTimeoutError) as info:
                await source.fetch(f"s3://bucket/{JPEG}", FetchLimits(timeout=0.3))
            assert time.monotonic() - started < 3  # the 0.3 s deadline, not the 5 s socket timeout
            assert info.value.status_code == 504
        finally:
            await source.aclose()


async def test_socket_timeout_shorter_than_the_deadline_is_a_timeout() -> None:
    with blackhole() as endpoint:
        source = S3Source(S3Target(endpoint), timeout=0.2)
        try:
            with pytest.raises(SourceTimeoutError):
                await source.fetch(f"s3://bucket/{JPEG}", FetchLimits(timeout=5))
        finally:
            await source.aclose()


@pytest.fixture
def origin_as_s3(tmp_path: Path) -> Iterator[Origin]:
    """A plain HTTP server as the S3 endpoint: path style turns s3://status/503 into GET /status/503."""
    (tmp_path / JPEG).write_bytes(fixture_path(JPEG).read_bytes())
    yield from run_origin(tmp_path)


@pytest.mark.parametrize(("status", "expected"), [(500, 502), (503, 502), (403, 404), (404, 404), (400, 400)])
async def test_backend_status_mapping(origin_as_s3: Origin, status: int, expected: int) -> None:
    source = S3Source(S3Target(origin_as_s3.base), timeout=5)
    try:
        with pytest.raises(SourceError) as info:
            await source.fetch(f"s3://status/{status}", LIMITS)
        assert info.value.status_code == expected
        if status >= 500:
            assert isinstance(info.value, SourceStatusError)
    finally:
        await source.aclose()


async def test_truncated_body(origin_as_s3: Origin) -> None:
    source = S3Source(S3Target(origin_as_s3.base), timeout=5)
    try:
        with pytest.raises(SourceTruncatedError):
            await source.fetch(f"s3://truncate/{JPEG}", LIMITS)
    finally:
        await source.aclose()


def test_secrets_stay_out_of_reprs(s3_server: S3Server) -> None:
    target = s3_server.target(secret_key="very-secret-value-1234")
    assert "very-secret-value-1234" not in repr(target)
    assert target.access_key and target.access_key not in repr(target)


# --- through the app ----------------------------------------------------------------------


async def test_end_to_end(client_factory: ClientFactory, s3_server: S3Server, bucket: str) -> None:
    async with client_factory(**s3_server.env()) as client:
        response = await client.get(f"/insecure/rs:fit:100:100/plain/s3://{bucket}/{JPEG}@png")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        assert size_of(response.content) == (100, 75)
        assert response.headers.get("etag")
        missing = await client.get(f"/insecure/rs:fit:100:100/plain/s3://{bucket}/missing.jpg@png")
        assert missing.status_code == 404
        assert missing.text == "Source image is not found"


async def test_end_to_end_denied_bucket(client_factory: ClientFactory, s3_server: S3Server, bucket: str) -> None:
    async with client_factory(**s3_server.env(IMGPROXY_S3_DENIED_BUCKETS=f"other,{bucket}")) as client:
        response = await client.get(f"/insecure/plain/s3://{bucket}/{JPEG}@png")
    assert response.status_code == 404
    assert response.text == "Invalid source URL"


async def test_end_to_end_backend_down(client_factory: ClientFactory) -> None:
    env = {"IMGPROXY_USE_S3": "true", "IMGPROXY_S3_ENDPOINT": closed_port_endpoint()}
    async with client_factory(**env) as client:
        response = await client.get(f"/insecure/plain/s3://bucket/{JPEG}@png")
    assert response.status_code == 404
    assert response.text == "Source is unreachable"


async def test_plain_version_id_needs_an_escaped_question_mark(
    client_factory: ClientFactory, s3_server: S3Server
) -> None:
    """An unescaped '?' starts the request's query: the version would be lost and the latest served."""
    bucket = s3_server.new_bucket(versioned=True)
    old = s3_server.put(bucket, "photo", fixture_path(JPEG).read_bytes())
    s3_server.put(bucket, "photo", fixture_path("with-alpha.png").read_bytes())
    async with client_factory(**s3_server.env()) as client:
        escaped = await client.get(f"/insecure/plain/s3://{bucket}/photo%3F{old}@png")
        assert escaped.status_code == 200 and size_of(escaped.content) == (320, 240)  # the old version
        unescaped = await client.get(f"/insecure/plain/s3://{bucket}/photo?{old}")
        assert unescaped.status_code == 404 and unescaped.text == "Invalid URL"
        latest = await client.get(f"/insecure/plain/s3://{bucket}/photo@png")
        assert latest.status_code == 200 and size_of(latest.content) != (320, 240)


async def test_an_object_of_unknown_size_is_cut_at_the_default_cap(
    client_factory: ClientFactory, origin_as_s3: Origin
) -> None:
    """No Content-Length and a body that never ends: refused at 64 MiB as it streams, not at the timeout."""
    env = {"IMGPROXY_USE_S3": "true", "IMGPROXY_S3_ENDPOINT": origin_as_s3.base}
    async with client_factory(**env) as client:
        response = await client.get("/insecure/w:10/plain/s3://endless/photo.jpg")
    assert response.status_code == 422, response.text
    assert response.text == "Source image file is too big"  # imgproxy's text


async def test_the_cap_applies_as_the_object_streams(origin_as_s3: Origin) -> None:
    source = S3Source(S3Target(origin_as_s3.base), timeout=5)
    try:
        with pytest.raises(SourceTooBigError):
            await source.fetch("s3://endless/photo.jpg", FetchLimits(max_bytes=1024 * 1024, timeout=5))
        image = await source.fetch(f"s3://noetag/{JPEG}", FetchLimits(max_bytes=1024 * 1024, timeout=5))
        assert image.data == fixture_path(JPEG).read_bytes()
    finally:
        await source.aclose()
