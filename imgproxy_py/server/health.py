"""``/health``: 200 only if libvips can still do real work.

The check runs on its own thread (not the image pool), so a busy server still answers.
"""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from imgproxy_py.processing import vips

_limiter = anyio.CapacityLimiter(1)


async def health(request: Request) -> Response:
    try:
        with anyio.fail_after(5):
            ok = await anyio.to_thread.run_sync(vips.health_check, limiter=_limiter, abandon_on_cancel=True)
    except Exception:
        ok = False
    if ok:
        return PlainTextResponse("imgproxy-py is running", headers={"Cache-Control": "no-cache"})
    return PlainTextResponse("Error", status_code=500, headers={"Cache-Control": "no-cache"})
