"""``imgproxy-py doctor``: what this configuration will do, and what is wrong with it.

Prints the effective settings (secrets masked), the formats libvips here can read and write
with the library behind each, the optional features (face model), every cache tier with a
real round trip and its latency, the allocator ``serve`` would use, and warnings for risky
settings. Problems that stop a server from doing its job (a setting that fails start-up,
libvips unable to work, a configured cache tier unreachable, a missing local root) make the
exit status 1, so it can be a container's start check.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TextIO

from imgproxy_py import __version__, allocator
from imgproxy_py.errors import SettingsError
from imgproxy_py.imagetype import SAVABLE, ImageFormat
from imgproxy_py.settings import Settings, is_loopback_host

# Field names whose values are never printed.
_SECRET_FIELD = re.compile(r"key|salt|secret|password|token|trusted_signatures", re.IGNORECASE)
_USERINFO = re.compile(r"(?<=://)[^/@]*@")

# format → (libvips loader, libvips saver or None when imgproxy-py writes it itself, the libraries)
FORMATS: dict[ImageFormat, tuple[str | None, str | None, str]] = {
    ImageFormat.JPEG: ("jpegload_buffer", "jpegsave_buffer", "libjpeg-turbo"),
    ImageFormat.PNG: ("pngload_buffer", "pngsave_buffer", "libspng / libpng"),
    ImageFormat.WEBP: ("webpload_buffer", "webpsave_buffer", "libwebp"),
    ImageFormat.AVIF: ("heifload_buffer", "heifsave_buffer", "libheif with an AV1 codec"),
    ImageFormat.GIF: ("gifload_buffer", "gifsave_buffer", "libnsgif (read), cgif (write)"),
    ImageFormat.TIFF: ("tiffload_buffer", "tiffsave_buffer", "libtiff"),
    ImageFormat.SVG: ("svgload_buffer", None, "librsvg (rasterising), imgproxy-py's sanitiser (passing through)"),
    ImageFormat.ICO: ("pngload_buffer", "pngsave_buffer", "imgproxy-py's ICO container around libspng/libpng"),
}
# Formats read and written outside libvips (processing/codecs): the module that must import, the library.
CODEC_FORMATS: dict[ImageFormat, tuple[str, str]] = {
    ImageFormat.HEIC: ("pillow_heif", "pillow-heif: libheif + libde265 (read), x265 (write); AV1 HEIF via libvips"),
    ImageFormat.JXL: ("imagecodecs", "imagecodecs: libjxl"),
    ImageFormat.BMP: ("PIL", "Pillow (read), imgproxy-py's BMP writer (write)"),
}


class Level(Enum):
    OK = "ok"
    WARNING = "warning"
    PROBLEM = "PROBLEM"


@dataclass
class Report:
    sections: list[tuple[str, list[str]]] = field(default_factory=list)
    findings: list[tuple[Level, str]] = field(default_factory=list)

    def warn(self, text: str) -> None:
        self.findings.append((Level.WARNING, text))

    def problem(self, text: str) -> None:
        self.findings.append((Level.PROBLEM, text))

    @property
    def healthy(self) -> bool:
        return all(level is not Level.PROBLEM for level, _ in self.findings)

    def write(self, out: TextIO) -> None:
        for title, lines in self.sections:
            out.write(f"{title}\n")
            for line in lines:
                out.write(f"  {line}\n")
            out.write("\n")
        out.write("Findings\n")
        if not self.findings:
            out.write("  ok: nothing risky found\n")
        for level, text in self.findings:
            out.write(f"  {level.value}: {text}\n")
        verdict = "healthy" if self.healthy else "NOT healthy (exit status 1)"
        out.write(f"\nimgproxy-py {__version__}: {verdict}\n")


def mask(name: str, value: Any) -> str:
    """A setting's value for printing: secrets as ``***``, URLs without their userinfo."""
    if _SECRET_FIELD.search(name) and not name.startswith(("max_", "allow_")):
        return "***" if value else "(not set)"
    if isinstance(value, str):
        if "\n" in value:  # a file's content (IMGPROXY_EXPERIMENTS): its size, not the document
            return f"<{len(value)} characters>"
        return _USERINFO.sub("***@", value) or "(empty)"
    return repr(_plain(value))


