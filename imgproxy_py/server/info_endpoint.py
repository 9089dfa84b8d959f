"""The ``/info`` endpoint: JSON facts about a source image (a paid feature in imgproxy).

Two URL forms, both signed like image URLs:

- ``/info/<signature>/<options>/<source>``: imgproxy Pro's form, so its URL builders work;
  the signature covers ``/<options>/<source>``, as in imgproxy.
- ``/<signature>/info/<options>/<source>``: the signature covers ``/info/<options>/<source>``.

Options: ``cachebuster``/``cb`` and ``expires``/``exp``; anything else is 404. An output
extension is 404 too (the option parser's loop, restricted to these names). Everything else is
the result flow images use (server/flow.py): the same source fetching (shared downloads),
limits, worker pool, timeout, cancellation, cross-process lock, error mapping, access log and
metrics; results are cached like images (their own key namespace, content "json"), with an
ETag derived from the source's version and Cache-Control from IMGPROXY_TTL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from imgproxy_py import keys
from imgproxy_py.analysis.focus import turned
from imgproxy_py.analysis.records import FeatureRecord, source_digest
from imgproxy_py.cache.base import CacheEntry
from imgproxy_py.errors import ImgproxyError, InvalidOptionError, InvalidURLError
from imgproxy_py.observability import span
from imgproxy_py.options.model import ProcessingOptions
from imgproxy_py.options.parser import Parser, split_signature
from imgproxy_py.processing import Job, Processor
from imgproxy_py.processing.faces import NO_FACE_ANALYSER, FaceAnalyser
from imgproxy_py.processing.geometry import orientation_to_angle_flip
from imgproxy_py.security import verify_signature
from imgproxy_py.server.feature_store import FeatureStore
from imgproxy_py.server.flow import NotModified, Outcome, Produced, ResultFlow, Work
from imgproxy_py.server.responder import Resolved, Responder
from imgproxy_py.server.responses import SECURITY_HEADERS
from imgproxy_py.server.scope import header, raw_path
from imgproxy_py.settings import Settings
from imgproxy_py.workers import Slot

INFO_OPTIONS = frozenset({"cachebuster", "cb", "expires", "exp"})
INFO_NAMESPACE = "info"  # stands where an image key has the client's formats: keys never collide
INFO_FORMAT = "json"  # CacheEntry.format of an info entry
CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class InfoRequest:
    po: ProcessingOptions  # only cachebuster and expires are ever set
    source_url: str
    key: str
    if_none_match: str | None
    options_text: str  # po.canonical()
    experiment: str = ""  # experiments do not apply to /info


def info_content(entry: CacheEntry, req: Resolved, base: dict[str, str]) -> dict[str, str]:
    return {**base, **SECURITY_HEADERS, "Content-Type": CONTENT_TYPE}


class InfoStrategy:
    """How the JSON document is computed from a source: its facts, and its faces when a detector is there."""

    cached = True
    admitted = True

    def __init__(
        self,
        flow: ResultFlow,
        responder: Responder,
        processor: Processor,
        *,
        faces: FaceAnalyser = NO_FACE_ANALYSER,
        features: FeatureStore | None = None,
    ) -> None:
        self.flow = flow
        self.responder = responder
        self.processor = processor  # describe() and detect_faces() run on a worker thread
        self.faces = faces
        self.features = features

    async def compute(self, req: InfoRequest, work: Work) -> Outcome:
        flow = self.flow
        slot = work.in_slot()
        image = await work.fetch(req.source_url)
        version = keys.source_version(image.etag, image.last_modified, image.data)
        etag = flow.etag(req, INFO_NAMESPACE, version)
        last_modified = flow.last_modified(image.last_modified)
        if flow.skips_work(req, etag):
            return NotModified(cast(str, etag), last_modified)  # without a cache, skip the computation
        with span("processing_image"):
            body = await flow.workers.run(slot, self.processor.describe, Job(image.data, req.po))
            body = await self._with_features(slot, image.data, body)
        return Produced(flow.entry(req, body, INFO_FORMAT, etag, last_modified))

    def may_stream_result(self, req: InfoRequest) -> bool:
        return False  # a small JSON document

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
            faces = await self.flow.workers.run(slot, self.processor.detect_faces, data)
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


class InfoEndpoint:
    """GET/HEAD of an /info URL: its own resolution, then the same flow as images."""

    def __init__(self, settings: Settings, parser: Parser, flow: ResultFlow, strategy: InfoStrategy) -> None:
        self.settings = settings
        self.parser = parser
        self.flow = flow
        self.strategy = strategy

    async def handle(self, request: Request) -> Response:
        try:
            req = self.resolve(request.scope)
        except ImgproxyError as exc:
            return self.flow.error(request, exc)
        return await self.flow.serve(request, req, self.strategy)

    def resolve(self, scope: Scope) -> InfoRequest:
        settings = self.settings
        signature, signed, path = split_info_path(raw_path(scope), settings.server.path_prefix)
        verify_signature(settings.security, signature, signed)
        po, source_url = parse_info_path(self.parser, path)
        text = po.canonical()
        key = keys.cache_key(text, INFO_NAMESPACE, source_url, self.flow.fingerprint)
        return InfoRequest(po, source_url, key, header(scope, b"if-none-match"), text)


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


def parse_info_path(parser: Parser, path: str) -> tuple[ProcessingOptions, str]:
    """Parse ``/<options>/.../<source>`` of an info URL: only the info options, no extension."""
    po, source_url, ext = parser.parse_restricted(path, INFO_OPTIONS, _unknown_info_option)
    if ext:
        raise InvalidURLError(
            "an info URL takes no output extension", hint="drop the @ext / .ext: /info always answers JSON"
        )
    return po, source_url


def _unknown_info_option(name: str) -> ImgproxyError:
    hint = "/info takes only cachebuster (cb) and expires (exp)"
    return InvalidOptionError(f"unknown info option {name!r}", hint=hint)
