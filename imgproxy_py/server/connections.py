"""Connection-level limits uvicorn's httptools protocol does not have (issue 16).

uvicorn (0.54, httptools) reads a request head of any size, with no deadline, and keeps a
connection that never sends anything forever; its ``limit_concurrency`` answers 503 only
after a complete head and never closes anything. So one client could stall the process with
a 64 MB header (httptools grows it quadratically), or exhaust its descriptors with thousands
of silent or slowloris connections. This subclass adds, per process:

- a bound on the request head (request line + headers): more than ``MAX_HEAD_BYTES`` before
  the head is complete gets 431 at once, without parsing the rest;
- a deadline for the head (``IMGPROXY_READ_REQUEST_TIMEOUT``) from the moment a connection is
  accepted or a request's first byte arrives, and an idle deadline between keep-alive
  requests (``IMGPROXY_KEEP_ALIVE_TIMEOUT``); neither is extended by trickling bytes;
- a connection cap (``IMGPROXY_MAX_CLIENTS``): at the cap, the connection that has waited
  longest for a request head is closed to make room (a slowloris holds exactly those), and
  only when every connection is busy with a request is the new one shed with a 503.

uvicorn's h11 protocol does bound the head (``h11_max_incomplete_event_size``) but is pure
Python and several times slower per request, and has no head deadline or connection cap
either; so the fast parser stays and gets the limits here.

Deadlines are checked by one sweep every ``SWEEP_INTERVAL`` seconds over the connections
that are waiting for a head, so a request pays two dict operations, not a timer of its own.
uvicorn's own keep-alive timer is not used.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from imgproxy_py.server.scope import DISCONNECT, DisconnectWatch
from imgproxy_py.settings import ServerSettings, Settings

log = logging.getLogger("imgproxy_py.connections")

MAX_HEAD_BYTES = 64 * 1024  # request line + headers; nginx allows 4 × 8 KB, Go 1 MB
SWEEP_INTERVAL = 0.5  # seconds: the resolution of both deadlines
LINGER = 1.0  # seconds a refused client's remaining bytes are read and dropped, so it sees the 431
NOFILE_HEADROOM = 512  # descriptors kept for sources, caches, files and libvips beside client sockets

_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\ncontent-length: 31\r\nconnection: close\r\n\r\n"
    b"Request header fields too large"
)
_SHED = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: text/plain; charset=utf-8\r\ncontent-length: 20\r\nretry-after: 1\r\nconnection: close\r\n\r\n"
    b"Too many connections"
)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_clients: int = 2048  # 0: no cap
    read_request_timeout: float = 5.0
    keep_alive_timeout: float = 10.0  # 0: one request per connection
    max_head_bytes: int = MAX_HEAD_BYTES

    @classmethod
    def from_settings(cls, server: ServerSettings) -> ConnectionLimits:
        """The configured limits, the cap lowered to what this process's descriptor limit allows."""
        return cls(
            max_clients=_clients_within_nofile(server.max_clients),
            read_request_timeout=server.read_request_timeout,
            keep_alive_timeout=server.keep_alive_timeout,
        )


