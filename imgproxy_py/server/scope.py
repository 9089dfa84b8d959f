"""Reading an ASGI scope directly: the hot paths skip building a starlette Request for this."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def raw_path(scope: Mapping[str, Any]) -> str:
    """The path as the client sent it (percent-escapes intact), which is what signatures cover."""
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "surrogateescape")
    return str(scope.get("path", "/"))


def header(scope: Mapping[str, Any], name: bytes) -> str | None:
    """The first value of header ``name`` (lower case, as ASGI servers deliver names)."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None
