"""``http(s)://`` sources through one shared httpx.AsyncClient.

Every connection, including each redirect hop, goes through GuardedBackend, which
resolves the host itself and connects only to addresses the AddressPolicy allows, so
a name that resolves (or re-resolves) to a private address is refused at connect time.
The body is streamed with a size cap and the whole download has one deadline.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable, Iterable, Iterator

import anyio
import httpcore
import httpx

from imgproxy_py.errors import (
    InvalidSourceURLError,
    SourceStatusError,
    SourceTimeoutError,
    SourceTruncatedError,
    SourceUnreachableError,
)
from imgproxy_py.netpolicy import AddressPolicy
from imgproxy_py.sources.base import BoundedBody, FetchLimits, SizeCap, SourceImage, SourceMeta, StreamSink


class BlockedAddressError(InvalidSourceURLError):
    """The source host resolves only to addresses the policy forbids."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolve(host, port, timeout)
        allowed = [a for a in addresses if self._policy.allows(ipaddress.ip_address(a))]
        if not allowed:
            raise BlockedAddressError(
                "source address is not allowed",
                hint="loopback, link-local and private addresses are refused unless "
                "IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES, _LINK_LOCAL_ or _PRIVATE_ re-allow them",
            )
        last_error: Exception | None = None
        for address in allowed:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def _resolve(self, host: str, port: int, timeout: float | None) -> list[str]:
        host = host.strip("[]")
        try:
            ipaddress.ip_address(host)
            return [host]
        except ValueError:
            pass
        try:
            with anyio.fail_after(timeout):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise httpcore.ConnectTimeout("DNS lookup timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError("DNS lookup failed") from exc
        seen: list[str] = []
        for info in infos:
            address = str(info[4][0]).split("%", 1)[0]
            if address not in seen:
                seen.append(address)
        return seen

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool built on GuardedBackend."""

    def __init__(self, policy: AddressPolicy, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy),
        )


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class HTTPSource:
    """Redirects are followed here, one hop at a time, so every hop is checked: its scheme,
    the allowed-sources policy (``allow_url``) and, at connect time, its resolved address."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        user_agent: str,
        max_redirects: int,
        allow_url: Callable[[str], bool] | None = None,
    ) -> None:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=90)
        self._max_redirects = max_redirects
        self._allow_url = allow_url
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(policy, limits),
            follow_redirects=False,
            # Images are compressed already; asking for identity and reading the raw body (below)
            # means no decompression at all, so a gzip/brotli bomb cannot expand past the cap
            # inside one decoder call.
            headers={"User-Agent": user_agent, "Accept": "image/*,*/*;q=0.8", "Accept-Encoding": "identity"},
            trust_env=False,
            timeout=None,
        )

    async def fetch(self, url: str, limits: FetchLimits) -> SourceImage:
        with _mapped_errors():
            with anyio.fail_after(limits.timeout):
                return await self._download(url, limits.max_bytes)
        raise AssertionError("unreachable")  # pragma: no cover - _mapped_errors re-raises

    async def stream(self, url: str, limits: FetchLimits, sink: StreamSink) -> None:
        """The body to ``sink`` as it arrives: the same redirects, checks, cap and deadline as ``fetch``."""
        with _mapped_errors():
            with anyio.fail_after(limits.timeout):
                response = await self._open(url)
                try:
                    _check_status(response)
                    cap = SizeCap(limits.max_bytes, response.headers.get("content-length"))
                    await sink.begin(
                        SourceMeta(
                            etag=response.headers.get("etag"),
                            last_modified=response.headers.get("last-modified"),
                            content_type=response.headers.get("content-type"),
                        )
                    )
                    try:
                        async for chunk in response.aiter_raw():
                            cap.add(len(chunk))
                            await sink.write(chunk)
                    except httpx.RemoteProtocolError:
                        raise SourceTruncatedError("source body ended early") from None
                finally:
                    await response.aclose()

    async def _open(self, url: str) -> httpx.Response:
        """The response to GET ``url`` after following (and checking) redirects, body unread."""
        for _ in range(self._max_redirects + 1):
            response = await self._client.send(self._client.build_request("GET", url), stream=True)
            if response.status_code not in _REDIRECTS or "location" not in response.headers:
                return response
            location = response.headers["location"]
            await response.aclose()
            url = str(httpx.URL(url).join(location))
            if not url.startswith(("http://", "https://")):
                raise InvalidSourceURLError("redirect to a non-http(s) URL")
            if self._allow_url is not None and not self._allow_url(url):
                raise InvalidSourceURLError("redirect to a source that is not allowed")
        raise SourceUnreachableError("too many redirects")

    async def _download(self, url: str, max_bytes: int) -> SourceImage:
        response = await self._open(url)
        try:
            return await self._read(response, max_bytes)
        finally:
            await response.aclose()

    async def _read(self, response: httpx.Response, max_bytes: int) -> SourceImage:
        _check_status(response)
        body = BoundedBody(max_bytes, response.headers.get("content-length"))
        try:
            async for chunk in response.aiter_raw():
                body.add(chunk)
        except httpx.RemoteProtocolError:
            body.discard()
            raise SourceTruncatedError("source body ended early") from None
        except BaseException:  # timeout, cancellation: the partial body goes now, not at the next gc
            body.discard()
            raise
        return SourceImage(
            data=body.take(),
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            content_type=response.headers.get("content-type"),
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _check_status(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise SourceStatusError(response.status_code)
    if response.status_code != 200:
        raise SourceUnreachableError(f"unexpected source status {response.status_code}")


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    """httpx's and the deadline's exceptions as the SourceError family."""
    try:
        yield
    except TimeoutError:
        raise SourceTimeoutError("download timed out") from None
    except httpx.TimeoutException:
        raise SourceTimeoutError("download timed out") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        raise InvalidSourceURLError("invalid source URL") from None
    except httpx.RemoteProtocolError:
        raise SourceUnreachableError("source closed the connection or sent a bad response") from None
    except (httpx.TooManyRedirects, httpx.TransportError):
        raise SourceUnreachableError("source is unreachable") from None
