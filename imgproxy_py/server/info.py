"""The ``/info`` endpoint: JSON facts about a source image (a paid feature in imgproxy).

Two URL forms, both signed like image URLs:

- ``/info/<signature>/<options>/<source>``: imgproxy Pro's form, so its URL builders work;
  the signature covers ``/<options>/<source>``, as in imgproxy.
- ``/<signature>/info/<options>/<source>``: the signature covers ``/info/<options>/<source>``.

Options: ``cachebuster``/``cb`` and ``expires``/``exp``; anything else is 404. An output
extension is 404 too. Everything else is the image endpoint's machinery: the same source
fetching (shared download coalescing), limits, worker pool, timeout and error mapping;
results are cached like images (their own key namespace, content "json"), with an ETag
derived from the source's version and Cache-Control from IMGPROXY_TTL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from imgproxy_py import keys
from imgproxy_py.analysis.features import FeatureRecord, source_digest
from imgproxy_py.analysis.focus import turned
from imgproxy_py.cache.base import CacheEntry
from imgproxy_py.cache.singleflight import SingleFlight
from imgproxy_py.cache.tiered import TieredCache
from imgproxy_py.errors import (
    ImgproxyError,
    InvalidOptionError,
    InvalidURLError,
    RequestTimeoutError,
    SourceError,
)
from imgproxy_py.options.appliers import ParseState, apply_option
from imgproxy_py.options.model import ProcessingOptions
from imgproxy_py.options.parser import split_signature
from imgproxy_py.options.presets import split_option
from imgproxy_py.options.source_url import URLRewriter, decode_source
from imgproxy_py.processing import Processor
from imgproxy_py.processing.faces import NO_FACE_ANALYSER, FaceAnalyser
from imgproxy_py.processing.geometry import orientation_to_angle_flip
from imgproxy_py.security import verify_signature
from imgproxy_py.server.features import FeatureStore
from imgproxy_py.server.responses import SECURITY_HEADERS, error_response, validator_headers
from imgproxy_py.server.scope import raw_path
from imgproxy_py.settings import Settings
from imgproxy_py.sources.base import FetchLimits, SourceImage
from imgproxy_py.sources.registry import SourceRegistry
from imgproxy_py.workers import Slot, WorkerPool

log = logging.getLogger("imgproxy_py.request")

INFO_OPTIONS = frozenset({"cachebuster", "cb", "expires", "exp"})
INFO_NAMESPACE = "info"  # stands where an image key has the client's formats: keys never collide
INFO_FORMAT = "json"  # CacheEntry.format of an info entry
CONTENT_TYPE = "application/json"
STALE_MAX_AGE = 60


@dataclass(frozen=True, slots=True)
class InfoRequest:
    po: ProcessingOptions  # only cachebuster and expires are ever set
    source_url: str
    key: str
    if_none_match: str | None


@dataclass(frozen=True, slots=True)
class _NotModified:
    etag: str
    last_modified: str | None


@dataclass(frozen=True, slots=True)
class _Produced:
    entry: CacheEntry


@dataclass(slots=True)
class InfoService:
    settings: Settings
    sources: SourceRegistry
    workers: WorkerPool
    processor: Processor  # describe() and detect_faces() run on a worker thread
    settings_fingerprint: str
    cache: TieredCache | None = None
    fetches: SingleFlight[SourceImage] = field(default_factory=SingleFlight)  # share the image service's
    flights: SingleFlight[_NotModified | _Produced] = field(default_factory=SingleFlight)
    _rewriter: URLRewriter | None = None
    faces: FaceAnalyser = NO_FACE_ANALYSER
    features: FeatureStore | None = None

    async def handle(self, request: Request) -> Response:
        started = time.monotonic()
        timeout = self.settings.server.timeout
        try:
            req = self._resolve(request)
            hit = self.cache.get_memory(req.key) if self.cache is not None else None
            if hit is not None and hit.is_fresh():
                return self._respond(req, hit, "HIT-L1")
            async with asyncio.timeout(timeout):
                return await self._handle(req, started + timeout)
        except TimeoutError:
            return self._error(request, RequestTimeoutError("info request timed out"))
        except ImgproxyError as exc:
            return self._error(request, exc)

    def _error(self, request: Request, exc: ImgproxyError) -> Response:
        level = logging.ERROR if exc.status_code >= 500 else logging.INFO
        log.log(level, "%s %s: %s (%s)", request.method, exc.status_code, exc.detail, exc.category)
        return error_response(exc, self.settings.server.development_errors)

    def _resolve(self, request: Request) -> InfoRequest:
        settings = self.settings
        signature, signed, path = split_info_path(raw_path(request.scope), settings.server.path_prefix)
        verify_signature(settings.security, signature, signed)
        po, source_url = parse_info_path(path, settings.options.arguments_separator)
        if self._rewriter is None:
            self._rewriter = URLRewriter(settings.options.url_replacements, settings.options.base_url)
        if self._rewriter.active:
            source_url = self._rewriter.rewrite(source_url)
        key = keys.cache_key(po, INFO_NAMESPACE, source_url, self.settings_fingerprint)
        return InfoRequest(po, source_url, key, request.headers.get("if-none-match"))

    async def _handle(self, req: InfoRequest, deadline: float) -> Response:
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
                if isinstance(outcome, _NotModified):
                    if req.if_none_match and keys.etag_matches(req.if_none_match, outcome.etag):
                        headers = self._validators(req, outcome.etag, outcome.last_modified)
                        return Response(status_code=304, headers={**headers, "X-Cache": "MISS"})
                    continue  # the leader's own 304 is no answer for a waiter without that ETag
                return self._respond(req, outcome.entry, "HIT-COALESCED" if shared else "MISS")
            raise RuntimeError("could not produce the info")  # pragma: no cover - needs two 304 races
        except SourceError as exc:
            if stale is not None and exc.is_outage:
                log.warning("source down (%s); serving a stale info result", exc.detail)
                return self._respond(req, stale, "STALE")
            raise

    async def _produce(self, req: InfoRequest, deadline: float) -> _NotModified | _Produced:
        """One fetch and one computation for every concurrent request of this key."""
        loop_deadline = asyncio.get_running_loop().time() + (deadline - time.monotonic())
        async with asyncio.timeout_at(loop_deadline):
            settings = self.settings
            source = self.sources.for_url(req.source_url)
            limits = FetchLimits(
                max_bytes=settings.security.max_src_file_size, timeout=settings.sources.download_timeout
            )
            async with self.workers.slot() as slot:
                image, _ = await self.fetches.do(req.source_url, lambda: source.fetch(req.source_url, limits))
                version = keys.source_version(image.etag, image.last_modified, image.data)
                digest = keys.result_digest(req.po, INFO_NAMESPACE, req.source_url, version, self.settings_fingerprint)
                etag = keys.etag_for(digest) if settings.server.use_etag else None
                last_modified = image.last_modified if settings.server.use_last_modified else None
                if (
                    self.cache is None
                    and etag is not None
                    and req.if_none_match
                    and keys.etag_matches(req.if_none_match, etag)
                ):
                    return _NotModified(etag, last_modified)  # without a cache, skip the computation
                body = await self.workers.run(slot, self.processor.describe, image.data)
                body = await self._with_features(slot, image.data, body)
            now = time.time()
            fresh_for = float(settings.cache.ttl)
            if req.po.expires:
                fresh_for = min(fresh_for, req.po.expires - now)
            entry = CacheEntry(
                data=body,
                format=INFO_FORMAT,
                etag=etag,
                last_modified=last_modified,
                stored_at=now,
                fresh_until=now + fresh_for,
            )
            if self.cache is not None:
                await self.cache.set(req.key, entry)
            return _Produced(entry)

    async def _with_features(self, slot: Slot, data: bytes, body: bytes) -> bytes:
        """Add the faces (and their focal point) to the document, from the feature store or the detector.

        ``faces`` is there whenever the detector is installed (``[]``: none found); boxes are in
        pixels of the image as displayed (EXIF orientation applied), like ``width``/``height``.
        """
        if self.faces.detector is None and self.features is None:
            return body
        digest = source_digest(data)
        record = await self.features.get(digest) if self.features is not None else None
        faces = record.faces if record is not None else None
        detected = False
        if faces is None and self.faces.detector is not None:
            faces = await self.workers.run(slot, self.processor.detect_faces, data)
            detected = True
        if faces is None:
            return body
        info = json.loads(body)
        width, height = int(info["width"]), int(info["height"])
        angle, flip = orientation_to_angle_flip(int(info.get("orientation") or 1))
        upright = turned(faces, angle, flip)
        info["faces"] = [
            {
                "x": round(d.x * width),
                "y": round(d.y * height),
                "width": round(d.w * width),
                "height": round(d.h * height),
                "confidence": round(d.score, 3),
            }
            for d in upright
        ]
        stored = FeatureRecord(version="", faces=tuple(upright))
        focal = stored.focal_point()
        info["focal_point"] = None if focal is None else {"x": focal[0], "y": focal[1]}
        if self.features is not None and (detected or record is None or record.blurhash is None):
            learnt = FeatureRecord(
                version=self.features.version,
                faces=tuple(faces),
                average_color=info.get("average_color"),
                dominant_colors=tuple(info["dominant_colors"]) if info.get("dominant_colors") else None,
                blurhash=info.get("blurhash"),
                phash=info.get("phash"),
            )
            self.features.save_later(digest, learnt, record)
        return json.dumps(info, separators=(",", ":")).encode()

    def _validators(self, req: InfoRequest, etag: str | None, last_modified: str | None) -> dict[str, str]:
        return validator_headers(
            po=req.po, ttl=self.settings.server.ttl, etag=etag, last_modified=last_modified, vary=None
        )

    def _respond(self, req: InfoRequest, entry: CacheEntry, via: str) -> Response:
        headers = self._validators(req, entry.etag, entry.last_modified)
        if via == "STALE":
            headers["Cache-Control"] = f"max-age={STALE_MAX_AGE}, public"
        if entry.etag and req.if_none_match and keys.etag_matches(req.if_none_match, entry.etag):
            return Response(status_code=304, headers={**headers, "X-Cache": via})
        headers.update(SECURITY_HEADERS)
        headers["X-Cache"] = via
        return Response(entry.data, status_code=200, headers=headers, media_type=CONTENT_TYPE)


def split_info_path(raw_path: str, prefix: str = "") -> tuple[str, str, str]:
    """Return (signature, the signed path, the ``/<options>/<source>`` part) of either URL form."""
    info_prefix = prefix + "/info"
    if raw_path.startswith(info_prefix + "/"):
        signature, path = split_signature(raw_path, info_prefix)
        return signature, path, path
    signature, path = split_signature(raw_path, prefix)
    if not path.startswith("/info/"):
        raise InvalidURLError("not an info URL")
    return signature, path, path[len("/info") :]


def parse_info_path(path: str, separator: str = ":") -> tuple[ProcessingOptions, str]:
    """Parse ``/<options>/.../<source>`` of an info URL: only the info options, no extension."""
    segments = path.lstrip("/").split("/")
    state = ParseState(ProcessingOptions(), {})
    index = 0
    for index, segment in enumerate(segments):  # noqa: B007 - index is used after the loop
        if separator not in segment:
            break
        name, args = split_option(segment, separator)
        if name not in INFO_OPTIONS:
            raise InvalidOptionError(
                f"unknown info option {name!r}", hint="/info takes only cachebuster (cb) and expires (exp)"
            )
        apply_option(state, name, args)
    else:
        raise InvalidURLError("source URL is missing")
    source_url, ext = decode_source(segments[index:])
    if ext:
        raise InvalidURLError(
            "an info URL takes no output extension", hint="drop the @ext / .ext: /info always answers JSON"
        )
    return state.po, source_url
