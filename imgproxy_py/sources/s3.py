"""``s3://bucket/key[?versionId]`` from S3-compatible storage (AWS, MinIO, …).

As imgproxy: the key is taken as written after the one decoding the URL parser did, and
everything after the first ``?`` is the version id. The minio client is synchronous, so
the whole download runs in a worker thread on this source's own limiter, under one
deadline; every backend failure is mapped to the SourceError family in ``_mapped_errors``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator
from email.utils import formatdate, parsedate_to_datetime

import anyio
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError
from urllib3 import BaseHTTPResponse
from urllib3.exceptions import (
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.exceptions import TimeoutError as URLLib3TimeoutError

from imgproxy_py.errors import (
    InvalidSourceURLError,
    SourceError,
    SourceNotFoundError,
    SourceStatusError,
    SourceTimeoutError,
    SourceTruncatedError,
    SourceUnreachableError,
)
from imgproxy_py.s3conn import BACKEND_ERRORS, S3Target, close_client, in_thread
from imgproxy_py.sources.base import BoundedBody, FetchLimits, SizeCap, SourceImage, SourceMeta, StreamSink

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-_:]{1,61}[a-z0-9]")  # what the minio client accepts
_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchVersion", "NotFound"})
_CHUNK = 64 * 1024

log = logging.getLogger("imgproxy_py.sources.s3")


class S3Source:
    def __init__(
        self,
        target: S3Target,
        *,
        timeout: float,
        allowed_buckets: tuple[str, ...] = (),
        denied_buckets: tuple[str, ...] = (),
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        """``timeout`` bounds connecting and each socket read (and so how long an abandoned thread lingers)."""
        self._client: Minio = target.client(timeout)
        self._allowed = frozenset(allowed_buckets)
        self._denied = frozenset(denied_buckets)
        self._limiter = limiter or anyio.CapacityLimiter(64)  # as many as the pool keeps connections

    def parse(self, url: str) -> tuple[str, str, str | None]:
        """``(bucket, key, version_id)`` of an allowed bucket, or InvalidSourceURLError."""
        rest = url.split("://", 1)[1] if "://" in url else ""
        rest, _, version = rest.partition("?")
        bucket, _, key = rest.partition("/")
        if not _BUCKET.fullmatch(bucket) or not key.strip() or "\x00" in key:
            raise InvalidSourceURLError("malformed s3 URL")
        if bucket in self._denied or (self._allowed and bucket not in self._allowed):
            raise InvalidSourceURLError("s3 bucket is not allowed")
        return bucket, key, version or None

    async def fetch(self, url: str, limits: FetchLimits) -> SourceImage:
        bucket, key, version = self.parse(url)
        deadline = time.monotonic() + limits.timeout
        with _mapped_errors():
            try:
                with anyio.fail_after(limits.timeout):
                    return await in_thread(
                        self._limiter, _download, self._client, bucket, key, version, limits.max_bytes, deadline
                    )
            except TimeoutError:
                raise SourceTimeoutError("s3 download timed out") from None

    async def stream(self, url: str, limits: FetchLimits, sink: StreamSink) -> None:
        """The object to ``sink`` as it arrives: each chunk read on a thread, then handed over on the loop."""
        bucket, key, version = self.parse(url)
        with _mapped_errors():
            try:
                with anyio.fail_after(limits.timeout):
                    response = await in_thread(self._limiter, _get, self._client, bucket, key, version)
                    complete = False
                    try:
                        cap = SizeCap(limits.max_bytes, response.headers.get("content-length"))
                        await sink.begin(
                            SourceMeta(
                                etag=_quoted(response.headers.get("etag")),
                                last_modified=_http_date(response.headers.get("last-modified")),
                                content_type=response.headers.get("content-type"),
                            )
                        )
                        chunks = response.stream(_CHUNK)
                        while chunk := await in_thread(self._limiter, _next_chunk, chunks):
                            cap.add(len(chunk))
                            await sink.write(chunk)
                        complete = True
                    finally:
                        if not complete:
                            response.close()  # an unread body makes the connection unusable
                        response.release_conn()
            except TimeoutError:
                raise SourceTimeoutError("s3 download timed out") from None

    async def aclose(self) -> None:
        close_client(self._client)


def _get(client: Minio, bucket: str, key: str, version: str | None) -> BaseHTTPResponse:
    return client.get_object(bucket, key, version_id=version)


def _next_chunk(chunks: Iterator[bytes]) -> bytes:
    """The next chunk of a body, b"" at its end (runs in a thread)."""
    try:
        return next(chunks)
    except StopIteration:
        return b""
    except ProtocolError:  # urllib3 enforces Content-Length: a short body ends up here
        raise SourceTruncatedError("s3 object body ended early") from None


def _download(
    client: Minio, bucket: str, key: str, version: str | None, max_bytes: int, deadline: float
) -> SourceImage:
    """Runs in a worker thread. Checks the deadline between chunks so an abandoned download stops soon."""
    response = client.get_object(bucket, key, version_id=version)
    complete = False
    try:
        body = BoundedBody(max_bytes, response.headers.get("content-length"), "s3 object")
        try:
            for chunk in response.stream(_CHUNK):
                body.add(chunk)
                if time.monotonic() > deadline:
                    raise SourceTimeoutError("s3 download timed out")
        except ProtocolError:  # urllib3 enforces Content-Length: a short body ends up here
            body.discard()
            raise SourceTruncatedError("s3 object body ended early") from None
        except BaseException:  # the partial body goes now, not at the next gc
            body.discard()
            raise
        data = body.take()
        complete = True
    finally:
        if not complete:
            response.close()  # an unread body makes the connection unusable
        response.release_conn()
    return SourceImage(
        data=data,
        etag=_quoted(response.headers.get("etag")),
        last_modified=_http_date(response.headers.get("last-modified")),
        content_type=response.headers.get("content-type"),
    )


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    """The boundary: every backend exception becomes a SourceError (as httpx maps httpcore's)."""
    try:
        yield
    except SourceError:
        raise
    except BACKEND_ERRORS as exc:
        raise _map(exc) from None
    except Exception as exc:  # a client bug or an answer it could not handle: still never escapes
        log.warning("unexpected s3 client error", exc_info=True)
        raise SourceUnreachableError(f"unexpected s3 client error ({type(exc).__name__})") from None


def _map(exc: Exception) -> SourceError:
    if isinstance(exc, MaxRetryError) and isinstance(exc.reason, Exception):
        exc = exc.reason
    if isinstance(exc, S3Error):
        return _for_status(exc.response.status, exc.code)
    if isinstance(exc, ServerError):
        return _for_status(exc.status_code, None)
    if isinstance(exc, InvalidResponseError):  # a non-XML answer, e.g. a proxy's 502 page
        return _for_status(exc._code, None)  # minio keeps the status only there
    # NewConnectionError (refused, DNS) subclasses ConnectTimeoutError: test it first.
    if isinstance(exc, NewConnectionError):
        return SourceUnreachableError("s3 endpoint is unreachable")
    if isinstance(exc, URLLib3TimeoutError | ReadTimeoutError | TimeoutError):
        return SourceTimeoutError("s3 download timed out")
    if isinstance(exc, HTTPError | OSError):
        return SourceUnreachableError(f"s3 endpoint is unreachable ({type(exc).__name__})")
    if isinstance(exc, ValueError):
        return InvalidSourceURLError("s3 client refused the bucket or key")
    return SourceUnreachableError(f"bad s3 response ({type(exc).__name__})")


def _for_status(status: int, code: str | None) -> SourceError:
    if status == 404 or code in _NOT_FOUND:
        return SourceNotFoundError(f"s3 object not found ({code or status})")
    if status == 403:  # as imgproxy: a key we may not read looks missing, its existence is not revealed
        return SourceNotFoundError(f"s3 access denied ({code or status})")
    if 400 <= status < 600:
        return SourceStatusError(status, f"s3 error {status} ({code or 'no code'})")
    return SourceUnreachableError(f"unexpected s3 status {status} ({code or 'no code'})")


def _quoted(etag: str | None) -> str | None:
    if not etag:
        return None
    return etag if etag.startswith(('"', 'W/"')) else f'"{etag}"'


def _http_date(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return formatdate(parsedate_to_datetime(value).timestamp(), usegmt=True)
    except (TypeError, ValueError, IndexError):
        return None
