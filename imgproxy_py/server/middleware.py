"""Pure ASGI middleware: request id, timing, the access log line and request metrics."""

from __future__ import annotations

import asyncio
import hmac
import itertools
import os
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgproxy_py.errors import ForbiddenError, ShuttingDownError
from imgproxy_py.observability import (
    SENT,
    AccessLog,
    Metrics,
    RequestRecord,
    current_record,
    note,
    run_after,
    valid_request_id,
)
from imgproxy_py.processing import vips
from imgproxy_py.server.responses import error_response
from imgproxy_py.server.scope import header, raw_path

_QUIET_PATHS = frozenset({"/health", "/favicon.ico"})


class RequestIds:
    """Unique ids for requests without a usable X-Request-ID: a random per-process prefix and a counter.

    Ids correlate log lines; they need to be unique, not unguessable, and this costs no
    system call (``secrets`` reads the kernel's random source for every id).
    """

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):x}"


class ObserveRequests:
    """Every HTTP request gets an X-Request-ID (the client's if well-formed), a log line and metrics."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics | None,
        access_log: AccessLog | None = None,
        *,
        path_prefix: str = "",
        quiet: frozenset[str] = frozenset(),
        health: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.prefix = path_prefix
        self.quiet = _QUIET_PATHS | {path_prefix + p for p in _QUIET_PATHS} | quiet
        self.health = {p for p in self.quiet if p.endswith("/health")} | health
        self.ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = valid_request_id(header(scope, b"x-request-id")) or self.ids.next()
        record = RequestRecord(request_id, scope.get("method", "GET"), raw_path(scope))
        reset = current_record.set(record)
        started = time.monotonic()
        streaming_from = 0.0
        metrics = self.metrics
        if metrics is not None:
            metrics.requests_in_progress.inc()

        async def send_observed(message: Message) -> None:
            nonlocal streaming_from
            if message["type"] == "http.response.start":
                record.status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
                streaming_from = time.monotonic()
            elif (
                message["type"] == "http.response.body" and not message.get("more_body", False) and record.result_bytes
            ):
                record.spans["streaming_image"] = time.monotonic() - streaming_from
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        except asyncio.CancelledError:
            # uvicorn cancels what still runs when IMGPROXY_GRACEFUL_STOP_TIMEOUT expires and
            # would answer 500; a 503 with Retry-After tells a CDN to retry on another replica.
            if record.status != 0:
                raise
            error = ShuttingDownError("cancelled: the graceful stop timeout expired")
            record.error, record.detail = error.category, error.detail
            await error_response(error)(scope, receive, send_observed)
        except BaseException:
            if record.status == 0:
                record.status = 500
                record.error = record.error or "unexpected"
            raise
        finally:
            duration = time.monotonic() - started
            current_record.reset(reset)
            after, record.after = record.after, SENT  # monitoring the request queued (after_response)
            if after:
                run_after(after)
            if metrics is not None:
                metrics.requests_in_progress.dec()
                if scope.get("path") not in self.health:  # as imgproxy: probes are not requests
                    metrics.observe(record, duration)
                if "processing_image" in record.spans:  # libvips memory only moves when it works
                    stats = vips.memory_stats()
                    metrics.vips_memory.set(stats["mem"])
                    metrics.vips_max_memory.set(stats["mem_highwater"])
            if self.access_log is not None and scope.get("path") not in self.quiet:
                self.access_log.write(record, duration, self.prefix)


class RequireSecret:
    """IMGPROXY_SECRET: every route but the health checks needs ``Authorization: Bearer <secret>``."""

    def __init__(self, app: ASGIApp, secret: str, exempt: frozenset[str]) -> None:
        self.app = app
        self.expected = f"Bearer {secret}".encode()
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") not in self.exempt:
            given = (header(scope, b"authorization") or "").encode("latin-1")
            if not hmac.compare_digest(given, self.expected):
                note(error="security", detail="missing or wrong Authorization secret")
                await error_response(ForbiddenError("bad secret"))(scope, receive, send)
                return
        await self.app(scope, receive, send)
