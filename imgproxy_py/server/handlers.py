"""The image endpoint: parse → verify → cache → coalesced (fetch → process → store) → respond.

Everything the handler needs is passed in explicitly when the app is built; no request
state hides in long-lived objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, cast, overload

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from imgproxy_py import keys, processing
from imgproxy_py.analysis.features import FeatureRecord, source_digest
from imgproxy_py.cache.base import CacheEntry
from imgproxy_py.cache.singleflight import SingleFlight
from imgproxy_py.cache.tiered import TieredCache
from imgproxy_py.cancel import CancelToken, current_token
from imgproxy_py.errors import (
    ClientClosedError,
    ImgproxyError,
    InvalidURLError,
    RequestTimeoutError,
    SourceError,
)
from imgproxy_py.experiments import Experiments
from imgproxy_py.imagetype import ImageFormat, sniff
from imgproxy_py.observability import Metrics, note, span
from imgproxy_py.options.model import GravityType, ProcessingOptions, ResizingType
from imgproxy_py.options.parser import ClientHints, ParsedURL, Parser, split_signature
from imgproxy_py.processing import ProcessResult, streamed
from imgproxy_py.processing.faces import NO_FACES, FaceOptions
from imgproxy_py.processing.format_choice import NO_CLIENT_FORMATS, ClientFormats
from imgproxy_py.processing.intermediates import IntermediateCache
from imgproxy_py.processing.streamed import StreamedInput
from imgproxy_py.quality_model.dataset import DatasetWriter, dataset_row
from imgproxy_py.security import verify_signature
from imgproxy_py.server.coalescing import CrossProcessLock
from imgproxy_py.server.features import FeatureStore
from imgproxy_py.server.memo import LRU
from imgproxy_py.server.negotiation import client_formats
from imgproxy_py.server.quality_models import QualityModelTracker
from imgproxy_py.server.responses import (
    SECURITY_HEADERS,
    PrebuiltResponse,
    encode_headers,
    error_response,
    image_headers,
    validator_headers,
)
from imgproxy_py.server.scope import header, raw_path
from imgproxy_py.server.streaming import Share, Streamed, fetch_streamed
from imgproxy_py.settings import Settings
from imgproxy_py.sources.base import FetchLimits, Source, SourceImage, SourceMeta, StreamingSource
from imgproxy_py.sources.registry import SourceRegistry
from imgproxy_py.workers import Arrival, Slot, WorkerPool

log = logging.getLogger("imgproxy_py.request")

STALE_MAX_AGE = 60  # a stale answer during an outage: cacheable briefly, so recovery shows soon


@dataclass(frozen=True, slots=True)
class NotModified:
    """The requester's If-None-Match matched after the fetch: nothing was processed."""

    etag: str
    last_modified: str | None


@dataclass(frozen=True, slots=True)
class Produced:
    entry: CacheEntry
    via: str  # X-Cache value for the caller that led the work


Outcome = NotModified | Produced


@dataclass(frozen=True, slots=True)
class Request_:
    """What one image request resolved to before any I/O."""

    po: ProcessingOptions
    source_url: str
    client: ClientFormats
    key: str
    vary: str | None
    if_none_match: str | None
    experiment: str = ""  # "name=arm" when an experiment applies (X-Experiment, access log, metrics)
    variant: str = ""  # the client's format key plus the arm: part of the cache key and the ETag


