"""``POST /_admin/purge``: drop every cached variant of a source, in every tier and process.

Only routed when IMGPROXY_ADMIN_SECRET is set; every call needs ``Authorization: Bearer
<that secret>`` (compared in constant time). The body names the source by URL (as the
server fetches it, after IMGPROXY_BASE_URL) or by its tag (the ``Surrogate-Key`` header):
``{"url": "https://…"}`` or ``{"tag": "0123456789abcdef"}``. The answer lists what each
tier dropped; other processes drop their L1 entries on the Redis broadcast.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from imgproxy_py import keys
from imgproxy_py.cache.tiered import TieredCache

_TAG = re.compile(r"[0-9a-f]{16}")
_MAX_BODY = 16 * 1024
_HEADERS = {"Cache-Control": "no-store"}


def purge_endpoint(cache: TieredCache | None, secret: str) -> Callable[[Request], Awaitable[Response]]:
    expected = f"Bearer {secret}".encode()

    async def purge(request: Request) -> Response:
        given = (request.headers.get("authorization") or "").encode("latin-1", "replace")
        if not hmac.compare_digest(given, expected):
            return PlainTextResponse(
                "Unauthorized", status_code=401, headers={**_HEADERS, "WWW-Authenticate": "Bearer"}
            )
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_BODY:
                return PlainTextResponse("Request body too large", status_code=413, headers=_HEADERS)
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            return PlainTextResponse('Expected JSON: {"url": "…"} or {"tag": "…"}', status_code=400, headers=_HEADERS)
        url = doc.get("url") if isinstance(doc, dict) else None
        tag = doc.get("tag") if isinstance(doc, dict) else None
        if isinstance(url, str) and url:
            tag = keys.source_tag(url)
        if not isinstance(tag, str) or not _TAG.fullmatch(tag):
            return PlainTextResponse(
                'Expected JSON: {"url": "…"} or {"tag": "<16 hex digits>"}', status_code=400, headers=_HEADERS
            )
        counts = await cache.purge(tag) if cache is not None else {}
        return JSONResponse({"tag": tag, "purged": counts}, headers=_HEADERS)

    return purge
