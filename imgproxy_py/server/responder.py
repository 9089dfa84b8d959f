"""A result entry → the HTTP response: 200s (with prebuilt headers for repeated hits), 304s and stale answers.

One Responder per kind of result; what differs between them is only the content headers
(an image's type, disposition and purge tags; /info's JSON type) and whether a 200's
header list is worth memoising (a cached result is served again; a raw pass-through is not).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from starlette.responses import Response

from imgproxy_py import keys
from imgproxy_py.cache.base import CacheEntry
from imgproxy_py.cache.status import CacheStatus
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.observability import note
from imgproxy_py.options.model import ProcessingOptions
from imgproxy_py.server.memo import LRU
from imgproxy_py.server.responses import (
    SECURITY_HEADERS,
    PrebuiltResponse,
    encode_headers,
    image_headers,
    validator_headers,
)
from imgproxy_py.server.result_stream import ResultStream, StreamedResult

STALE_MAX_AGE = 60  # a stale answer during an outage: cacheable briefly, so recovery shows soon


class Resolved(Protocol):
    """What every endpoint's request resolves to before any I/O (ImageRequest, InfoRequest)."""

    @property
    def po(self) -> ProcessingOptions: ...
    @property
    def source_url(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def if_none_match(self) -> str | None: ...
    @property
    def experiment(self) -> str: ...
    @property
    def options_text(self) -> str:
        """``po.canonical()``, computed once (the cache key and the ETag both digest it)."""
        ...


# (entry, request, headers so far) → every header of the 200
ContentHeaders = Callable[[CacheEntry, Resolved, dict[str, str]], dict[str, str]]


def image_content(entry: CacheEntry, req: Resolved, base: dict[str, str]) -> dict[str, str]:
    """An image's headers; a raw pass-through whose type could not be sniffed (format "") is opaque bytes."""
    if not entry.format:
        return {**base, "Content-Type": "application/octet-stream", **SECURITY_HEADERS}
    return image_headers(ImageFormat(entry.format), req.po, req.source_url, base)


class Responder:
    def __init__(self, ttl: int, vary: str | None, content: ContentHeaders, *, prebuild: bool = True) -> None:
        self.ttl = ttl
        self.vary = vary
        self.content = content
        self.prebuild = prebuild
        self._headers: LRU[tuple[str, str | None, float], list[tuple[bytes, bytes]]] = LRU(8192)

    def respond(self, req: Resolved, entry: CacheEntry, status: CacheStatus) -> Response:
        note(cache=status)
        if entry.etag and req.if_none_match and keys.etag_matches(req.if_none_match, entry.etag):
            return self.not_modified(req, entry.etag, entry.last_modified, status)
        note(result_bytes=len(entry.data))
        if status is CacheStatus.STALE or req.po.expires or not self.prebuild:  # nothing to reuse
            base = self._validators(req, entry.etag, entry.last_modified, status)
            headers = self.content(entry, req, {**base, "X-Cache": status.value})
            return Response(entry.data, status_code=200, headers=headers)
        return PrebuiltResponse(entry.data, self.prebuilt(req, entry, status))

    def stream(self, req: Resolved, result: ResultStream) -> Response:
        """A miss whose result is still being encoded: its headers now, the body as it is produced
        (chunked: the length is not known yet)."""
        note(cache=CacheStatus.MISS)
        fmt = result.format.value if result.format is not None else ""
        head = CacheEntry(b"", fmt, result.etag, result.last_modified, stored_at=0.0, fresh_until=0.0)
        base = self._validators(req, result.etag, result.last_modified, None)
        headers = self.content(head, req, {**base, "X-Cache": CacheStatus.MISS.value})
        return StreamedResult(result.body(), status_code=200, headers=headers)

    def not_modified(self, req: Resolved, etag: str, last_modified: str | None, status: CacheStatus) -> Response:
        base = self._validators(req, etag, last_modified, status)
        return Response(status_code=304, headers={**base, "X-Cache": status.value})

    def prebuilt(self, req: Resolved, entry: CacheEntry, status: CacheStatus) -> list[tuple[bytes, bytes]]:
        """A 200's raw header list, built once per entry and reused for its every hit."""
        memo_key = (req.key, entry.etag, entry.stored_at)
        raw = self._headers.get(memo_key)
        if raw is None:
            base = self._validators(req, entry.etag, entry.last_modified, None)
            headers = self.content(entry, req, base)
            raw = encode_headers({**headers, "Content-Length": str(len(entry.data))})
            self._headers.put(memo_key, raw)
        return [*raw, status.header]

    def _validators(
        self, req: Resolved, etag: str | None, last_modified: str | None, status: CacheStatus | None
    ) -> dict[str, str]:
        base = validator_headers(po=req.po, ttl=self.ttl, etag=etag, last_modified=last_modified, vary=self.vary)
        if req.experiment:
            base["X-Experiment"] = req.experiment
        if status is CacheStatus.STALE:
            base["Cache-Control"] = f"max-age={STALE_MAX_AGE}, public"
        return base
