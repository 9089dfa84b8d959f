"""The image endpoint: resolve (server/resolver.py) → the result flow (server/flow.py) with an image strategy.

``ImageStrategy`` computes a processed image from its source: a shared whole download, or the
source decoded as it downloads (server/streaming.py), stored analysis read and learnt
(the feature store), the auto-quality dataset fed. ``RawStrategy`` passes a source through
(``raw:1``). ``ImageEndpoint`` ties them to the resolver and answers memory hits before routing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from contextlib import AbstractContextManager, nullcontext
from typing import cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from imgproxy_py import keys
from imgproxy_py.analysis.records import FeatureRecord, source_digest
from imgproxy_py.cache.status import CacheStatus
from imgproxy_py.errors import ImgproxyError, SourceTimeoutError
from imgproxy_py.imagetype import ImageFormat, sniff
from imgproxy_py.monitoring.misses import MissMonitor
from imgproxy_py.observability import Metrics, add_span, note, span
from imgproxy_py.options.model import GravityType, ProcessingOptions, ResizingType
from imgproxy_py.processing import NOTHING_KNOWN, Job, Known, Processor, ProcessResult, streamed
from imgproxy_py.processing.faces import NO_FACE_ANALYSER, FaceAnalyser
from imgproxy_py.processing.streamed import StreamedInput
from imgproxy_py.quality_model.dataset import DatasetWriter, dataset_row
from imgproxy_py.server.feature_store import FeatureStore
from imgproxy_py.server.flow import NotModified, Outcome, Produced, ResultFlow, Work
from imgproxy_py.server.memo import LRU
from imgproxy_py.server.quality_models import QualityModelTracker
from imgproxy_py.server.resolver import ImageRequest, ImageResolver
from imgproxy_py.server.responder import Responder
from imgproxy_py.server.result_stream import ResultStream, stream_offer
from imgproxy_py.server.streaming import Share, Streamed, fetch_streamed
from imgproxy_py.sources.base import Source, SourceImage, SourceMeta, StreamingSource
from imgproxy_py.sources.local import LocalSource
from imgproxy_py.workers import Slot

log = logging.getLogger("imgproxy_py.request")


class ImageStrategy:
    """How a processed image is computed from its source."""

    cached = True
    admitted = True

    def __init__(
        self,
        flow: ResultFlow,
        responder: Responder,
        processor: Processor,
        *,
        stream: bool = True,
        stream_buffer: int = 0,
        stream_local_min_size: int = 0,
        metrics: Metrics | None = None,
        faces: FaceAnalyser = NO_FACE_ANALYSER,
        features: FeatureStore | None = None,
        quality_models: QualityModelTracker | None = None,
        dataset: DatasetWriter | None = None,
        misses: MissMonitor | None = None,
    ) -> None:
        self.flow = flow
        self.responder = responder
        self.processor = processor  # built once at start-up: configuration, limits, watermark, analysers
        self.stream = stream  # IMGPROXY_STREAM_SOURCES
        self.stream_buffer = stream_buffer
        self.stream_local_min_size = stream_local_min_size  # IMGPROXY_STREAM_LOCAL_MIN_SIZE
        self.metrics = metrics
        self.faces = faces  # the face detector (None when not installed) and its settings
        self.features = features
        self.quality_models = quality_models  # aq:ml: the serving version, metrics, drift
        self.dataset = dataset  # IMGPROXY_AUTOQUALITY_DATASET: rows from aq:dssim searches
        self.misses = misses  # input mix, per-arm quality, shadow detector (after the response)
        self.transforms = 0  # images processed by this process (observability, tests)
        self.detections = 0  # images the face detector ran on in this process
        self.peak_stream_bytes = 0  # the most source bytes one streamed request held between download and decoder
        self._streaming: dict[str, Share] = {}  # source URLs being streamed
        self._local_sizes: LRU[str, bool] = LRU(8192)  # local URL → at least stream_local_min_size

    async def compute(self, req: ImageRequest, work: Work) -> Outcome:
        flow = self.flow
        slot = work.in_slot()
        share = self._streaming.get(req.source_url)
        shared: SourceImage | None = None
        if share is not None and not share.decided:  # join it: it becomes one shared buffered download
            share.wanted = True
            with span("downloading_source_image"):
                shared = await asyncio.shield(share.image)
        if shared is not None:
            image = shared
            note(source_bytes=len(image.data))
        elif self._streams(req, work.source, work.fetches.in_flight(req.source_url)):
            got = await self._stream(req, cast(StreamingSource, work.source), work, slot)
            if not isinstance(got, Streamed):
                image = got
                note(source_bytes=len(image.data))
            else:
                note(source_bytes=got.size)
                last_modified = flow.last_modified(got.meta.last_modified)
                etag = flow.etag(req, req.variant, got.version)
                if isinstance(got.value, NotModified):
                    return got.value
                if flow.skips_work(req, etag):  # no validator: known only now, after the work
                    return NotModified(cast(str, etag), last_modified)
                return self._produced(req, got.value, etag, last_modified)
        elif (local := self._read_on_worker(req, work)) is not None:
            image, version, result = await self._read_and_transform(slot, local, req, work)
            return self._finish(req, image, result, flow.etag(req, req.variant, version), None, None)
        else:
            image = await work.fetch(req.source_url)
        version = keys.source_version(image.etag, image.last_modified, image.data)
        etag = flow.etag(req, req.variant, version)
        last_modified = flow.last_modified(image.last_modified)
        if flow.skips_work(req, etag):
            return NotModified(cast(str, etag), last_modified)  # without a cache, skip the transform entirely
        source_id, record = await self._read_features(req.po, image.data)
        known = Known(record.faces, record.qualities) if record is not None else NOTHING_KNOWN
        # A whole source only: one still downloading could fail after the first bytes were sent.
        offer = stream_offer.get()
        output = ResultStream(offer, etag, last_modified) if offer is not None and not offer.done() else None
        try:
            result = await self._transform(
                slot, image.data, req, work.deadline, f"{req.source_url}\x00{version}", known, output
            )
        except BaseException as exc:
            if output is not None:
                output.fail(exc)
            raise
        if output is not None:
            output.finish()
        return self._finish(req, image, result, etag, source_id, record)

    def _finish(
        self,
        req: ImageRequest,
        image: SourceImage,
        result: ProcessResult,
        etag: str | None,
        source_id: str | None,
        record: FeatureRecord | None,
    ) -> Produced:
        """What every whole-source miss does after processing: learn, record, and make the entry."""
        self._learnt(result, source_id, record)
        if result.samples and self.dataset is not None:
            digest = source_id or source_digest(image.data)
            self.dataset.save_later([dataset_row(digest, sample) for sample in result.samples])
        if (result.ml or result.searched) and self.quality_models is not None:
            self.quality_models.observe(result.ml, result.searched)
        return self._produced(req, result, etag, self.flow.last_modified(image.last_modified))

    def _read_on_worker(self, req: ImageRequest, work: Work) -> LocalSource | None:
        """The local source to read on the worker thread that processes the file (one hand-over,
        not two), or None to fetch it first.

        Only when nothing needs the bytes before processing: a cache to fill (without one, a
        matching If-None-Match skips the work after the read), no stored analysis to look up,
        no result stream offered, and no download of the same URL to join.
        """
        source = work.source
        if not isinstance(source, LocalSource) or self.flow.cache is None:
            return None
        offer = stream_offer.get()
        if (
            (offer is None or offer.done())
            and not work.fetches.in_flight(req.source_url)
            and not (self.features is not None and self._wants_analysis(req.po))
        ):
            return source
        return None

    async def _read_and_transform(
        self, slot: Slot, source: LocalSource, req: ImageRequest, work: Work
    ) -> tuple[SourceImage, str, ProcessResult]:
        """The file (and its version) read and processed in one worker job; spans, counts and errors
        as the two-hop path.

        The read keeps the download timeout's outcome (SourceTimeoutError, so a stale entry is
        served), though it is only known once the read returns: meanwhile a stalled disk holds
        this worker's slot, where a separate read would have freed it at the timeout.
        """
        url = req.source_url
        limits = work.limits
        read: list[tuple[SourceImage, str]] = []  # the file and its version, once read
        read_seconds = 0.0

        def read_and_process() -> ProcessResult:
            nonlocal read_seconds
            started = time.monotonic()
            try:
                image = source.read_blocking(url, limits)
            finally:
                read_seconds = time.monotonic() - started
            if read_seconds > limits.timeout:
                raise SourceTimeoutError("local read timed out")  # as LocalSource.fetch
            version = keys.source_version(image.etag, image.last_modified, image.data)
            read.append((image, version))
            job = Job(image.data, req.po, req.client, work.deadline, f"{url}\x00{version}")
            return self.processor.process(job)

        started = time.monotonic()
        try:
            with self._in_progress():
                result = await self.flow.workers.run(slot, read_and_process)
        finally:
            if read:
                add_span("downloading_source_image", read_seconds)
                add_span("processing_image", max(0.0, time.monotonic() - started - read_seconds))
                note(source_bytes=len(read[0][0].data))
            else:  # the read failed, or was still running when the request went
                add_span("downloading_source_image", time.monotonic() - started)
        image, version = read[0]
        self._transformed(req, result, image.data)
        return image, version, result

    def may_stream_result(self, req: ImageRequest) -> bool:
        """Whether the result could be sent while it is encoded (server/result_stream.py): only a
        PNG can be, so a request that asks for another format, a size cap or the best format never
        pays for the offer; processing/output.py decides the rest (size, auto-quality, frames)."""
        po = req.po
        return po.format in (None, ImageFormat.PNG) and not po.max_bytes and not po.format_best

    def _streams(self, req: ImageRequest, source: Source, downloading: bool) -> bool:
        """Whether to try decoding this source as it downloads (server/streaming.py).

        A source another request is already downloading whole is joined instead (one download
        shared by every variant). Variants arriving before a streamed source's header is in have
        joined it already (``Share``); later ones buffer theirs through one shared download, so
        a burst of variants costs at most two downloads. A local file streams only when it is
        large (IMGPROXY_STREAM_LOCAL_MIN_SIZE): reading a small one whole is cheaper, and
        streaming only pays where it bounds the memory a request holds.
        """
        return (
            self.stream
            and hasattr(source, "stream")
            and streamed.options_allow(req.po)
            and not downloading
            and req.source_url not in self._streaming
            # the feature store is keyed by the source bytes' digest: such requests read the source whole
            and not (self.features is not None and self._wants_analysis(req.po))
            and (not isinstance(source, LocalSource) or self._large_local(source, req.source_url))
        )

    def _large_local(self, source: LocalSource, url: str) -> bool:
        """Whether a local file is large enough to stream, remembered per URL: the ``stat`` (and the
        path resolution's lstat calls) would otherwise run on the event loop for every miss. A file
        that changes size later is only streamed or read whole by a stale guess: the result is the same."""
        if self.stream_local_min_size <= 0:
            return True
        large = self._local_sizes.get(url)
        if large is None:
            try:
                large = os.stat(source.resolve(url)).st_size >= self.stream_local_min_size
            except (OSError, ImgproxyError):
                return False  # the whole read reports the error
            self._local_sizes.put(url, large)
        return large

    async def _stream(
        self, req: ImageRequest, source: StreamingSource, work: Work, slot: Slot
    ) -> SourceImage | Streamed[ProcessResult | NotModified]:
        flow = self.flow

        async def decode(stream: StreamedInput, meta: SourceMeta, validator: str | None) -> ProcessResult | NotModified:
            if validator is not None:
                etag = flow.etag(req, req.variant, validator)
                if flow.skips_work(req, etag):
                    return NotModified(cast(str, etag), flow.last_modified(meta.last_modified))
            source_key = f"{req.source_url}\x00{validator}" if validator is not None else None
            result = await self._transform(slot, stream, req, work.deadline, source_key)
            self._learnt(result, None, None)  # counts a detection; nothing is stored without the bytes' digest
            if (result.ml or result.searched) and self.quality_models is not None:
                self.quality_models.observe(result.ml, result.searched)
            return result

        share = self._streaming[req.source_url] = Share()
        token = work.token
        try:
            # the span covers the processing too (processing_image, nested): they overlap
            with span("downloading_source_image"):
                got = await fetch_streamed(
                    source, req.source_url, work.limits, self.stream_buffer, token, decode, share
                )
        finally:
            if self._streaming.get(req.source_url) is share:
                del self._streaming[req.source_url]
        self.peak_stream_bytes = max(self.peak_stream_bytes, got.peak_held if isinstance(got, Streamed) else 0)
        return got

    async def _transform(
        self,
        slot: Slot,
        source: bytes | StreamedInput,
        req: ImageRequest,
        deadline: float,
        source_key: str | None,
        known: Known = NOTHING_KNOWN,
        output: ResultStream | None = None,
    ) -> ProcessResult:
        with self._in_progress(), span("processing_image"):
            job = Job(source, req.po, req.client, deadline, source_key, known, output)
            result = await self._process(slot, job)
        self._transformed(req, result, source)
        return result

    def _in_progress(self) -> AbstractContextManager[object]:
        """The images_in_progress gauge up while the block runs (nothing without metrics)."""
        return self.metrics.images_in_progress.track_inprogress() if self.metrics is not None else nullcontext()

    def _transformed(self, req: ImageRequest, result: ProcessResult, source: bytes | StreamedInput) -> None:
        self.transforms += 1
        if self.metrics is not None:
            self.metrics.transforms.inc()
        if self.misses is not None:
            self.misses.observe(req.experiment, req.source_url, result, source)

    async def _process(self, slot: Slot, job: Job) -> ProcessResult:
        """THE seam with processing: where the server asks for an image to be processed (a local
        file read on the worker goes to ``Processor.process`` from ``_read_and_transform``'s job)."""
        return await self.flow.workers.run(slot, self.processor.process, job)

    def _produced(
        self, req: ImageRequest, result: ProcessResult, etag: str | None, last_modified: str | None
    ) -> Produced:
        return Produced(self.flow.entry(req, result.data, result.format.value, etag, last_modified))

    def _wants_analysis(self, po: ProcessingOptions) -> bool:
        """Whether this request may use stored analysis: faces for a crop or an overlay, or aq/best."""
        config = self.processor.config
        may_crop = (
            po.resizing_type in (ResizingType.FILL, ResizingType.FILL_DOWN, ResizingType.AUTO)
            or po.crop.width > 0
            or po.crop.height > 0
            or po.gravity.type in (GravityType.SMART, GravityType.OBJECT)
            # ``ex:1:obj`` / ``exar:1:obj``: the canvas is placed around the faces
            or (po.extend.enabled and po.extend.gravity.type is GravityType.OBJECT)
            or (po.extend_aspect_ratio.enabled and po.extend_aspect_ratio.gravity.type is GravityType.OBJECT)
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


class RawStrategy:
    """``raw:1``: the source's bytes as they are, without a worker slot or the cache (imgproxy streams them).

    Limits and source policy still apply; the type is sniffed, never taken from the source, so
    a source cannot make this origin serve it HTML (and the CSP sandbox is on every response).
    """

    cached = False
    admitted = False

    def __init__(self, flow: ResultFlow, responder: Responder) -> None:
        self.flow = flow
        self.responder = responder

    async def compute(self, req: ImageRequest, work: Work) -> Outcome:
        flow = self.flow
        image = await work.fetch(req.source_url)
        fmt = sniff(image.data)
        etag = flow.etag(req, "raw", keys.source_version(image.etag, image.last_modified, image.data))
        last_modified = flow.last_modified(image.last_modified)
        # A matching If-None-Match gets its 304 from the Responder, like any other entry.
        return Produced(flow.entry(req, image.data, fmt.value if fmt is not None else "", etag, last_modified))

    def may_stream_result(self, req: ImageRequest) -> bool:
        return False  # the source's bytes as they are, never re-encoded


class ImageEndpoint:
    """GET/HEAD of an image URL."""

    def __init__(self, resolver: ImageResolver, flow: ResultFlow, images: ImageStrategy, raw: RawStrategy) -> None:
        self.resolver = resolver
        self.flow = flow
        self.images = images
        self.raw = raw

    def memory_hit(self, scope: Scope) -> tuple[list[tuple[bytes, bytes]], bytes] | None:
        """Headers and body of a fresh L1 hit for a path already served, else None (take the full path).

        The hot path, called before any routing (server/hits.py): only a path the resolver has
        verified and parsed before is looked up (its memo holds nothing else), and only a plain
        200 is answered here; conditional, expiring and stale answers go the full way.
        """
        try:
            req = self.resolver.resolve_cached(scope)
        except ImgproxyError:
            return None
        if req is None or req.if_none_match is not None or req.po.expires or req.po.raw:
            return None
        entry = self.flow.fresh_in_memory(req.key)
        if entry is None:
            return None
        note(cache=CacheStatus.HIT_L1, result_bytes=len(entry.data), experiment=req.experiment)
        return self.images.responder.prebuilt(req, entry, CacheStatus.HIT_L1), entry.data

    async def handle(self, request: Request) -> Response:
        try:
            req = self.resolver.resolve(request.scope)
        except ImgproxyError as exc:
            return self.flow.error(request, exc)
        if req.po.raw:
            return await self.flow.serve(request, req, self.raw)
        return await self.flow.serve(request, req, self.images)
