"""The one way to connect to S3-compatible storage (AWS, MinIO, …), shared by every S3 user.

Used by ``sources/s3.py`` and by the S3 result-cache tier. The API is deliberately small:

- ``S3Target``: where and as whom to connect (``S3Target.from_settings(settings.s3)``);
- ``make_client(...)`` / ``S3Target.client(timeout)``: a ``minio.Minio`` whose connection pool
  has connect/read timeouts and **no retries** (a retry hides an outage and blows the caller's
  time budget; callers decide what a failure means);
- ``in_thread(limiter, fn, *args)``: minio is synchronous, so every call goes through this,
  on a dedicated ``anyio.CapacityLimiter`` (never the event loop, never anyio's shared default);
- ``BACKEND_ERRORS``: every exception family a minio call can raise, to map at the caller's boundary;
- ``close_client(client)``: drop the pooled connections on shutdown.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar, TypeVarTuple
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import certifi
import urllib3
from minio import Minio
from minio.error import MinioException

from imgproxy_py.settings import S3Settings

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# What a minio call can raise: its own errors, urllib3's (connect/read/TLS/protocol), raw socket
# errors, ValueError (names minio refuses) and a malformed XML error body.
BACKEND_ERRORS: tuple[type[Exception], ...] = (
    MinioException,
    urllib3.exceptions.HTTPError,
    OSError,
    ValueError,
    ET.ParseError,
)


@dataclass(frozen=True, slots=True)
class S3Target:
    """Connection settings only (no bucket): one target can serve sources and a cache alike."""

    endpoint: str = "https://s3.amazonaws.com"  # scheme://host[:port]
    region: str = "us-east-1"
    path_style: bool = True
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, s3: S3Settings) -> S3Target:
        return cls(
            endpoint=s3.endpoint,
            region=s3.region,
            path_style=s3.path_style,
            access_key=s3.access_key,
            secret_key=s3.secret_key,
            session_token=s3.session_token,
        )

    def client(self, timeout: float, *, max_connections: int = 64) -> Minio:
        return make_client(
            endpoint=self.endpoint,
            region=self.region,
            access_key=self.access_key,
            secret_key=self.secret_key,
            session_token=self.session_token,
            path_style=self.path_style,
            timeout=timeout,
            max_connections=max_connections,
        )


def make_client(
    *,
    endpoint: str,
    region: str,
    access_key: str | None = None,
    secret_key: str | None = None,
    session_token: str | None = None,
    path_style: bool = True,
    timeout: float,
    max_connections: int = 64,
) -> Minio:
    """A client for ``endpoint`` (``http(s)://host[:port]``); no access key means anonymous requests.

    ``timeout`` bounds connecting and each socket read, not a whole download: callers put
    their own deadline around the call (``anyio.fail_after`` + ``in_thread``).
    """
    url = urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError("S3 endpoint must be http(s)://host[:port]")
    pool = urllib3.PoolManager(
        num_pools=4,
        maxsize=max_connections,
        block=False,
        retries=False,  # no retries and no redirects: one attempt, its error goes to the caller
        timeout=urllib3.Timeout(connect=timeout, read=timeout),
        cert_reqs="CERT_REQUIRED",
        ca_certs=certifi.where(),
    )
    client = Minio(
        url.netloc,
        access_key=access_key or None,
        secret_key=secret_key if access_key else None,
        session_token=session_token if access_key else None,
        secure=url.scheme == "https",
        region=region,  # a fixed region: no GetBucketLocation round trip before each first use
        http_client=pool,
    )
    if path_style:
        client.disable_virtual_style_endpoint()  # type: ignore[no-untyped-call]
    else:
        client.enable_virtual_style_endpoint()  # type: ignore[no-untyped-call]
    return client


def close_client(client: Minio) -> None:
    """Drop the pooled connections (minio has no public close; its pool is the one we gave it)."""
    client._http.clear()


async def in_thread(limiter: anyio.CapacityLimiter, func: Callable[[*Ts], T], *args: *Ts) -> T:
    """Run a blocking minio call in a worker thread; on cancellation the thread is abandoned.

    An abandoned thread ends at the latest when the client's socket timeout fires, so give
    long operations their own deadline checks inside ``func``.
    """
    return await anyio.to_thread.run_sync(func, *args, limiter=limiter, abandon_on_cancel=True)
