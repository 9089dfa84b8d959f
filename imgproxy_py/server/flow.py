"""The one result flow every endpoint uses (images, raw pass-through, /info).

Given a resolved request and a Strategy (how to compute the result from its source, and the
Responder that turns the result into a response), the flow does what every result needs:

    memory hit → timeout + disconnect watch → cache lookup → in-process single-flight →
    cross-process lock → admission (a worker slot) → compute (the strategy fetches through
    ``Work.fetch`` or streams) → store → respond

with stale-if-error, 304s (``NotModified`` skips the work when there is no cache to fill),
the request deadline and cancellation (a libvips evaluation stops when every waiter has
gone), access-log fields (``note``), spans and the error response — written once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from imgproxy_py import keys
from imgproxy_py.cache.base import CacheEntry
from imgproxy_py.cache.lock import CrossProcessLock
from imgproxy_py.cache.singleflight import SingleFlight
from imgproxy_py.cache.status import CacheStatus
from imgproxy_py.cache.tiered import TieredCache
from imgproxy_py.cancel import CancelToken, current_token
from imgproxy_py.errors import ClientClosedError, ImgproxyError, RequestTimeoutError, SourceError
from imgproxy_py.observability import note, span
from imgproxy_py.processing.limits import Limits
from imgproxy_py.server.responder import Resolved, Responder
from imgproxy_py.server.responses import error_response
from imgproxy_py.server.result_stream import ResultStream, stream_offer
from imgproxy_py.server.scope import DISCONNECT, DisconnectWatch, has_body
from imgproxy_py.settings import Settings
from imgproxy_py.sources.base import FetchLimits, Source, SourceImage
from imgproxy_py.sources.registry import SourceRegistry
from imgproxy_py.workers import Arrival, Slot, WorkerPool

log = logging.getLogger("imgproxy_py.request")

R = TypeVar("R", bound=Resolved)
R_contra = TypeVar("R_contra", bound=Resolved, contravariant=True)


@dataclass(frozen=True, slots=True)
class NotModified:
    """The requester's If-None-Match matched after the fetch: nothing was computed."""

    etag: str
    last_modified: str | None


@dataclass(frozen=True, slots=True)
class Produced:
    entry: CacheEntry
    status: CacheStatus = CacheStatus.MISS  # for the caller that led the work


Outcome = NotModified | Produced


@dataclass(slots=True)
class Work:
    """What the flow hands a strategy's ``compute``: the admitted slot, the source and its limits."""

    slot: Slot | None  # None for a strategy that takes no worker slot
    source: Source
    limits: FetchLimits
    deadline: float  # time.monotonic() by which the request must be answered
    fetches: SingleFlight[SourceImage]  # downloads shared by every request for the same source
    token: CancelToken  # stops the computation's libvips work once nobody waits for it

    async def fetch(self, url: str) -> SourceImage:
        """The whole source, one download shared by every request for it (timed and noted)."""
        with span("downloading_source_image"):
            image, _ = await self.fetches.do(url, lambda: self.source.fetch(url, self.limits))
        note(source_bytes=len(image.data))
        return image

    def in_slot(self) -> Slot:
        assert self.slot is not None, "this strategy is not admitted to a worker slot"
        return self.slot


class Strategy(Protocol[R_contra]):
    """What differs between endpoints: computing a result and building its response."""

    @property
    def cached(self) -> bool:
        """Results are looked up, coalesced, locked and stored (False: every request computes)."""
        ...

    @property
    def admitted(self) -> bool:
        """The work needs a worker slot (the queue and the concurrency limit apply)."""
        ...

    @property
    def responder(self) -> Responder: ...

    async def compute(self, req: R_contra, work: Work) -> Outcome: ...

    def may_stream_result(self, req: R_contra) -> bool:
        """The result could be sent while it is encoded (server/result_stream.py): the flow then
        offers the leading request a stream; every other miss awaits its flight directly."""
        ...


