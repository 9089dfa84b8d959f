"""Response headers for images, 304s and errors."""

from __future__ import annotations

import time
from urllib.parse import quote

from starlette.responses import PlainTextResponse, Response

from imgproxy_py import keys
from imgproxy_py.errors import ImgproxyError
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.options.model import ProcessingOptions

# Images never need to run anything; this stops an SVG or a polyglot from doing so.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    "X-Content-Type-Options": "nosniff",
}
# A passed-through SVG may embed raster images as data: URIs (the sanitiser keeps only
# those); letting them load is all this adds: scripts and every other fetch stay blocked.
SVG_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"


def cache_control(po: ProcessingOptions, ttl: int, now: float | None = None) -> str:
    max_age = ttl
    if po.expires > 0:
        remaining = int(po.expires - (time.time() if now is None else now))
        max_age = max(0, min(ttl, remaining))
    return f"max-age={max_age}, public" if max_age > 0 else "no-cache"


def content_disposition(po: ProcessingOptions, source_url: str, fmt: ImageFormat) -> str:
    if po.filename:
        stem = po.filename
    else:
        basename = _last_segment(source_url)
        stem = basename.rsplit(".", 1)[0] if "." in basename else basename
    name = f"{stem or 'image'}.{fmt.ext}"
    kind = "attachment" if po.return_attachment else "inline"
    if name.isascii() and name.isprintable():
        return f'{kind}; filename="{name.replace(chr(34), "%22")}"'
    # RFC 6266: an ASCII fallback plus the exact name in RFC 8187 encoding.
    fallback = "".join(ch if ch.isascii() and ch.isprintable() else "_" for ch in name).replace('"', "%22")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _last_segment(url: str) -> str:
    """The last segment of ``url``'s path (``urlsplit(url).path``'s, without parsing the rest:
    this runs for every miss)."""
    path = url.partition("#")[0].partition("?")[0]
    _, authority, rest = path.partition("://")
    if authority:
        path = rest.partition("/")[2]  # past the host (or the bucket); "" when there is no path
    return path.rsplit("/", 1)[-1]


def validator_headers(
    *, po: ProcessingOptions, ttl: int, etag: str | None, last_modified: str | None, vary: str | None
) -> dict[str, str]:
    """The headers a 200 and its 304 share (RFC 9110 §15.4.5)."""
    headers = {"Cache-Control": cache_control(po, ttl)}
    if etag:
        headers["ETag"] = etag
    if last_modified:
        headers["Last-Modified"] = last_modified
    if vary:
        headers["Vary"] = vary
    return headers


def image_headers(fmt: ImageFormat, po: ProcessingOptions, source_url: str, base: dict[str, str]) -> dict[str, str]:
    tag = keys.source_tag(source_url)
    return {
        **base,
        # Names the source for a CDN's purge-by-tag (Fastly/Varnish: Surrogate-Key; Cloudflare: Cache-Tag).
        "Surrogate-Key": tag,
        "Cache-Tag": tag,
        "Content-Type": fmt.mime,
        "Content-Disposition": content_disposition(po, source_url, fmt),
        **SECURITY_HEADERS,
        **({"Content-Security-Policy": SVG_CSP} if fmt is ImageFormat.SVG else {}),
    }


def error_response(error: ImgproxyError, development: bool = False) -> Response:
    """Short plain text; no Cache-Control, so neither a CDN nor a browser keeps an error.

    In development mode (IMGPROXY_DEVELOPMENT_ERRORS_MODE) the body also says what exactly
    was wrong and what was expected; otherwise it is the one-line public message.
    """
    headers = dict(SECURITY_HEADERS)
    if error.status_code in (429, 503):
        headers["Retry-After"] = "1"  # back off briefly; the queue drains in about that time
    body = error.developer_message() if development else error.public_message
    return PlainTextResponse(body, status_code=error.status_code, headers=headers)


def encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


class PrebuiltResponse(Response):
    """A 200 whose raw header list was built (and memoised) by the caller: the cache-hit path."""

    def __init__(self, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = 200
        self.body = body
        self.background = None
        self.raw_headers = raw_headers
