"""IMGPROXY_WATERMARK_URL, fetched once at start-up through the source layer.

The same sources, address policy (loopback/private/link-local refused unless allowed),
IMGPROXY_ALLOWED_SOURCES, size cap and timeout as every source download: processing has no
HTTP client of its own and is handed the bytes (Processor.from_settings). A watermark that
cannot be fetched stops start-up with a message naming the variable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from imgproxy_py.errors import SettingsError, SourceError
from imgproxy_py.settings import Settings
from imgproxy_py.sources.base import FetchLimits
from imgproxy_py.sources.registry import SourceRegistry

_MAX_BYTES = 32 * 1024 * 1024  # when IMGPROXY_MAX_SRC_FILE_SIZE is 0 (no cap): a watermark is small


async def fetch_watermark(settings: Settings, sources: SourceRegistry) -> bytes | None:
    """The watermark URL's bytes; None when the watermark comes from DATA/PATH or is not configured."""
    wm = settings.watermark
    if wm.data is not None or wm.url is None:
        return None
    cap = settings.security.max_src_file_size
    limits = FetchLimits(max_bytes=cap if cap > 0 else _MAX_BYTES, timeout=settings.sources.download_timeout)
    try:
        image = await sources.for_url(wm.url).fetch(wm.url, limits)
    except SourceError as exc:
        raise SettingsError(f"IMGPROXY_WATERMARK_URL: cannot fetch the watermark: {exc.detail}") from None
    return image.data


def watermark_bytes(settings: Settings, build_sources: Callable[[Settings], SourceRegistry]) -> bytes | None:
    """``fetch_watermark`` from synchronous start-up code.

    It runs on a helper thread with its own event loop and its own short-lived SourceRegistry:
    start-up may already run inside the server's loop, and the serving registry's HTTP clients
    belong to that loop.
    """
    wm = settings.watermark
    if wm.data is not None or wm.url is None:
        return None

    async def fetch() -> bytes | None:
        sources = build_sources(settings)  # server/app.py's: the same sources and policy as serving
        try:
            return await fetch_watermark(settings, sources)
        finally:
            await sources.aclose()

    with ThreadPoolExecutor(1, thread_name_prefix="watermark") as pool:
        return pool.submit(asyncio.run, fetch()).result()
