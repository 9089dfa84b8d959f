"""create_app(): the composition root. Builds every component explicitly from Settings."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
from collections.abc import AsyncIterator

import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from imgproxy_py import __version__, allocator, keys
from imgproxy_py.analysis.registry import default_registry
from imgproxy_py.cache.lock import CrossProcessLock, lock_for
from imgproxy_py.cache.memcached import MemcachedTier
from imgproxy_py.cache.memory import MemoryTier
from imgproxy_py.cache.redis import RedisTier
from imgproxy_py.cache.s3 import S3Tier
from imgproxy_py.cache.tiered import GuardedTier, TieredCache
from imgproxy_py.experiments import Experiments, load_experiments
from imgproxy_py.monitoring.misses import miss_monitor, model_registry
from imgproxy_py.monitoring.quality_shadow import quality_shadow
from imgproxy_py.netpolicy import AddressPolicy
from imgproxy_py.observability import AccessLog, Metrics, configure_logging
from imgproxy_py.options.parser import Parser
from imgproxy_py.processing import Analysers, ProcessingConfig, Processor, vips
from imgproxy_py.processing.faces import FaceAnalyser
from imgproxy_py.processing.quality import METRIC_VERSION
from imgproxy_py.quality_model.dataset import DatasetWriter, open_dataset
from imgproxy_py.s3conn import S3Target
from imgproxy_py.security import SourcePolicy
from imgproxy_py.server.admin import purge_endpoint
from imgproxy_py.server.face_models import monitored
from imgproxy_py.server.feature_store import FeatureStore
from imgproxy_py.server.flow import ResultFlow
from imgproxy_py.server.health import health_endpoint
from imgproxy_py.server.hits import ServeMemoryHits
from imgproxy_py.server.image_endpoint import ImageEndpoint, ImageStrategy, RawStrategy
from imgproxy_py.server.info_endpoint import InfoEndpoint, InfoStrategy, info_content
from imgproxy_py.server.middleware import ObserveRequests, RequireSecret
from imgproxy_py.server.playground import Playground
from imgproxy_py.server.quality_models import QualityModelTracker, build_quality_model
from imgproxy_py.server.resolver import ImageResolver
from imgproxy_py.server.responder import Responder, image_content
from imgproxy_py.server.watermark_source import watermark_bytes
from imgproxy_py.settings import Settings
from imgproxy_py.sources.base import Source
from imgproxy_py.sources.http import HTTPSource
from imgproxy_py.sources.local import LocalSource
from imgproxy_py.sources.registry import SourceRegistry
from imgproxy_py.sources.s3 import S3Source
from imgproxy_py.workers import WorkerPool


def build_sources(settings: Settings) -> SourceRegistry:
    src = settings.sources
    allowed = SourcePolicy(src.allowed_sources)
    allow_url = allowed.allows if allowed.patterns else None
    http = HTTPSource(
        AddressPolicy(src.allow_loopback, src.allow_link_local, src.allow_private),
        user_agent=src.user_agent,
        max_redirects=src.max_redirects,
        allow_url=allow_url,
    )
    mapping: dict[str, Source] = {"http": http, "https": http}
    if src.local_root:
        mapping["local"] = LocalSource(src.local_root)
    if settings.s3.enabled:
        mapping["s3"] = S3Source(
            S3Target.from_settings(settings.s3),
            timeout=src.download_timeout,
            allowed_buckets=settings.s3.allowed_buckets,
            denied_buckets=settings.s3.denied_buckets,
        )
    return SourceRegistry(mapping, allow_url)


def cache_s3_target(settings: Settings) -> S3Target:
    """The results bucket's connection: the S3 source's, with any IMGPROXY_CACHE_S3_* overrides."""
    conf = settings.cache
    target = S3Target.from_settings(settings.s3)
    return dataclasses.replace(
        target,
        endpoint=conf.s3_endpoint or target.endpoint,
        region=conf.s3_region or target.region,
        path_style=target.path_style if conf.s3_path_style is None else conf.s3_path_style,
        access_key=conf.s3_access_key or target.access_key,
        secret_key=conf.s3_secret_key or target.secret_key,
        session_token=None if conf.s3_access_key else target.session_token,
    )


def build_cache(settings: Settings) -> tuple[TieredCache | None, CrossProcessLock | None]:
    """The configured tiers (L1 memory, L2 Redis or memcached, L3 S3) and, with Redis, the cross-process lock."""
    conf = settings.cache
    memory = MemoryTier(conf.memory_size) if conf.memory_size else None
    remote: list[GuardedTier] = []
    if conf.redis_url:
        remote.append(GuardedTier(RedisTier(conf.redis_url, conf.timeout), conf.timeout, conf.retry_after))
    if conf.memcached_url:
        remote.append(GuardedTier(MemcachedTier(conf.memcached_url), conf.timeout, conf.retry_after))
    if conf.s3_bucket:
        remote.append(
            GuardedTier(
                S3Tier(cache_s3_target(settings), conf.s3_bucket, conf.s3_prefix, conf.timeout),
                conf.timeout,
                conf.retry_after,
            )
        )
    if memory is None and not remote:
        return None, None
    cache = TieredCache(memory, remote, stale_window=conf.stale_if_error)
    return cache, lock_for(cache, lock_ttl=settings.server.timeout)


log = logging.getLogger("imgproxy_py.server")


def build_faces(settings: Settings) -> tuple[FaceAnalyser, str]:
    """The face detector (loaded now, so start-up says whether smart crop has it) and its status line."""
    conf = settings.analysis
    registry = default_registry(conf.face_threshold, enabled=conf.face_detection)
    detector = registry.get("face") if conf.face_detection else None
    status = registry.status("face") if conf.face_detection else "off (IMGPROXY_FACE_DETECTION=false)"
    return FaceAnalyser(detector, size=conf.detection_size, keep_whole=conf.keep_faces_whole), status


def settings_fingerprint(config: ProcessingConfig) -> str:
    """Changes whenever a setting that changes output bytes changes (part of every ETag and cache key);
    the same in every process and replica with the same settings (keys.canonical, not ``repr``)."""
    text = f"{__version__}|{vips.version()}|{keys.canonical(config)}"
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


async def _not_found(request: Request) -> Response:
    return PlainTextResponse("Not found", status_code=404)


async def _trim_memory(interval: float) -> None:
    """Periodically return freed heap to the OS (glibc only; jemalloc purges by itself)."""
    if interval <= 0 or allocator.using_jemalloc():
        return
    while True:
        await asyncio.sleep(interval)
        await anyio.to_thread.run_sync(allocator.trim)


def _listen_for_purges(cache: TieredCache | None, stop: asyncio.Event) -> asyncio.Task[None] | None:
    """With L1 and Redis: drop L1 entries whenever any process or replica purges a source."""
    if cache is None or cache.memory is None:
        return None
    memory = cache.memory
    for guarded in cache.remote:
        if isinstance(guarded.tier, RedisTier):
            return asyncio.ensure_future(guarded.tier.listen_for_purges(memory.purge_now, stop))
    return None


async def _stop_listening(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    """End the purge listener: it sees ``stop`` within its 1 s read timeout even if the
    cancellation is lost inside redis-py, and shutdown never waits on it for longer."""
    stop.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=3)
    if done:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    if os.environ.get("IMGPROXY_PY_SERVER_PROCESS") == "1":  # a worker started by `imgproxy-py serve`
        configure_logging(settings.observability.log_format, settings.observability.log_level)
    allocator.tune_glibc()  # before the worker threads exist
    vips.init()
    parser = Parser(settings.options)  # validates presets: a bad one stops start-up
    definitions = load_experiments(settings.experiments, parser.check_options)  # a bad one stops start-up too
    experiments = Experiments(definitions) if definitions is not None and definitions.experiments else None
    watermark = watermark_bytes(settings, build_sources)  # through sources/: a bad one stops start-up
    workers = WorkerPool(settings.workers.workers, settings.workers.queue_size)
    sources = build_sources(settings)
    cache, lock = build_cache(settings)
    faces, face_status = build_faces(settings)
    if faces.detector is None:
        log.warning("face detection %s: smart crop uses libvips attention only", face_status)
    else:
        log.info("face detection %s", face_status)
    features = None
    if cache is not None and settings.analysis.feature_store:
        detector_version = faces.detector.version if faces.detector is not None else "no-detector"
        features = FeatureStore(cache, f"{detector_version}|{METRIC_VERSION}", float(settings.cache.ttl))
    # Nothing can read metrics without the listener: then counting them is wasted work per request.
    obs = settings.observability
    metrics = Metrics(obs.prometheus_namespace) if obs.prometheus_bind else None
    # Models (face detection, auto-quality) get their monitor from here: latency, breaker, drift, shadows.
    models = model_registry(settings.analysis, metrics, obs.prometheus_namespace)
    faces = dataclasses.replace(faces, detector=monitored(faces.detector, settings.analysis, models))
    arms = experiments.shares() if experiments is not None else {}
    aq_shadow, aq_shadow_status = quality_shadow(settings.analysis, models.metrics, S3Target.from_settings(settings.s3))
    misses, shadow_status = miss_monitor(
        settings.analysis, models, metrics, faces.detector, arms, obs.prometheus_namespace, aq_shadow
    )
    quality_model = build_quality_model(settings, models)
    processor = Processor.from_settings(
        settings, watermark=watermark, analysers=Analysers(faces), quality_model=quality_model
    )
    fingerprint = settings_fingerprint(processor.config)
    flow = ResultFlow(settings, sources, workers, processor.limits, fingerprint, cache=cache, lock=lock)
    server = settings.server
    image_responder = Responder(server.ttl, settings.options.vary, image_content)
    quality_models = QualityModelTracker(quality_model, models)
    images = ImageStrategy(
        flow,
        image_responder,
        processor,
        stream=settings.sources.stream,
        stream_buffer=settings.sources.stream_buffer,
        stream_local_min_size=settings.sources.stream_local_min_size,
        metrics=metrics,
        faces=faces,
        features=features,
        quality_models=quality_models,
        misses=misses,
        dataset=DatasetWriter(open_dataset(settings.analysis.autoquality_dataset, S3Target.from_settings(settings.s3)))
        if settings.analysis.autoquality_dataset
        else None,
    )
    resolver = ImageResolver(
        settings,
        parser,
        fingerprint,
        default_autoquality=processor.config.autoquality.method,
        experiments=experiments,
        quality_models=quality_models,
    )
    raw = RawStrategy(flow, Responder(server.ttl, None, image_content, prebuild=False))
    service = ImageEndpoint(resolver, flow, images, raw)
    info_strategy = InfoStrategy(
        flow, Responder(server.ttl, None, info_content), processor, faces=faces, features=features
    )
    info = InfoEndpoint(settings, parser, flow, info_strategy)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if metrics is not None:
            metrics.workers.set(settings.workers.workers)  # only in a process that serves
            for (name, arm), share in (experiments.shares() if experiments else {}).items():
                metrics.arm_share.labels(name, arm).set(share)
        trimmer = asyncio.ensure_future(_trim_memory(settings.workers.free_memory_interval))
        stop_purges = asyncio.Event()
        purges = _listen_for_purges(cache, stop_purges)
        try:
            yield
        finally:
            trimmer.cancel()
            if purges is not None:
                await _stop_listening(purges, stop_purges)
            if features is not None:
                await features.flush()
            if images.dataset is not None:
                await images.dataset.flush()
            await flow.aclose()
            await misses.aclose()
            if cache is not None:
                await cache.aclose()
            await sources.aclose()
            workers.close()
            access_log.flush()
            if metrics is not None:
                metrics.flush_arms()

    prefix = settings.server.path_prefix
    health = health_endpoint(
        cache.remote if cache is not None else (),
        settings.server.health_check_cache_tiers,
        models.status_lines,
        extra=(
            f"face detection: {face_status}" + ("" if faces.detector else " (smart crop: attention only)"),
            f"face detection shadow: {shadow_status}",
            f"aq:ml shadow: {aq_shadow_status}",
        ),
    )
    routes = [Route(f"{prefix}/health", health, methods=["GET", "HEAD"])]
    if settings.server.health_check_path:
        routes.append(Route(settings.server.health_check_path, health, methods=["GET", "HEAD"]))
    admin_path = f"{prefix}/_admin/purge"
    if settings.server.admin_secret:  # off unless a secret is set
        routes.append(Route(admin_path, purge_endpoint(cache, settings.server.admin_secret), methods=["POST"]))
    if settings.server.playground:  # before the catch-all image route: "/" is the page then
        routes += Playground(settings, parser.preset_names, faces.detector is not None).routes(prefix)
    routes += [
        Route(f"{prefix}/favicon.ico", _not_found, methods=["GET", "HEAD"]),
        # /info before the catch-all: "/info/<sig>/…" (imgproxy's form) and "/<sig>/info/…".
        Route(f"{prefix}/info/{{path:path}}", info.handle, methods=["GET", "HEAD"]),
        Route(prefix + "/{signature}/info/{path:path}", info.handle, methods=["GET", "HEAD"]),
    ]
    claimed = list(routes)  # every route before the catch-all: the image lane leaves these to the router
    image_route = Route(prefix + "/{path:path}", service.handle, methods=["GET", "HEAD"])
    routes.append(image_route)
    access_log = AccessLog(obs.log_format, obs.log_level)
    custom_health = frozenset({settings.server.health_check_path} - {""})
    middleware = [
        Middleware(
            ObserveRequests,
            metrics=metrics,
            access_log=access_log,
            path_prefix=prefix,
            quiet=custom_health,
            health=custom_health,
        )
    ]
    if settings.server.secret:
        health_paths = {f"{prefix}/health", settings.server.health_check_path} - {""}
        if settings.server.admin_secret:
            health_paths.add(admin_path)  # has its own secret
        middleware.append(Middleware(RequireSecret, secret=settings.server.secret, exempt=frozenset(health_paths)))
    # after the secret check, before routing
    middleware.append(Middleware(ServeMemoryHits, service=service, routes=claimed, image_route=image_route))
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
    app.state.settings = settings
    app.state.service = service
    app.state.info = info
    app.state.metrics = metrics
    app.state.models = models
    return app
