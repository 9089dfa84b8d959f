"""A bounded hand-over of source bytes from the download (event loop) to the decoder (a worker thread).

The download awaits ``write``; once ``max_bytes`` are held it waits until the decoder has read
some (back-pressure), so a slow decoder slows the download instead of growing memory. The
decoder's ``read`` blocks until bytes arrive, the body ends, or the pipe is aborted (the
request was cancelled, its deadline passed, the download failed): it then returns what is
left, b"" at the end, or raises ``PipeAborted``. The standard library has no queue that one
side awaits and the other blocks on with a byte bound (asyncio.Queue is loop-only,
queue.Queue counts items and blocks the loop), hence this small class.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable


class PipeAborted(Exception):
    """The pipe was aborted: whoever reads gets no more bytes."""


class ChunkPipe:
    __slots__ = (
        "_aborted",
        "_chunks",
        "_cond",
        "_eof",
        "_held",
        "_loop",
        "_space",
        "_waiting",
        "_blocked",
        "_current",
        "_current_size",
        "_blocked_since",
        "max_bytes",
        "peak",
        "total",
    )

    def __init__(self, max_bytes: int, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.max_bytes = max(1, max_bytes)
        self.peak = 0  # the most bytes ever held at once (observability, tests)
        self.total = 0  # bytes written
        self._loop = loop or asyncio.get_running_loop()
        self._cond = threading.Condition()
        self._chunks: deque[memoryview] = deque()
        self._held = 0
        self._eof = False
        self._aborted = False
        self._space = asyncio.Event()
        self._waiting = False  # the writer waits for room (read under the lock)
        self._blocked = 0.0  # seconds the writer has spent waiting for room (loop time)
        self._blocked_since: float | None = None
        self._current = memoryview(b"")  # the chunk the reader is serving reads from (reader thread only)
        self._current_size = 0  # its size when taken: held until it is used up

    @property
    def held(self) -> int:
        return self._held

    async def write(self, data: bytes) -> None:
        """Hand ``data`` over, waiting while the pipe is full; raises PipeAborted once aborted."""
        view = memoryview(data)
        while view:
            with self._cond:
                if self._aborted:
                    raise PipeAborted
                room = self.max_bytes - self._held
                if room > 0:
                    part, view = view[:room], view[room:]
                    self._chunks.append(part)
                    self._held += len(part)
                    self.total += len(part)
                    self.peak = max(self.peak, self._held)
                    self._cond.notify_all()
                    continue
                self._space.clear()
                self._waiting = True
            self._blocked_since = self._loop.time()
            try:
                await self._space.wait()
            finally:
                self._blocked += self._loop.time() - self._blocked_since
                self._blocked_since = None

    def blocked(self) -> float:
        """Seconds the writer has waited for the reader so far (event loop only): the download's
        deadline does not count them, so a slow decoder cannot make a download time out."""
        since = self._blocked_since
        return self._blocked + (self._loop.time() - since if since is not None else 0.0)

    def close(self) -> None:
        """The body ended: the reader gets b"" once it has read everything."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def abort(self) -> None:
        """Stop both sides now and drop the bytes held (idempotent, any thread)."""
        with self._cond:
            self._aborted = True
            self._chunks.clear()
            self._held = self._current_size = 0
            self._cond.notify_all()
        self._wake_writer()

    def read(self, size: int, should_stop: Callable[[], bool] = lambda: False) -> memoryview:
        """Up to ``size`` bytes (worker thread only); empty at the end of the body.

        The reader takes a whole chunk at a time and serves the decoder's small reads (libvips
        asks for 4 KiB) from it without the lock; the chunk counts as held until it is used
        up, so the bound covers it. ``should_stop`` is polled while waiting, so a deadline
        stops a reader whose download stalled.
        """
        if self._aborted:
            raise PipeAborted
        current = self._current
        if not current:
            current = self._next_chunk(should_stop)
        out, self._current = current[:size], current[size:]
        return out

    def _next_chunk(self, should_stop: Callable[[], bool]) -> memoryview:
        with self._cond:
            self._held -= self._current_size  # the chunk just used up
            self._current_size = 0
            while not self._chunks:
                if self._aborted:
                    raise PipeAborted
                if self._eof:
                    return memoryview(b"")
                if should_stop():
                    raise PipeAborted
                if self._waiting:  # the writer waits for the room just freed
                    self._waiting = False
                    self._wake_writer()
                self._cond.wait(0.1)
            if self._aborted:
                raise PipeAborted
            chunk = self._chunks.popleft()
            self._current_size = len(chunk)
            wake, self._waiting = self._waiting, False
        if wake:  # one loop wake-up per chunk at most, not one per read
            self._wake_writer()
        return chunk

    def _wake_writer(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is writing any more
            self._loop.call_soon_threadsafe(self._space.set)