def _plain(value: Any) -> Any:
    """Enums as their names, bytes as their length, sets sorted: readable, never raw data."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, frozenset | set):
        return sorted(str(_plain(v)) for v in value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value


def effective_settings(settings: Settings) -> Iterator[str]:
    for group in dataclasses.fields(settings):
        section = getattr(settings, group.name)
        if not dataclasses.is_dataclass(section):
            continue  # Settings.warnings: reported as findings
        for item in dataclasses.fields(section):
            yield f"{group.name}.{item.name} = {mask(item.name, getattr(section, item.name))}"


def _formats(report: Report) -> list[str]:
    from imgproxy_py.processing import vips

    lines = []
    for fmt, (loader, saver, library) in FORMATS.items():
        reads = loader is not None and vips.operation_available(loader)
        writes = fmt in SAVABLE and saver is not None and vips.operation_available(saver)
        modes = "/".join(m for m, ok in (("read", reads), ("write", writes)) if ok) or "—"
        lines.append(f"{fmt.value:5} {modes:10} {library}")
    for fmt, (module, library) in CODEC_FORMATS.items():
        ok = importlib.util.find_spec(module) is not None
        modes = ("read/write" if fmt in SAVABLE else "read") if ok else "—"
        lines.append(f"{fmt.value:5} {modes:10} {library}")
    lines.append(f"libvips {vips.version()}")
    if not vips.operation_available("jpegload_buffer") or not vips.operation_available("pngsave_buffer"):
        report.problem("this libvips cannot read JPEG or write PNG")
    return lines


async def _ping_tiers(settings: Settings, report: Report) -> list[str]:
    from imgproxy_py.server.app import build_cache

    logging.getLogger("imgproxy_py.cache").setLevel(logging.ERROR)  # the report says it, once
    cache, _ = build_cache(settings)
    if cache is None:
        return ["none configured (IMGPROXY_CACHE_MEMORY_SIZE=0, no Redis, no S3 bucket)"]
    lines = []
    if cache.memory is not None:
        lines.append(f"L1 memory: in process, {settings.cache.memory_size // (1024 * 1024)} MB")
    try:
        for guarded in cache.remote:
            started = time.perf_counter()
            up = await guarded.probe()
            elapsed = (time.perf_counter() - started) * 1000
            where = _tier_address(settings, type(guarded.tier).__name__)
            if up:
                lines.append(f"{guarded.name} {where}: reachable, {elapsed:.1f} ms round trip")
            else:
                lines.append(f"{guarded.name} {where}: UNREACHABLE (gave up after {elapsed:.0f} ms)")
                report.problem(f"cache tier {guarded.name} ({where}) is unreachable")
    finally:
        await cache.aclose()
    return lines


def _tier_address(settings: Settings, kind: str) -> str:
    if kind == "RedisTier":
        return "redis " + _USERINFO.sub("***@", settings.cache.redis_url)
    if kind == "MemcachedTier":
        return "memcached " + _USERINFO.sub("***@", settings.cache.memcached_url)
    return f"s3 bucket {settings.cache.s3_bucket}"


def _allocator(settings: Settings) -> list[str]:
    mode, path = settings.workers.malloc, allocator.jemalloc_path()
    if allocator.using_jemalloc():
        return [f"jemalloc (preloaded in this process; IMGPROXY_MALLOC={mode})"]
    if mode != "glibc" and path:
        return [f"jemalloc: `serve` re-executes itself under {path} (IMGPROXY_MALLOC={mode})"]
    reason = "IMGPROXY_MALLOC=glibc" if mode == "glibc" else "libjemalloc.so.2 is not installed"
    interval = settings.workers.free_memory_interval
    return [f"glibc malloc ({reason}); arenas capped, malloc_trim every {interval:g} s"]


def _risks(settings: Settings, report: Report) -> None:
    server, sec, src = settings.server, settings.security, settings.sources
    public = not is_loopback_host(server.host)
    for warning in settings.warnings:  # unknown IMGPROXY_* names, exposure: what `serve` logs at start-up
        report.warn(warning)
    exposure_reported = any(w.startswith("listening on") for w in settings.warnings)
    if public and not sec.signing_enabled and not exposure_reported:
        report.warn(
            f"listening on {server.host}:{server.port} with no IMGPROXY_KEY/IMGPROXY_SALT: "
            "anyone can make this server process anything"
        )
    if src.allow_private or src.allow_loopback or src.allow_link_local:
        allowed = [n for n, on in (("loopback", src.allow_loopback), ("link-local", src.allow_link_local),
                                   ("private", src.allow_private)) if on]  # fmt: skip
        report.warn(f"http sources may connect to {', '.join(allowed)} addresses (SSRF into your network)")
    if settings.workers.queue_size == 0:
        report.warn("IMGPROXY_REQUESTS_QUEUE_SIZE=0: the request queue is unbounded (a spike queues without limit)")
    if sec.allow_security_options:
        report.warn("IMGPROXY_ALLOW_SECURITY_OPTIONS=true: URLs can raise the source limits")
    if server.development_errors and public:
        report.warn("IMGPROXY_DEVELOPMENT_ERRORS_MODE=true on a public bind: error bodies explain too much")
    if server.playground and sec.signing_enabled:
        report.warn("IMGPROXY_PLAYGROUND=true with a key: the playground signs URLs (for loopback clients only)")
    if server.playground and public and not sec.signing_enabled:
        report.warn("IMGPROXY_PLAYGROUND=true on a public bind: anyone can browse the local images")
    if src.local_root and not os.path.isdir(src.local_root):
        report.problem(f"IMGPROXY_LOCAL_FILESYSTEM_ROOT={src.local_root} is not a readable folder")


def diagnose(settings: Settings) -> Report:
    report = Report()
    report.sections.append(("Configuration (effective, secrets masked)", list(effective_settings(settings))))
    try:
        from imgproxy_py.server.app import create_app

        create_app(settings)  # exactly what `serve` builds: presets, watermark, sources…
    except SettingsError as exc:
        report.problem(f"the server would not start: {exc}")
    from imgproxy_py.processing import vips

    report.sections.append(("Formats (read/write, library)", _formats(report)))
    if not vips.health_check():
        report.problem("libvips cannot do a tiny real operation")
    from imgproxy_py.server.app import build_faces

    faces, face_status = build_faces(settings)
    attention = "" if faces.detector is not None else " (g:sm is libvips' attention only)"
    report.sections.append(("Features", [f"face detection: {face_status}{attention}"]))
    report.sections.append(("Cache tiers", asyncio.run(_ping_tiers(settings, report))))
    report.sections.append(("Allocator", _allocator(settings)))
    _risks(settings, report)
    return report
