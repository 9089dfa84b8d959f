"""The ceiling for a cache hit: a bare starlette endpoint answering every path with fixed JPEG bytes.

Served by uvicorn with the same flags as ``imgproxy-py serve`` (uvloop, httptools, no access
log, no Server header), so the difference to this server on W3 is the cost of everything
but HTTP. The bytes are the benchmark photo fitted to the W3 width at q80 (about 12 KB).

    python -m benchmarks.bare_app --port 8099 --photo PATH --width 272
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def make_payload(photo: str, width: int) -> bytes:
    import pyvips

    img = pyvips.Image.thumbnail(photo, width, height=100_000)
    return bytes(img.jpegsave_buffer(Q=80, optimize_coding=True, keep="none"))


def create_app(payload: bytes) -> Starlette:
    headers = {"cache-control": "max-age=31536000, public"}

    async def image(request: Request) -> Response:
        return Response(payload, media_type="image/jpeg", headers=headers)

    return Starlette(routes=[Route("/{path:path}", image, methods=["GET", "HEAD"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--photo", required=True)
    parser.add_argument("--width", type=int, default=272)
    args = parser.parse_args()
    serve_like_the_server(create_app(make_payload(args.photo, args.width)), args.port)


def serve_like_the_server(app: Any, port: int) -> None:
    """uvicorn with ``imgproxy-py serve``'s flags (also the floor's, floor_app.py)."""
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        server_header=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
