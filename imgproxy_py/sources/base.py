"""The source contract: fetch a URL into memory, bounded in size and time.

Every source kind (local, http, s3, …) implements ``Source`` and maps its backend's
failures onto the SourceError family, so the handler never sees backend exceptions.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Protocol

from imgproxy_py.errors import SourceTooBigError


@dataclass(frozen=True, slots=True)
class FetchLimits:
    max_bytes: int = 0  # 0: no limit
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class SourceImage:
    data: bytes
    etag: str | None = None  # the source's validator, quotes included
    last_modified: str | None = None  # an HTTP date
    content_type: str | None = None


class BoundedBody:
    """A download's body as it arrives, refused the moment it passes ``max_bytes`` (0: no cap).

    The bytes live in one buffer that is released as soon as the download fails, not when the
    garbage collector gets to the failed frame: an exception's traceback keeps every local of
    the reading frame alive, and with a list of chunks there that was a gigabyte per endless
    source until the next full collection (issue 16). On success the buffer becomes the body
    without a second copy (BytesIO hands its buffer over when nothing else shares it).
    """

    __slots__ = ("_buffer", "_max_bytes", "_what", "size")

    def __init__(self, max_bytes: int, declared: str | None = None, what: str = "source") -> None:
        self._max_bytes = max_bytes
        self._what = what
        self._buffer = io.BytesIO()
        self.size = 0
        if max_bytes and declared and declared.isdigit() and int(declared) > max_bytes:
            self._buffer.close()
            raise SourceTooBigError(f"{what} is larger than the limit")

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._max_bytes and self.size > self._max_bytes:
            self.discard()
            raise SourceTooBigError(f"{self._what} is larger than the limit")
        self._buffer.write(chunk)

    def take(self) -> bytes:
        data = self._buffer.getvalue()
        self._buffer.close()
        return data

    def discard(self) -> None:
        """Free the buffered bytes now (idempotent)."""
        self._buffer.close()


class SizeCap:
    """Counts a streamed body's bytes and refuses it the moment it passes ``max_bytes`` (0: no cap)."""

    __slots__ = ("_max_bytes", "size")

    def __init__(self, max_bytes: int, declared: str | None = None) -> None:
        self._max_bytes = max_bytes
        self.size = 0
        if max_bytes and declared and declared.isdigit() and int(declared) > max_bytes:
            raise SourceTooBigError("source is larger than the limit")

    def add(self, n: int) -> None:
        self.size += n
        if self._max_bytes and self.size > self._max_bytes:
            raise SourceTooBigError("source is larger than the limit")


@dataclass(frozen=True, slots=True)
class SourceMeta:
    """What a streamed source says about itself before its body."""

    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None


class StreamSink(Protocol):
    """Where a streamed body goes: ``begin`` once before the body, then ``write`` per chunk (awaited:
    back-pressure). The body ending is the ``stream`` call returning."""

    async def begin(self, meta: SourceMeta) -> None: ...

    async def write(self, chunk: bytes) -> None: ...


class Source(Protocol):
    async def fetch(self, url: str, limits: FetchLimits) -> SourceImage:
        """Return the whole body or raise a SourceError."""
        ...

    async def aclose(self) -> None: ...


class StreamingSource(Source, Protocol):
    """A source that can also hand its body over as it arrives (http, s3, local)."""

    async def stream(self, url: str, limits: FetchLimits, sink: StreamSink) -> None:
        """Send the body to ``sink`` within the size cap and timeout, or raise a SourceError."""
        ...
