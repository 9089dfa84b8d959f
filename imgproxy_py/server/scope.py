"""Reading an ASGI scope directly: the hot paths skip building a starlette Request for this."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def raw_path(scope: Mapping[str, Any]) -> str:
    """The path as the client sent it (percent-escapes intact), which is what signatures cover."""
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "surrogateescape")
    return str(scope.get("path", "/"))


def has_body(scope: Mapping[str, Any]) -> bool:
    """The request announces a body (uvicorn stops reading a large one until the app receives it)."""
    length = header(scope, b"content-length")
    return header(scope, b"transfer-encoding") is not None or (length is not None and length.strip() not in ("", "0"))


def header(scope: Mapping[str, Any], name: bytes) -> str | None:
    """The first value of header ``name`` (lower case, as ASGI servers deliver names)."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


DISCONNECT = "imgproxy.disconnect"  # scope key of the request's DisconnectWatch, when the server provides one


class DisconnectWatch:
    """The client's going, told to the request directly by our uvicorn protocol (server/connections.py).

    Plain ASGI tells an app only through a ``receive()`` left pending for the whole request,
    which costs every cold miss a task of its own and its wake-ups on the event loop
    (server/flow.py falls back to that under any other server).
    """

    __slots__ = ("_callback", "lost")

    def __init__(self) -> None:
        self._callback: Callable[[], None] | None = None
        self.lost = False

    def on_loss(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` once when the connection is lost; returns the undo. Check ``lost`` first:
        a connection already gone never calls back."""
        self._callback = callback
        return self._forget

    def _forget(self) -> None:
        self._callback = None

    def connection_lost(self) -> None:
        self.lost = True
        callback, self._callback = self._callback, None
        if callback is not None:
            callback()
