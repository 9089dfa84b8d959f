"""A large result sent while it is encoded: chunks from the worker thread to the response body.

Which results stream is processing's choice (processing/output.py: large PNGs, after their
pixels are computed, so a damaged source still fails before the first byte). The flow
(server/flow.py) offers the request that leads a result's computation a ``started`` future
through ``stream_offer``; the strategy hands a ResultStream to processing as ``Job.output``; its
first bytes resolve the future and the flow answers with them at once (chunked, no
Content-Length) while the computation goes on and still stores the complete result in the
cache. Requests that join the computation get the complete result, as before.

Once the 200 is on the wire an error cannot become a 4xx any more: a failure mid-encode (the
deadline, or every client gone) ends the body early without the final chunk, which HTTP clients
report as an incomplete response, and nothing is cached.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator
from contextvars import ContextVar

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.observability import note

log = logging.getLogger("imgproxy_py.request")

# Set by the flow around the computation it leads: where the strategy announces a stream.
stream_offer: ContextVar[asyncio.Future[ResultStream] | None] = ContextVar("imgproxy_stream_offer", default=None)

_BATCH = 256 * 1024  # bytes gathered on the worker thread per hand-over to the event loop (the first goes at once)


class ResultStreamAborted(Exception):
    """A streamed result's encode stopped after its first bytes were sent."""


class ResultStream:
    """Processing's ResultSink on the worker thread; the response body on the event loop."""

    def __init__(self, started: asyncio.Future[ResultStream], etag: str | None, last_modified: str | None) -> None:
        self._loop = started.get_loop()
        self.started = started
        self.etag = etag
        self.last_modified = last_modified
        self.format: ImageFormat | None = None
        self._batch: list[bytes] = []  # worker thread
        self._batched = 0
        self._first = True
        self._chunks: collections.deque[bytes] = collections.deque()  # event loop from here on
        self._ready = asyncio.Event()
        self._done = False
        self._error: BaseException | None = None

    # --- the worker thread (processing) ----------------------------------------------------------

    def begin(self, fmt: ImageFormat) -> None:
        self.format = fmt

    def write(self, chunk: bytes) -> None:
        self._batch.append(chunk)
        self._batched += len(chunk)
        if self._first or self._batched >= _BATCH:
            self._first = False
            self._loop.call_soon_threadsafe(self._deliver, self._take())

    def _take(self) -> bytes:
        data = b"".join(self._batch)
        self._batch, self._batched = [], 0
        return data

    # --- the event loop --------------------------------------------------------------------------

    def _deliver(self, data: bytes) -> None:
        self._chunks.append(data)
        self._ready.set()
        if not self.started.done():
            self.started.set_result(self)

    def finish(self) -> None:
        """The encode has returned (its thread is done with the batch): the rest, then the end."""
        if self._batch:
            self._deliver(self._take())
        self._done = True
        self._ready.set()

    def fail(self, exc: BaseException) -> None:
        """The computation failed or was cancelled: the body ends early (raising, so the server
        drops the connection instead of sending the final chunk of a complete-looking body)."""
        self._error = ResultStreamAborted(f"the result's encode stopped: {type(exc).__name__}")
        self._batch = []
        self._ready.set()

    async def body(self) -> AsyncIterator[bytes]:
        while True:
            while self._chunks:
                yield self._chunks.popleft()
            if self._error is not None:
                raise self._error
            if self._done:
                return
            self._ready.clear()
            await self._ready.wait()


class StreamedResult(StreamingResponse):
    """The response of a ResultStream: an encode stopped mid-body is logged as one warning (and in
    the access log's error fields) and the connection dropped, rather than a traceback."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except ResultStreamAborted as exc:
            note(error="result_stream", detail=str(exc))
            log.warning("streamed result cut short: %s", exc)
            # returning without the body's last message makes the server close the connection
