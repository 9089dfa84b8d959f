"""Pure ASGI middleware answering fresh in-process cache hits before routing.

A hit costs microseconds; starlette's routing and its Request and Response objects cost
more than the rest of the hit together. Only paths the image service has already parsed
and verified are looked up (see ``ImageEndpoint.memory_hit``); everything else, and every
hit that needs more than a plain 200, goes on to the router.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from imgproxy_py.server.image_endpoint import ImageEndpoint


class ServeMemoryHits:
    def __init__(self, app: ASGIApp, service: ImageEndpoint) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            hit = self.service.memory_hit(scope)
            if hit is not None:
                headers, body = hit
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
