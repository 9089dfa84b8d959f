"""Pure ASGI middleware: the image lane, in front of starlette's routing.

A fresh in-process cache hit is answered here in microseconds; starlette's routing and its
Request and Response objects cost more than the rest of the hit together. Only paths the
image service has already parsed and verified are looked up (see ``ImageEndpoint.memory_hit``).

Every other GET/HEAD that no earlier route claims (health, /info, the playground, …: the
``routes`` before the catch-all image route) goes straight to the image endpoint as well. On
a cold miss the event loop's Python competes with the libvips workers for the GIL (each
millisecond of it costs 8-15% of cold-miss throughput on two cores: benchmarks/RESULTS.md),
and the exception middleware, the router's five matches and the route's wrappers were a
sixth of it. Routes are matched on their own path patterns, so a route added before the
catch-all is honoured here without a change.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette._utils import get_route_path
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from imgproxy_py.server.image_endpoint import ImageEndpoint


class ServeMemoryHits:
    def __init__(
        self, app: ASGIApp, service: ImageEndpoint, routes: Sequence[Route] = (), image_route: Route | None = None
    ) -> None:
        self.app = app
        self.service = service
        self._claimed = tuple(route.path_regex for route in routes)  # paths the router may send elsewhere
        self._images = image_route.path_regex if image_route is not None else None  # the catch-all's

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            hit = self.service.memory_hit(scope)
            if hit is not None:
                headers, body = hit
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            if self._images is not None:
                path = get_route_path(scope)
                if self._images.match(path) and not any(pattern.match(path) for pattern in self._claimed):
                    response = await self.service.handle(Request(scope, receive))
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