class ResultFlow:
    """Shared by every endpoint of one app: the cache, the lock, the flights, the pool and the limits."""

    def __init__(
        self,
        settings: Settings,
        sources: SourceRegistry,
        workers: WorkerPool,
        limits: Limits,
        settings_fingerprint: str,
        *,
        cache: TieredCache | None = None,
        lock: CrossProcessLock | None = None,
    ) -> None:
        self.settings = settings
        self.sources = sources
        self.workers = workers
        self.limits = limits
        self.fingerprint = settings_fingerprint
        self.cache = cache
        self.lock = lock
        self.flights: SingleFlight[Outcome] = SingleFlight()
        self._arrived: dict[str, int] = {}  # keys with an admitted request still on its way to a flight
        self.fetches: SingleFlight[SourceImage] = SingleFlight()
        server = settings.server
        self._timeout = server.timeout
        self._use_etag = server.use_etag
        self._use_last_modified = server.use_last_modified
        self._ttl = float(settings.cache.ttl)
        self._stream_results = server.stream_results  # IMGPROXY_STREAM_RESULTS

    # --- the flow ------------------------------------------------------------------------

    def fresh_in_memory(self, key: str) -> CacheEntry | None:
        """A fresh L1 entry: the only lookup that answers without any await (hits.py and serve)."""
        if self.cache is None:
            return None
        entry = self.cache.get_memory(key)
        return entry if entry is not None and entry.is_fresh() else None

    async def serve(self, request: Request, req: R, strategy: Strategy[R]) -> Response:
        started = time.monotonic()
        arrival: Arrival | None = None
        try:
            if req.experiment:
                note(experiment=req.experiment)  # errors count against the arm too
            if strategy.cached:
                entry = self.fresh_in_memory(req.key)
                if entry is not None:
                    return strategy.responder.respond(req, entry, CacheStatus.HIT_L1)  # no I/O, no timers
            if strategy.admitted and not self.flights.in_flight(req.key) and req.key not in self._arrived:
                # the excess of a spike: 429 before any I/O (README, Admission). A request for a key
                # another request has already arrived with will join that one's flight (or its
                # cache hit): it needs no place of its own, so identical requests still coalesce.
                arrival = self.workers.arrive()
                self._arrived[req.key] = self._arrived.get(req.key, 0) + 1
            async with asyncio.timeout(self._timeout):
                return await _unless_disconnected(request, self._handle(req, strategy, started + self._timeout))
        except TimeoutError:
            return self.error(request, RequestTimeoutError("request timed out"))
        except ImgproxyError as exc:
            return self.error(request, exc)
        finally:
            if arrival is not None:
                arrival.leave()
                left = self._arrived[req.key] - 1
                if left:
                    self._arrived[req.key] = left
                else:
                    del self._arrived[req.key]

    def error(self, request: Request, exc: ImgproxyError) -> Response:
        """The error response, with the error in the access log and errors_total."""
        note(error=exc.category, detail=exc.detail)
        log.debug("%s %s: %s (%s)", request.method, exc.status_code, exc.detail, exc.category)
        return error_response(exc, self.settings.server.development_errors)

    async def _handle(self, req: R, strategy: Strategy[R], deadline: float) -> Response:
        responder = strategy.responder
        if not strategy.cached:
            return self._answer(req, responder, await self._work(req, strategy, deadline), shared=False)
        stale: CacheEntry | None = None
        if self.cache is not None:
            hit = await self.cache.get(req.key)
            if hit is not None:
                entry, status = hit
                if entry.is_fresh():
                    return responder.respond(req, entry, status)
                stale = entry
        try:
            for _ in range(2):
                got = await self._flight(req, strategy, deadline)
                if isinstance(got, ResultStream):
                    return responder.stream(req, got)
                outcome, shared = got
                if isinstance(outcome, NotModified) and not etag_matches(req, outcome.etag):
                    continue  # the leader's own 304 is no answer for a waiter without that ETag
                return self._answer(req, responder, outcome, shared)
            raise RuntimeError("could not produce the result")  # pragma: no cover - needs two 304 races
        except SourceError as exc:
            if stale is not None and exc.is_outage:
                log.warning("source down (%s); serving a stale result", exc.detail)
                return responder.respond(req, stale, CacheStatus.STALE)
            raise

    async def _flight(self, req: R, strategy: Strategy[R], deadline: float) -> tuple[Outcome, bool] | ResultStream:
        """The computation's outcome, shared by every request for the key; or, for the request that
        leads it, a large result's stream as soon as its first bytes exist (server/result_stream.py)."""
        # Only the request that starts the flight can be offered the stream (the offer reaches the
        # computation through the context of the task SingleFlight creates for it).
        joins = self.flights.in_flight(req.key)
        flight = self.flights.do(req.key, lambda: self._produce(req, strategy, deadline))
        if joins or req.if_none_match or not (self._stream_results and strategy.may_stream_result(req)):
            return await flight  # no offer, no second task: the common case of every miss
        started: asyncio.Future[ResultStream] = asyncio.get_running_loop().create_future()
        offer = stream_offer.set(started)
        try:
            task = asyncio.ensure_future(flight)  # its context, and the computation's, carry the offer
        finally:
            stream_offer.reset(offer)
        try:
            either: set[asyncio.Future[Any]] = {task, started}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task.done() or not started.done():
            started.cancel()
            return task.result()
        # The response goes out from here; the computation runs on and stores the whole result.
        task.add_done_callback(_consume)
        return started.result()

    def _answer(self, req: R, responder: Responder, outcome: Outcome, shared: bool) -> Response:
        if isinstance(outcome, NotModified):
            note(cache=CacheStatus.MISS)
            return responder.not_modified(req, outcome.etag, outcome.last_modified, CacheStatus.MISS)
        return responder.respond(req, outcome.entry, CacheStatus.HIT_COALESCED if shared else outcome.status)

    async def _produce(self, req: R, strategy: Strategy[R], deadline: float) -> Outcome:
        """The leader's work for one key: one fetch and one computation for every waiter."""
        # The flight runs in its own task, outside the requests' timeouts: bound it here.
        loop_deadline = asyncio.get_running_loop().time() + (deadline - time.monotonic())
        async with asyncio.timeout_at(loop_deadline):
            token: str | None = None
            if self.lock is not None:
                token, entry = await self.lock.acquire_or_wait(req.key, deadline)
                if entry is not None:
                    return Produced(entry, CacheStatus.HIT_COALESCED)
            try:
                outcome = await self._work(req, strategy, deadline)
                if isinstance(outcome, Produced) and self.cache is not None:
                    shared_tier = self.lock.tier_name if token is not None and self.lock is not None else None
                    await self.cache.set(req.key, outcome.entry, wait_for=shared_tier)
                return outcome
            finally:
                if token is not None and self.lock is not None:
                    await self.lock.release(req.key, token)

    async def _work(self, req: R, strategy: Strategy[R], deadline: float) -> Outcome:
        """Admission and the strategy's computation, stopped mid-evaluation once nobody waits for it."""
        source = self.sources.for_url(req.source_url)
        max_bytes = self.limits.for_request(req.po).max_src_file_size  # msfs may override
        limits = FetchLimits(max_bytes=max(0, max_bytes), timeout=self.settings.sources.download_timeout)
        token = CancelToken(deadline=deadline)
        current_token.set(token)  # this task's context; the worker thread inherits it
        try:
            if not strategy.admitted:
                return await strategy.compute(req, Work(None, source, limits, deadline, self.fetches, token))
            with span("queue"):
                slot = await self.workers.admit()
            try:
                return await strategy.compute(req, Work(slot, source, limits, deadline, self.fetches, token))
            finally:
                self.workers.release_slot(slot)
        except asyncio.CancelledError:
            token.cancel()  # every waiter has gone (or the deadline passed): stop libvips mid-evaluation
            raise

    # --- what strategies share -----------------------------------------------------------

    def etag(self, req: Resolved, variant: str, version: str) -> str | None:
        """The result's ETag: the options, the variant, the source's version and the settings."""
        if not self._use_etag:
            return None
        return keys.etag_for(keys.result_digest(req.options_text, variant, req.source_url, version, self.fingerprint))

    def last_modified(self, value: str | None) -> str | None:
        return value if self._use_last_modified else None

    def skips_work(self, req: Resolved, etag: str | None) -> bool:
        """Without a cache to fill, a request whose If-None-Match already matches needs no work."""
        return self.cache is None and etag is not None and etag_matches(req, etag)

    def entry(self, req: Resolved, data: bytes, fmt: str, etag: str | None, last_modified: str | None) -> CacheEntry:
        """A computed result with its freshness (IMGPROXY_CACHE_TTL, shortened by the URL's expires)."""
        now = time.time()
        fresh_for = self._ttl
        if req.po.expires:
            fresh_for = min(fresh_for, req.po.expires - now)
        return CacheEntry(
            data=data,
            format=fmt,
            etag=etag,
            last_modified=last_modified,
            stored_at=now,
            fresh_until=now + fresh_for,
        )

    async def aclose(self) -> None:
        await self.flights.aclose()
        await self.fetches.aclose()


