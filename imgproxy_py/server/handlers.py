"""The image endpoint: parse → verify → fetch → (304 | process) → respond.

Everything this handler needs is passed in explicitly when the app is built; no
request state hides in long-lived objects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from imgproxy_py import keys, processing
from imgproxy_py.errors import ImgproxyError, RequestTimeoutError
from imgproxy_py.options.parser import Parser, split_signature
from imgproxy_py.processing.format_choice import NO_CLIENT_FORMATS
from imgproxy_py.processing.intermediates import IntermediateCache
from imgproxy_py.security import verify_signature
from imgproxy_py.server.negotiation import client_formats
from imgproxy_py.server.responses import error_response, image_headers, validator_headers
from imgproxy_py.settings import Settings
from imgproxy_py.sources.base import FetchLimits
from imgproxy_py.sources.registry import SourceRegistry
from imgproxy_py.workers import WorkerPool

log = logging.getLogger("imgproxy_py.request")


@dataclass(frozen=True, slots=True)
class ImageService:
    settings: Settings
    parser: Parser
    sources: SourceRegistry
    workers: WorkerPool
    processing: processing.ProcessingConfig
    settings_fingerprint: str
    intermediates: IntermediateCache | None = None

    async def handle(self, request: Request) -> Response:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.settings.server.timeout):
                return await self._handle(request, started + self.settings.server.timeout)
        except TimeoutError:
            return self._error(request, RequestTimeoutError("request timed out"))
        except ImgproxyError as exc:
            return self._error(request, exc)

    def _error(self, request: Request, exc: ImgproxyError) -> Response:
        level = logging.ERROR if exc.status_code >= 500 else logging.INFO
        log.log(level, "%s %s: %s (%s)", request.method, exc.status_code, exc.detail, exc.category)
        return error_response(exc)

    async def _handle(self, request: Request, deadline: float) -> Response:
        settings = self.settings
        raw_path = _raw_path(request)
        signature, path = split_signature(raw_path, settings.server.path_prefix)
        verify_signature(settings.security, signature, path)
        parsed = self.parser.parse(path)
        po = parsed.options

        opts = settings.options
        if po.format is None or opts.enforce_webp or opts.enforce_avif:
            client = client_formats(request.headers.get("accept", ""), opts)
        else:
            client = NO_CLIENT_FORMATS
        source = self.sources.for_url(parsed.source_url)
        limits = FetchLimits(max_bytes=settings.security.max_src_file_size, timeout=settings.sources.download_timeout)
        vary = "Accept" if opts.negotiates_format else None

        async with self.workers.slot() as slot:
            image = await source.fetch(parsed.source_url, limits)
            version = keys.source_version(image.etag, image.last_modified, image.data)
            etag = None
            if settings.server.use_etag:
                digest = keys.result_digest(po, client.key(), parsed.source_url, version, self.settings_fingerprint)
                etag = keys.etag_for(digest)
            base = validator_headers(
                po=po,
                ttl=settings.server.ttl,
                etag=etag,
                last_modified=image.last_modified if settings.server.use_last_modified else None,
                vary=vary,
            )
            if_none_match = request.headers.get("if-none-match")
            if etag and if_none_match and keys.etag_matches(if_none_match, etag):
                return Response(status_code=304, headers=base)
            result = await self.workers.run(
                slot,
                processing.process,
                image.data,
                po,
                self.processing,
                client,
                deadline,
                f"{parsed.source_url}\x00{version}",
                self.intermediates,
            )
        headers = image_headers(result.format, po, parsed.source_url, base)
        return Response(result.data, status_code=200, headers=headers)


def _raw_path(request: Request) -> str:
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "surrogateescape")
    return str(request.scope.get("path", "/"))