def raise_nofile_limit() -> int:
    """Raise the soft descriptor limit to the hard one (as Go's runtime does); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # e.g. above fs.nr_open: keep what we have
            pass
    return soft


def _clients_within_nofile(configured: int) -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    room = max(16, soft - min(NOFILE_HEADROOM, soft // 2))
    if configured == 0 or configured > room:
        log.warning(
            "IMGPROXY_MAX_CLIENTS lowered from %s to %d: the descriptor limit is %d",
            configured or "no cap",
            room,
            soft,
        )
        return room
    return configured


class ConnectionGuard:
    """One per server: the connections waiting for a request head, oldest first, with deadlines."""

    def __init__(self, limits: ConnectionLimits, loop: asyncio.AbstractEventLoop) -> None:
        self.limits = limits
        self.waiting: dict[GuardedHttpToolsProtocol, float] = {}
        self._loop = loop
        self._sweeper: asyncio.TimerHandle | None = None

    def admit(self, connections: set[Any]) -> bool:
        """Whether a new connection may stay; at the cap the longest-waiting idle one makes room."""
        cap = self.limits.max_clients
        if not cap or len(connections) < cap:
            return True
        if not self.waiting:
            return False
        victim = next(iter(self.waiting))
        del self.waiting[victim]
        victim.expire()
        return True

    def wait(self, conn: GuardedHttpToolsProtocol, seconds: float) -> None:
        """``conn`` now waits for a request head, for at most ``seconds`` (it becomes the newest waiter)."""
        self.waiting.pop(conn, None)
        self.waiting[conn] = self._loop.time() + seconds
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(SWEEP_INTERVAL, self._sweep)

    def tighten(self, conn: GuardedHttpToolsProtocol, seconds: float) -> None:
        """At most ``seconds`` more for ``conn``'s head (never longer than it already had)."""
        deadline = self._loop.time() + seconds
        current = self.waiting.get(conn)
        if current is None:
            self.wait(conn, seconds)
        elif deadline < current:
            self.waiting[conn] = deadline

    def done(self, conn: GuardedHttpToolsProtocol) -> None:
        self.waiting.pop(conn, None)

    def _sweep(self) -> None:
        now = self._loop.time()
        expired = [conn for conn, deadline in self.waiting.items() if deadline <= now]
        for conn in expired:
            del self.waiting[conn]
            conn.expire()
        self._sweeper = self._loop.call_later(SWEEP_INTERVAL, self._sweep) if self.waiting else None


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; pass the class as uvicorn's ``http``."""

    limits: ClassVar[ConnectionLimits | None] = None  # set by the CLI; worker processes read the env

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._guard = _guard_for(server_state, self.loop)
        self._head_bytes = 0
        self._in_body = False  # between a head's end and its message's end: bytes are body, not head
        self._reading_head = False  # a request's first byte has arrived, its head is not complete
        self._refused = False  # answered 431 / shed: remaining input is dropped
        self._watches: list[DisconnectWatch] = []  # the requests of this connection that may still run

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if not self._guard.admit(self.connections):
            self.transport = transport  # connection_lost closes it
            self._refused = True
            transport.write(_SHED)
            transport.close()
            log.warning("connection refused: %d connections, all busy", len(self.connections))
            return
        super().connection_made(transport)
        self._guard.wait(self, self._guard.limits.read_request_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard.done(self)
        super().connection_lost(exc)
        for watch in self._watches:
            watch.connection_lost()
        self._watches.clear()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._in_body:
            self._head_bytes += len(data)
            if self._head_bytes > self._guard.limits.max_head_bytes:
                self._refuse_head()
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        self._guard.tighten(self, self._guard.limits.read_request_timeout)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._in_body = True
        self._head_bytes = 0
        self._guard.done(self)
        super().on_headers_complete()
        watch = DisconnectWatch()
        self.scope[DISCONNECT] = watch  # type: ignore[literal-required]  # read by server/flow.py
        if len(self._watches) > 1:  # keep-alive: requests answered long ago are no longer watched
            del self._watches[:-1]
        self._watches.append(watch)
        if not self._guard.limits.keep_alive_timeout and self.cycle is not None:
            self.cycle.keep_alive = False

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_body = False

    def on_response_complete(self) -> None:
        """uvicorn's, with the guard's idle deadline in place of its keep-alive timer."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif not self._reading_head:  # a pipelined head already arriving keeps its own deadline
            self._guard.wait(self, self._guard.limits.keep_alive_timeout)

    def expire(self) -> None:
        """The head deadline passed, or the cap needs the room: close (a refused client after its linger)."""
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse_head(self) -> None:
        self._refused = True
        self._guard.done(self)
        log.warning("request head over %d bytes refused with 431", self._guard.limits.max_head_bytes)
        if self.transport.is_closing():
            return
        self.transport.write(_HEAD_TOO_LARGE)
        # Close only after the client's pending bytes are read and dropped for a moment:
        # closing with unread input sends a reset, and the client might never see the 431.
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._guard.wait(self, LINGER)
        else:
            self.transport.close()


def _guard_for(server_state: ServerState, loop: asyncio.AbstractEventLoop) -> ConnectionGuard:
    guard: ConnectionGuard | None = getattr(server_state, "imgproxy_guard", None)
    if guard is None:
        limits = GuardedHttpToolsProtocol.limits
        if limits is None:  # a worker process started by uvicorn: the same settings, from the environment
            limits = ConnectionLimits.from_settings(Settings.from_env().server)
            GuardedHttpToolsProtocol.limits = limits
        guard = ConnectionGuard(limits, loop)
        server_state.imgproxy_guard = guard  # type: ignore[attr-defined]
    return guard
