"""create_app(): the composition root. Builds every component explicitly from Settings."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from imgproxy_py import __version__
from imgproxy_py.netpolicy import AddressPolicy
from imgproxy_py.options.parser import Parser
from imgproxy_py.processing import ProcessingConfig, vips
from imgproxy_py.processing.intermediates import IntermediateCache
from imgproxy_py.server.handlers import ImageService
from imgproxy_py.server.health import health
from imgproxy_py.settings import Settings
from imgproxy_py.sources.base import Source
from imgproxy_py.sources.http import HTTPSource
from imgproxy_py.sources.local import LocalSource
from imgproxy_py.sources.registry import SourceRegistry
from imgproxy_py.workers import WorkerPool


def build_sources(settings: Settings) -> SourceRegistry:
    src = settings.sources
    http = HTTPSource(
        AddressPolicy(src.allow_loopback, src.allow_link_local, src.allow_private),
        user_agent=src.user_agent,
        max_redirects=src.max_redirects,
    )
    mapping: dict[str, Source] = {"http": http, "https": http}
    if src.local_root:
        mapping["local"] = LocalSource(src.local_root)
    return SourceRegistry(mapping)


def settings_fingerprint(config: ProcessingConfig) -> str:
    """Changes whenever a setting that changes output bytes changes (part of every ETag)."""
    text = f"{__version__}|{vips.version()}|{config!r}"
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


async def _not_found(request: Request) -> Response:
    return PlainTextResponse("Not found", status_code=404)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    vips.init()
    parser = Parser(settings.options)  # validates presets: a bad one stops start-up
    config = ProcessingConfig.from_settings(settings)
    workers = WorkerPool(settings.workers.workers, settings.workers.queue_size)
    sources = build_sources(settings)
    service = ImageService(
        settings=settings,
        parser=parser,
        sources=sources,
        workers=workers,
        processing=config,
        settings_fingerprint=settings_fingerprint(config),
        intermediates=IntermediateCache(settings.processing.intermediate_cache_size)
        if settings.processing.intermediate_cache_size
        else None,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await sources.aclose()
            workers.close()

    prefix = settings.server.path_prefix
    routes = [Route(f"{prefix}/health", health, methods=["GET", "HEAD"])]
    if settings.server.health_check_path:
        routes.append(Route(settings.server.health_check_path, health, methods=["GET", "HEAD"]))
    routes += [
        Route(f"{prefix}/favicon.ico", _not_found, methods=["GET", "HEAD"]),
        Route(prefix + "/{path:path}", service.handle, methods=["GET", "HEAD"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.settings = settings
    app.state.service = service
    return app
