"""The playground: one static page at ``/`` and ``/playground`` to build URLs and look at results.

Off unless IMGPROXY_PLAYGROUND=true (``make serve`` turns it on when no key is set). With a
key configured it answers only loopback clients: its signing endpoint signs whatever it is
given, which is exactly what a key exists to prevent for everyone else. The page, its script
and its style are files next to this module (no build step, nothing fetched at run time).

Endpoints (all under ``/playground/``): ``api/capabilities`` says what the server can do, so
the page shows only controls that work here; ``api/images`` lists the local images; ``api/sign``
signs paths (POST with a JSON body: browsers will not send that cross-site without a CORS
preflight, which is never granted, so other sites cannot use it).
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from imgproxy_py import __version__
from imgproxy_py.imagetype import SAVABLE
from imgproxy_py.options.appliers import FULL_NAMES
from imgproxy_py.options.model import GravityType, ResizingType
from imgproxy_py.security import sign_path
from imgproxy_py.settings import Settings

STATIC = Path(__file__).with_name("static")
_FILES = {
    "playground.html": "text/html; charset=utf-8",
    "playground.js": "text/javascript; charset=utf-8",
    "playground.css": "text/css; charset=utf-8",
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".avif", ".gif", ".svg", ".tif", ".tiff", ".heic", ".ico")
MAX_IMAGES = 200
MAX_SIGN = 64
MAX_PATH = 8192


class Playground:
    def __init__(self, settings: Settings, preset_names: frozenset[str]) -> None:
        self.settings = settings
        self.preset_names = preset_names
        self.loopback_only = settings.security.signing_enabled
        self._files = {name: (STATIC / name).read_bytes() for name in _FILES}

    def routes(self, prefix: str) -> list[Route]:
        page = self._guard(self.page)
        return [
            Route(f"{prefix}/", page, methods=["GET", "HEAD"]),
            Route(f"{prefix}/playground", page, methods=["GET", "HEAD"]),
            Route(f"{prefix}/playground/{{name:str}}", self._guard(self.static), methods=["GET", "HEAD"]),
            Route(f"{prefix}/playground/api/capabilities", self._guard(self.capabilities), methods=["GET"]),
            Route(f"{prefix}/playground/api/images", self._guard(self.images), methods=["GET"]),
            Route(f"{prefix}/playground/api/sign", self._guard(self.sign), methods=["POST"]),
        ]

    def _guard(self, endpoint: Any) -> Any:
        async def guarded(request: Request) -> Response:
            if self.loopback_only and not _is_loopback(request.client.host if request.client else ""):
                return Response("Not found", status_code=404, media_type="text/plain")
            response: Response = await endpoint(request)
            return response

        return guarded

    async def page(self, request: Request) -> Response:
        return self._file("playground.html")

    async def static(self, request: Request) -> Response:
        name = str(request.path_params["name"])
        if name not in _FILES:
            return Response("Not found", status_code=404, media_type="text/plain")
        return self._file(name)

    def _file(self, name: str) -> Response:
        return Response(self._files[name], media_type=_FILES[name], headers=_HEADERS)

    async def capabilities(self, request: Request) -> Response:
        return JSONResponse(self.describe(), headers=_HEADERS)

    def describe(self) -> dict[str, Any]:
        """What the page may offer: only what this server (build and settings) supports."""
        s = self.settings
        gravities = [g.value for g in GravityType if g not in (GravityType.REPLICATE, GravityType.FOCUS_POINT)]
        return {
            "version": __version__,
            "path_prefix": s.server.path_prefix,
            "signing": s.security.signing_enabled,
            "signature_size": s.security.signature_size,
            "secret_required": bool(s.server.secret),
            "resizing_types": [t.value for t in ResizingType],
            "gravity": gravities,
            "focus_point": True,
            # Features other modules may add later: the page shows their controls only when true.
            "face_gravity": "face" in gravities,
            "format_best": False,
            "autoquality": False,
            "formats": sorted(f.ext for f in SAVABLE),
            "watermark": s.watermark.configured,
            "presets": sorted(self.preset_names - {"default"}),
            "options": sorted(set(FULL_NAMES.values())),
            "sources": {"local": bool(s.sources.local_root), "http": True, "s3": s.s3.enabled},
            "info": True,
            "development_errors": s.server.development_errors,
            "separator": s.options.arguments_separator,
        }

    async def images(self, request: Request) -> Response:
        root = self.settings.sources.local_root
        found: list[dict[str, Any]] = []
        if root:
            with os.scandir(root) as entries:
                for entry in sorted(entries, key=lambda e: e.name):
                    if entry.name.lower().endswith(_IMAGE_SUFFIXES) and entry.is_file(follow_symlinks=False):
                        found.append(
                            {"name": entry.name, "url": f"local:///{entry.name}", "bytes": entry.stat().st_size}
                        )
                        if len(found) >= MAX_IMAGES:
                            break
        return JSONResponse({"images": found}, headers=_HEADERS)

    async def sign(self, request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _bad("expected a JSON body")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _bad("expected a JSON body")
        paths = body.get("paths") if isinstance(body, dict) else None
        if not isinstance(paths, list) or not 0 < len(paths) <= MAX_SIGN:
            return _bad(f"expected {{'paths': [...]}} with 1..{MAX_SIGN} paths")
        if not all(isinstance(p, str) and p.startswith("/") and len(p) <= MAX_PATH for p in paths):
            return _bad(f"every path starts with / and is at most {MAX_PATH} characters")
        signed = [self.settings.server.path_prefix + sign_path(self.settings.security, p) for p in paths]
        return JSONResponse({"signed": signed}, headers=_HEADERS)


def _bad(message: str) -> Response:
    return JSONResponse({"error": message}, status_code=400, headers=_HEADERS)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