def _consume(task: asyncio.Future[Any]) -> None:
    """A streamed result's computation has ended with nobody awaiting it: its error was the body's."""
    if not task.cancelled():
        task.exception()


def etag_matches(req: Resolved, etag: str) -> bool:
    """The request's If-None-Match names ``etag``."""
    return bool(req.if_none_match) and keys.etag_matches(req.if_none_match or "", etag)


async def _unless_disconnected(request: Request, work: Coroutine[Any, Any, Response]) -> Response:
    """Run ``work`` in this task, but stop it if the client disconnects: nobody is left to receive it.

    Under our uvicorn protocol the connection tells this request directly (``DisconnectWatch``);
    under any other server a watcher task waits in ``receive()`` for the disconnect message.
    Either cancels this task (a second task for the work and ``asyncio.wait`` over both cost
    the event loop more: every cold miss pays for this). Cache hits answer before it is needed.
    """
    task = asyncio.current_task()
    assert task is not None
    gone = False

    def leave() -> None:
        nonlocal gone
        gone = True
        task.cancel()

    watch = request.scope.get(DISCONNECT)
    stop: Callable[[], object]
    if isinstance(watch, DisconnectWatch) and not has_body(request.scope):
        if watch.lost:
            work.close()
            raise ClientClosedError("client disconnected")
        stop = watch.on_loss(leave)
    else:  # another server, or a body to drain (uvicorn reads a large one only for receive())

        async def watch_receive() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            leave()

        stop = asyncio.ensure_future(watch_receive()).cancel
    try:
        response = await work
    except asyncio.CancelledError:
        if gone:
            task.uncancel()  # this cancellation was ours: the request ends with a 499, not cancelled
            # One turn of the loop: the flight this request was the last to wait for, cancelled as
            # it left, unwinds (its fetch, its slot) before the request is finished.
            await asyncio.sleep(0)
            raise ClientClosedError("client disconnected") from None
        raise
    finally:
        stop()
    if gone:  # something below swallowed our cancellation: the client is gone all the same
        task.uncancel()
        raise ClientClosedError("client disconnected")
    return response
