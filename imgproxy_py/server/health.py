"""``/health``: is this process able to serve?

libvips must do a tiny real operation, on its own thread (not the image pool, so a busy
server still answers). Remote cache tiers are probed and reported; they only make the
check fail when IMGPROXY_HEALTH_CHECK_CACHE_TIERS is on, since the server serves (more
slowly) without them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from imgproxy_py.cache.tiered import GuardedTier
from imgproxy_py.processing import vips

_limiter = anyio.CapacityLimiter(1)
_HEADERS = {"Cache-Control": "no-cache"}


async def vips_healthy() -> bool:
    try:
        with anyio.fail_after(5):
            return await anyio.to_thread.run_sync(vips.health_check, limiter=_limiter, abandon_on_cancel=True)
    except Exception:
        return False


def health_endpoint(
    tiers: Sequence[GuardedTier], require_tiers: bool, models: Callable[[], list[str]] | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """``models`` gives one line per model version (its circuit breaker): a model whose breaker
    is open is reported, not a failure, because requests are served by its fallback."""

    async def health(request: Request) -> Response:
        if not await vips_healthy():
            return PlainTextResponse("Error: libvips is not working", status_code=500, headers=_HEADERS)
        lines = ["imgproxy-py is running"]
        down = []
        for tier in tiers:
            up = await tier.probe()
            lines.append(f"{tier.name}: {'ok' if up else 'down'}")
            if not up:
                down.append(tier.name)
        if models is not None:
            lines += models()
        status = 503 if down and require_tiers else 200
        return PlainTextResponse("\n".join(lines), status_code=status, headers=_HEADERS)

    return health