@dataclass(slots=True)
class ImageService:
    settings: Settings
    parser: Parser
    sources: SourceRegistry
    workers: WorkerPool
    processing: processing.ProcessingConfig
    settings_fingerprint: str
    intermediates: IntermediateCache | None = None
    cache: TieredCache | None = None
    lock: CrossProcessLock | None = None
    flights: SingleFlight[Outcome] = field(default_factory=SingleFlight)
    fetches: SingleFlight[SourceImage] = field(default_factory=SingleFlight)
    metrics: Metrics | None = None
    faces: FaceOptions = NO_FACES  # the face detector (None when not installed) and its settings
    features: FeatureStore | None = None
    experiments: Experiments | None = None
    quality_models: QualityModelTracker | None = None  # aq:ml: the serving version, metrics, drift
    dataset: DatasetWriter | None = None  # IMGPROXY_AUTOQUALITY_DATASET: rows from aq:dssim searches
    transforms: int = 0  # images processed by this process (observability, tests)
    detections: int = 0  # images the face detector ran on in this process
    _parsed: LRU[str, ParsedURL] = field(default_factory=lambda: LRU(8192))
    _keys: LRU[tuple[str, str], str] = field(default_factory=lambda: LRU(8192))
    _streaming: dict[str, Share] = field(default_factory=dict)  # source URLs being streamed
    peak_stream_bytes: int = 0  # the most source bytes one streamed request held between download and decoder
    _headers: LRU[tuple[str, str | None, float], list[tuple[bytes, bytes]]] = field(default_factory=lambda: LRU(8192))

    def memory_hit(self, scope: Scope) -> tuple[list[tuple[bytes, bytes]], bytes] | None:
        """Headers and body of a fresh L1 hit for a path already served, else None (take the full path).

        The hot path, called before any routing: only a path this service has parsed and
        verified before is looked up (the memo holds nothing else), and only a plain 200 is
        answered here; conditional, expiring and stale answers go the full way.
        """
        if self.cache is None:
            return None
        try:
            req = self._resolve(scope, parse=False)
        except ImgproxyError:
            return None
        if req is None or req.if_none_match is not None or req.po.expires or req.po.raw:
            return None
        entry = self.cache.get_memory(req.key)
        if entry is None or not entry.is_fresh():
            return None
        note(cache="HIT-L1", result_bytes=len(entry.data), experiment=req.experiment)
        return self._prebuilt_headers(req, entry, "HIT-L1"), entry.data

    async def handle(self, request: Request) -> Response:
        started = time.monotonic()
        arrival: Arrival | None = None
        try:
            req = self._resolve(request.scope)
            if req.experiment:
                note(experiment=req.experiment)  # errors count against the arm too
            memory_hit = self.cache.get_memory(req.key) if self.cache is not None else None
            if memory_hit is not None and memory_hit.is_fresh():
                return self._respond(req, memory_hit, "HIT-L1")  # no I/O, no timers
            if not req.po.raw and not self.flights.in_flight(req.key):
                arrival = self.workers.arrive()  # the excess of a spike: 429 before any I/O (README, Admission)
            async with asyncio.timeout(self.settings.server.timeout):
                return await _unless_disconnected(request, self._handle(req, started + self.settings.server.timeout))
        except TimeoutError:
            return self._error(request, RequestTimeoutError("request timed out"))
        except ImgproxyError as exc:
            return self._error(request, exc)
        finally:
            if arrival is not None:
                arrival.leave()

    def _error(self, request: Request, exc: ImgproxyError) -> Response:
        note(error=exc.category, detail=exc.detail)
        log.debug("%s %s: %s (%s)", request.method, exc.status_code, exc.detail, exc.category)
        return error_response(exc, self.settings.server.development_errors)

    @overload
    def _resolve(self, scope: Scope) -> Request_: ...

    @overload
    def _resolve(self, scope: Scope, *, parse: bool) -> Request_ | None: ...

    def _resolve(self, scope: Scope, *, parse: bool = True) -> Request_ | None:
        """Verify and parse the path; both are pure, so a repeated path (a cache hit) is memoised.

        With ``parse=False`` only the memo is consulted: None for a path not seen before.
        """
        settings = self.settings
        raw = raw_path(scope)
        hints = None
        if settings.options.client_hints:
            hints = ClientHints.from_headers(
                header(scope, b"sec-ch-dpr") or header(scope, b"dpr"),
                header(scope, b"sec-ch-width") or header(scope, b"width"),
            )
        memo_key = raw if hints is None else f"{raw}\x00{hints.key()}"
        parsed = self._parsed.get(memo_key)
        if parsed is None:
            if not parse:
                return None
            signature, path = split_signature(raw, settings.server.path_prefix)
            verify_signature(settings.security, signature, path)
            parsed = self.parser.parse(path, hints)
            if self.experiments is not None and not parsed.options.raw:
                parsed = self._with_arm(path, hints, parsed, self.experiments)
            if not parsed.options.expires:  # an expiring URL must be re-checked every time
                self._parsed.put(memo_key, parsed)
        if scope.get("query_string") and parsed.source_url.startswith("s3://") and "?" not in parsed.source_url:
            _refuse_lost_version(raw)
        po = parsed.options
        opts = settings.options
        if po.format is None or opts.enforce_webp or opts.enforce_avif or opts.enforce_jxl:
            client = client_formats(header(scope, b"accept") or "", opts)
        else:
            client = NO_CLIENT_FORMATS
        client_key = client.key()
        variant = f"{client_key}|x:{parsed.experiment}" if parsed.experiment else client_key
        if self.quality_models is not None and (
            po.autoquality.method == "ml" or (not po.autoquality.method and self.processing.autoquality.method == "ml")
        ):
            variant += f"|m:{self.quality_models.cache_version()}"  # a promotion changes aq:ml results' keys
        key = self._keys.get((memo_key, variant))
        if key is None:
            key = keys.cache_key(po, variant, parsed.source_url, self.settings_fingerprint)
            self._keys.put((memo_key, variant), key)
        return Request_(
            po=po,
            source_url=parsed.source_url,
            client=client,
            key=key,
            vary=opts.vary,
            if_none_match=header(scope, b"if-none-match"),
            experiment=parsed.experiment,
            variant=variant,
        )

    def _with_arm(self, path: str, hints: ClientHints | None, parsed: ParsedURL, experiments: Experiments) -> ParsedURL:
        """The URL parsed again with its experiment arm's options appended (after the signature
        check: the arm is not part of the signed path, so signed URLs stay valid)."""
        assignment = experiments.assign(parsed.source_url, parsed.presets)
        if assignment is None:
            return parsed
        if assignment.segments:
            parsed = self.parser.parse(path, hints, assignment.segments)
        return dataclasses.replace(parsed, experiment=assignment.label)

    async def _handle(self, req: Request_, deadline: float) -> Response:
        if req.po.raw:
            return await self._raw(req)
        stale: CacheEntry | None = None
        if self.cache is not None:
            hit = await self.cache.get(req.key)
            if hit is not None:
                entry, tier = hit
                if entry.is_fresh():
                    return self._respond(req, entry, f"HIT-{tier}")
                stale = entry
        try:
            for _ in range(2):
                outcome, shared = await self.flights.do(req.key, lambda: self._produce(req, deadline))
                if isinstance(outcome, NotModified):
                    if req.if_none_match and keys.etag_matches(req.if_none_match, outcome.etag):
                        base = self._validators(req, outcome.etag, outcome.last_modified)
                        note(cache="MISS")
                        return Response(status_code=304, headers={**base, "X-Cache": "MISS"})
                    continue  # the leader's own 304 is no answer for a waiter without that ETag
                return self._respond(req, outcome.entry, "HIT-COALESCED" if shared else outcome.via)
            raise RuntimeError("could not produce the image")  # pragma: no cover - needs two 304 races
        except SourceError as exc:
            if stale is not None and exc.is_outage:
                log.warning("source down (%s); serving a stale result", exc.detail)
                return self._respond(req, stale, "STALE")
            raise

    async def _produce(self, req: Request_, deadline: float) -> Outcome:
        """The leader's work for one key: one fetch and one transform for every waiter."""
        # The flight runs in its own task, outside the requests' timeouts: bound it here.
        loop_deadline = asyncio.get_running_loop().time() + (deadline - time.monotonic())
        async with asyncio.timeout_at(loop_deadline):
            token: str | None = None
            if self.lock is not None:
                token, entry = await self.lock.acquire_or_wait(req.key, deadline)
                if entry is not None:
                    return Produced(entry, "HIT-COALESCED")
            try:
                outcome = await self._fetch_and_process(req, deadline)
                if isinstance(outcome, Produced) and self.cache is not None:
                    shared_tier = self.lock.tier_name if token is not None and self.lock is not None else None
                    await self.cache.set(req.key, outcome.entry, wait_for=shared_tier)
                return outcome
            finally:
                if token is not None and self.lock is not None:
                    await self.lock.release(req.key, token)

    async def _fetch_and_process(self, req: Request_, deadline: float) -> Outcome:
        settings = self.settings
        source = self.sources.for_url(req.source_url)
        max_bytes = self.processing.limits.for_request(req.po).max_src_file_size  # msfs may override
        limits = FetchLimits(max_bytes=max(0, max_bytes), timeout=settings.sources.download_timeout)
        token = CancelToken(deadline=deadline)
        current_token.set(token)  # this task's context; the worker thread inherits it
        try:
            return await self._fetch_and_process_in_slot(req, source, limits, deadline)
        except asyncio.CancelledError:
            token.cancel()  # every waiter has gone (or the deadline passed): stop libvips mid-evaluation
            raise

    async def _fetch_and_process_in_slot(
        self, req: Request_, source: Source, limits: FetchLimits, deadline: float
    ) -> Outcome:
        settings = self.settings
        async with contextlib.AsyncExitStack() as stack:
            with span("queue"):
                slot = await stack.enter_async_context(self.workers.slot())
            share = self._streaming.get(req.source_url)
            shared: SourceImage | None = None
            if share is not None and not share.decided:  # join it: it becomes one shared buffered download
                share.wanted = True
                with span("downloading_source_image"):
                    shared = await asyncio.shield(share.image)
            if shared is not None:
                image = shared
            elif self._streams(req, source):
                got = await self._stream(req, cast(StreamingSource, source), limits, deadline, slot)
                if isinstance(got, Streamed):
                    note(source_bytes=got.size)
                    last_modified = got.meta.last_modified if settings.server.use_last_modified else None
                    etag = self._etag(req, got.version)
                    if isinstance(got.value, NotModified):
                        return got.value
                    if self._skips_transform(req, etag):  # no validator: known only now, after the work
                        return NotModified(cast(str, etag), last_modified)
                    return self._produced(req, got.value, etag, last_modified)
                image = got
            else:
                with span("downloading_source_image"):
                    image, _ = await self.fetches.do(req.source_url, lambda: source.fetch(req.source_url, limits))
            note(source_bytes=len(image.data))
            version = keys.source_version(image.etag, image.last_modified, image.data)
            etag = self._etag(req, version)
            last_modified = image.last_modified if settings.server.use_last_modified else None
            if self._skips_transform(req, etag):
                return NotModified(cast(str, etag), last_modified)  # without a cache, skip the transform entirely
            source_id, record = await self._read_features(req.po, image.data)
            faces = self.faces
            if record is not None and record.faces is not None:
                faces = dataclasses.replace(faces, known=record.faces)
            result = await self._transform(
                slot,
                processing.process,
                image.data,
                req,
                deadline,
                f"{req.source_url}\x00{version}",
                faces,
                record.qualities if record is not None else None,
            )
            self._learnt(result, source_id, record)
            if result.samples and self.dataset is not None:
                digest = source_id or source_digest(image.data)
                self.dataset.save_later([dataset_row(digest, sample) for sample in result.samples])
            if (result.ml or result.searched) and self.quality_models is not None:
                self.quality_models.observe(result.ml, result.searched)
        return self._produced(req, result, etag, last_modified)

    def _streams(self, req: Request_, source: Source) -> bool:
        """Whether to try decoding this source as it downloads (server/streaming.py).

        A source another request is already downloading whole is joined instead (one download
        shared by every variant). Variants arriving before a streamed source's header is in have
        joined it already (``Share``); later ones buffer theirs through one shared download, so
        a burst of variants costs at most two downloads.
        """
        return (
            self.settings.sources.stream
            and hasattr(source, "stream")
            and streamed.options_allow(req.po)
            and not self.fetches.in_flight(req.source_url)
            and req.source_url not in self._streaming
            # the feature store is keyed by the source bytes' digest: such requests read the source whole
            and not (self.features is not None and self._wants_analysis(req.po))
        )

    async def _stream(
        self, req: Request_, source: StreamingSource, limits: FetchLimits, deadline: float, slot: Slot
    ) -> SourceImage | Streamed[ProcessResult | NotModified]:
        token = current_token.get() or CancelToken(deadline=deadline)

        async def decode(stream: StreamedInput, meta: SourceMeta, validator: str | None) -> ProcessResult | NotModified:
            if validator is not None:
                etag = self._etag(req, validator)
                if self._skips_transform(req, etag):
                    last_modified = meta.last_modified if self.settings.server.use_last_modified else None
                    return NotModified(cast(str, etag), last_modified)
            source_key = f"{req.source_url}\x00{validator}" if validator is not None else None
            result = await self._transform(
                slot, processing.process_stream, stream, req, deadline, source_key, self.faces
            )
            self._learnt(result, None, None)  # counts a detection; nothing is stored without the bytes' digest
            if (result.ml or result.searched) and self.quality_models is not None:
                self.quality_models.observe(result.ml, result.searched)
            return result

        share = self._streaming[req.source_url] = Share()
        try:
            # the span covers the processing too (processing_image, nested): they overlap
            with span("downloading_source_image"):
                got = await fetch_streamed(
                    source, req.source_url, limits, self.settings.sources.stream_buffer, token, decode, share
                )
        finally:
            if self._streaming.get(req.source_url) is share:
                del self._streaming[req.source_url]
        self.peak_stream_bytes = max(self.peak_stream_bytes, got.peak_held if isinstance(got, Streamed) else 0)
        return got

    def _etag(self, req: Request_, version: str) -> str | None:
        if not self.settings.server.use_etag:
            return None
        digest = keys.result_digest(req.po, req.variant, req.source_url, version, self.settings_fingerprint)
        return keys.etag_for(digest)

    def _skips_transform(self, req: Request_, etag: str | None) -> bool:
        """Without a cache, a request whose If-None-Match already matches needs no transform."""
        return (
            self.cache is None
            and etag is not None
            and bool(req.if_none_match)
            and keys.etag_matches(cast(str, req.if_none_match), etag)
        )

    async def _transform(
        self,
        slot: Slot,
        fn: Callable[..., ProcessResult],
        data: object,
        req: Request_,
        deadline: float,
        source_key: str | None,
        faces: FaceOptions = NO_FACES,
        quality_hints: Mapping[str, int] | None = None,
    ) -> ProcessResult:
        metrics = self.metrics
        if metrics is not None:
            metrics.images_in_progress.inc()
        try:
            with span("processing_image"):
                result = await self.workers.run(
                    slot,
                    fn,
                    data,
                    req.po,
                    self.processing,
                    req.client,
                    deadline,
                    source_key,
                    self.intermediates,
                    faces,
                    quality_hints,
                )
        finally:
            if metrics is not None:
                metrics.images_in_progress.dec()
        self.transforms += 1
        if metrics is not None:
            metrics.transforms.inc()
        return result

    def _produced(self, req: Request_, result: ProcessResult, etag: str | None, last_modified: str | None) -> Produced:
        now = time.time()
        fresh_for = float(self.settings.cache.ttl)
        if req.po.expires:
            fresh_for = min(fresh_for, req.po.expires - now)
        entry = CacheEntry(
            data=result.data,
            format=result.format.value,
            etag=etag,
            last_modified=last_modified,
            stored_at=now,
            fresh_until=now + fresh_for,
        )
        return Produced(entry, "MISS")

    def _wants_analysis(self, po: ProcessingOptions) -> bool:
        """Whether this request may use stored analysis: faces for a crop or an overlay, or aq/best."""
        config = self.processing
        may_crop = (
            po.resizing_type in (ResizingType.FILL, ResizingType.FILL_DOWN, ResizingType.AUTO)
            or po.crop.width > 0
            or po.crop.height > 0
            or po.gravity.type in (GravityType.SMART, GravityType.OBJECT)
        )
        faces = self.faces.detector is not None and (
            may_crop or po.blur_detections.enabled or po.draw_detections.enabled
        )
        return (
            faces
            or po.autoquality.method in ("dssim", "ml")
            or (config.autoquality.method in ("dssim", "ml") and po.autoquality.method != "none")
            or po.format_best
            or config.best_by_default
        )

    async def _read_features(self, po: ProcessingOptions, data: bytes) -> tuple[str | None, FeatureRecord | None]:
        """The source's stored analysis (faces, auto-quality choices), when a store is configured."""
        if self.features is None or not self._wants_analysis(po):
            return None, None
        digest = source_digest(data)
        record = await self.features.get(digest)
        if self.metrics is not None:
            self.metrics.feature_store.labels("hit" if record is not None else "miss").inc()
        return digest, record

    def _learnt(self, result: ProcessResult, digest: str | None, record: FeatureRecord | None) -> None:
        """Count a detection, note it in the access log, and store what is new (after the response)."""
        if result.faces is not None:
            self.detections += 1
            note(analysis=f"faces:detected:{len(result.faces)}")
            log.debug("face detection: %d face(s) in %.1f ms", len(result.faces), result.detect_seconds * 1000)
            if self.metrics is not None:
                self.metrics.face_detections.inc()
                self.metrics.face_detection_duration.observe(result.detect_seconds)
        elif record is not None and record.faces is not None:
            note(analysis=f"faces:stored:{len(record.faces)}")
        if self.features is None or digest is None:
            return
        known = record.qualities if record is not None else {}
        new_qualities = {k: q for k, q in result.qualities if known.get(k) != q}
        if result.faces is None and not new_qualities and record is not None:
            return
        learnt = FeatureRecord(
            version=self.features.version,
            width=result.source_width,
            height=result.source_height,
            faces=result.faces,
            qualities=new_qualities,
        )
        self.features.save_later(digest, learnt, record)

    async def _raw(self, req: Request_) -> Response:
        """``raw:1``: the source's bytes as they are, without a worker slot (imgproxy streams them).

        Limits and source policy still apply; the type is sniffed, never taken from the source, so
        a source cannot make this origin serve it HTML (and the CSP sandbox is on every response).
        """
        settings = self.settings
        source = self.sources.for_url(req.source_url)
        max_bytes = self.processing.limits.for_request(req.po).max_src_file_size
        limits = FetchLimits(max_bytes=max(0, max_bytes), timeout=settings.sources.download_timeout)
        with span("downloading_source_image"):
            image, _ = await self.fetches.do(req.source_url, lambda: source.fetch(req.source_url, limits))
        fmt = sniff(image.data)
        version = keys.source_version(image.etag, image.last_modified, image.data)
        digest = keys.result_digest(req.po, "raw", req.source_url, version, self.settings_fingerprint)
        etag = keys.etag_for(digest) if settings.server.use_etag else None
        last_modified = image.last_modified if settings.server.use_last_modified else None
        base = {
            **validator_headers(po=req.po, ttl=settings.server.ttl, etag=etag, last_modified=last_modified, vary=None),
            "X-Cache": "MISS",
        }
        note(cache="MISS", source_bytes=len(image.data), result_bytes=len(image.data))
        if etag and req.if_none_match and keys.etag_matches(req.if_none_match, etag):
            return Response(status_code=304, headers=base)
        if fmt is None:
            headers = {**base, "Content-Type": "application/octet-stream", **SECURITY_HEADERS}
        else:
            headers = image_headers(fmt, req.po, req.source_url, base)
        return Response(image.data, status_code=200, headers=headers)

    def _validators(self, req: Request_, etag: str | None, last_modified: str | None) -> dict[str, str]:
        vary = self.settings.options.vary
        ttl = self.settings.server.ttl
        base = validator_headers(po=req.po, ttl=ttl, etag=etag, last_modified=last_modified, vary=vary)
        if req.experiment:
            base["X-Experiment"] = req.experiment
        return base

    def _respond(self, req: Request_, entry: CacheEntry, via: str) -> Response:
        note(cache=via)
        if entry.etag and req.if_none_match and keys.etag_matches(req.if_none_match, entry.etag):
            base = self._validators(req, entry.etag, entry.last_modified)
            if via == "STALE":
                base["Cache-Control"] = f"max-age={STALE_MAX_AGE}, public"
            return Response(status_code=304, headers={**base, "X-Cache": via})
        if via == "STALE" or req.po.expires:  # time-dependent Cache-Control: nothing to reuse
            base = self._validators(req, entry.etag, entry.last_modified)
            if via == "STALE":
                base["Cache-Control"] = f"max-age={STALE_MAX_AGE}, public"
            headers = image_headers(ImageFormat(entry.format), req.po, req.source_url, {**base, "X-Cache": via})
            note(result_bytes=len(entry.data))
            return Response(entry.data, status_code=200, headers=headers)
        note(result_bytes=len(entry.data))
        return PrebuiltResponse(entry.data, self._prebuilt_headers(req, entry, via))

    def _prebuilt_headers(self, req: Request_, entry: CacheEntry, via: str) -> list[tuple[bytes, bytes]]:
        """A 200's raw header list, built once per entry and reused for its every hit."""
        memo_key = (req.key, entry.etag, entry.stored_at)
        raw = self._headers.get(memo_key)
        if raw is None:
            base = self._validators(req, entry.etag, entry.last_modified)
            headers = image_headers(ImageFormat(entry.format), req.po, req.source_url, base)
            raw = encode_headers({**headers, "Content-Length": str(len(entry.data))})
            self._headers.put(memo_key, raw)
        return [*raw, (b"x-cache", via.encode("latin-1"))]


async def _unless_disconnected(request: Request, work: Coroutine[Any, Any, Response]) -> Response:
    """Run ``work`` but cancel it if the client disconnects: nobody is left to receive it.

    Only the miss path pays for this watcher; cache hits answer before it is needed.
    """
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise ClientClosedError("client disconnected")


def _refuse_lost_version(raw: str) -> None:
    """``plain/s3://bucket/key?<versionId>`` with the '?' unescaped: the version arrived as the
    request's query, which is not part of the image path; serving the latest version instead
    would be silently wrong."""
    if "/plain/" in raw:
        raise InvalidURLError(
            "a plain s3:// source's '?' before the versionId must be percent-encoded as %3F; "
            "unescaped, it starts the request's query and the version is lost"
        )
