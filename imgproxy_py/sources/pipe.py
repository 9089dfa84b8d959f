"""A bounded hand-over of source bytes from the download (event loop) to the decoder (a worker thread).

An OS pipe: the download writes into its non-blocking end on the event loop and, once the
pipe holds ``max_bytes``, waits until the decoder has read some (back-pressure; the kernel
enforces the bound). libvips reads the other end with plain read(2) calls in C. A Python
read callback (pyvips.SourceCustom) was measured first: libvips reads 4 KiB at a time, and
each callback must take the GIL from the event loop thread, which at 200 MB/s made decoding
slower than buffering the whole source; the descriptor costs no GIL at all.

Ending the body (``close``) and aborting (``abort``: a failed or cancelled download, a request
gone) both close the write end: the decoder reads an early end of file, and libvips, loading
with ``fail_on=truncated``, stops with an error the caller replaces by the real cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import termios

_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux
_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class PipeAborted(Exception):
    """The pipe was closed: no more bytes can be written."""


class SourcePipe:
    """Write on the event loop; hand ``reader`` (a descriptor) to the decoder. Not thread-safe
    on the write side: every method but ``read_fd`` belongs to the loop."""

    def __init__(self, max_bytes: int, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._read_fd, self._write_fd = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self._write_fd, False)
        with contextlib.suppress(OSError):  # above /proc/sys/fs/pipe-max-size: keep the default
            fcntl.fcntl(self._write_fd, _F_SETPIPE_SZ, max(4096, max_bytes))
        self.max_bytes = int(fcntl.fcntl(self._write_fd, _F_GETPIPE_SZ))  # what the kernel granted
        self.peak = 0  # the most bytes ever held in the pipe at once (observability, tests)
        self.total = 0  # bytes written
        self._closed = False
        self._blocked = 0.0  # seconds the writer has waited for the reader (loop time)
        self._blocked_since: float | None = None
        self._waiter: asyncio.Future[None] | None = None

    def take_reader(self) -> int:
        """The read end, now owned by the caller (who must close it); only once."""
        fd, self._read_fd = self._read_fd, -1
        if fd < 0:
            raise RuntimeError("the read end was taken already")
        return fd

    @property
    def held(self) -> int:
        """Bytes written and not yet read."""
        if self._closed:
            return 0
        buf = bytearray(4)
        fcntl.ioctl(self._write_fd, termios.FIONREAD, buf)
        return int.from_bytes(buf, "little")

    async def write(self, data: bytes) -> None:
        """Hand ``data`` over, waiting while the pipe is full; raises PipeAborted once closed."""
        view = memoryview(data)
        while view:
            if self._closed:
                raise PipeAborted
            try:
                written = os.write(self._write_fd, view)
            except BlockingIOError:
                await self._writable()
                continue
            except BrokenPipeError:  # the reader end is gone
                raise PipeAborted from None
            view = view[written:]
            self.total += written
            self.peak = max(self.peak, self.held)

    async def _writable(self) -> None:
        waiter = self._waiter = self._loop.create_future()
        self._loop.add_writer(self._write_fd, _resolve, waiter)
        self._blocked_since = self._loop.time()
        try:
            await waiter
        finally:
            if not self._closed:
                self._loop.remove_writer(self._write_fd)
            self._blocked += self._loop.time() - self._blocked_since
            self._blocked_since = None

    def blocked(self) -> float:
        """Seconds the writer has waited for the reader so far: the download's deadline does not
        count them, so a slow decoder cannot make a download time out."""
        since = self._blocked_since
        return self._blocked + (self._loop.time() - since if since is not None else 0.0)

    def close(self) -> None:
        """The body ended (or must end now): the reader gets end of file after what it has not read.
        Idempotent; on the event loop only (a descriptor number must not be closed under a write)."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_writer(self._write_fd)
        os.close(self._write_fd)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)  # a writer waiting for room sees the pipe closed

    abort = close  # for the reader both look alike; the caller knows which it was

    def release_reader(self) -> None:
        """Close the read end unless it was taken (idempotent)."""
        if self._read_fd >= 0:
            os.close(self._read_fd)
            self._read_fd = -1
