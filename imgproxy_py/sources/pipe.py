"""A bounded hand-over of source bytes from the download (event loop) to the decoder (a worker thread).

A Unix stream socket pair: the download writes into its non-blocking end on the event loop and,
once ``max_bytes`` are held, waits until the decoder has read most of them (back-pressure; the
kernel charges every queued byte to the writer's send buffer). libvips reads the other end with
plain read(2) calls in C, without the GIL. A Python read callback (pyvips.SourceCustom) was
measured first: libvips reads 4 KiB at a time, and each callback must take the GIL from the event
loop thread, which at 200 MB/s made decoding slower than buffering the whole source.

Why a socket and not an OS pipe (the first version): a full pipe is writable again as soon as one
4 KiB page is free, so with a decoder slower than the download (the usual case for a large JPEG)
every 4 KiB read woke the event loop for a 4 KiB write: ~1000 wake-ups per 10 MB source, +35 %
CPU against buffering, which on a loaded machine ate the overlap streaming is for. A Unix
socket's writer is woken only once the queue has drained to a quarter of its buffer (the kernel's
own low-water mark), so the same source takes a handful of wake-ups and as much CPU as buffered.

Ending the body (``close``) and aborting (``abort``: a failed or cancelled download, a request
gone) both close the write end: the decoder reads an early end of file, and libvips, loading
with ``fail_on=truncated``, stops with an error the caller replaces by the real cause.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import termios

# Bytes kept free below the bound for the kernel's per-buffer bookkeeping, which ``held`` counts
# (a few hundred bytes to a page per write; measured, not documented).
_SLACK_SHARE = 16
_MIN_SLACK = 8192


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class PipeAborted(Exception):
    """The pipe was closed: no more bytes can be written."""


class SourcePipe:
    """Write on the event loop; hand ``reader`` (a descriptor) to the decoder. Not thread-safe
    on the write side: every method but ``take_reader`` belongs to the loop."""

    def __init__(self, max_bytes: int, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        reader, writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # the kernel doubles the request (bookkeeping) and caps it at /proc/sys/net/core/wmem_max
        writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, max(4096, max_bytes) // 2)
        self.max_bytes = min(max_bytes, writer.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
        reader.shutdown(socket.SHUT_WR)  # one way: the decoder never writes
        self._read_fd, self._write_fd = reader.detach(), writer.detach()
        os.set_blocking(self._write_fd, False)
        self._slack = max(_MIN_SLACK, self.max_bytes // _SLACK_SHARE)
        self.peak = 0  # the most bytes ever held at once (observability, tests)
        self.total = 0  # bytes written
        self.wakeups = 0  # times the writer waited for the reader
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
        """Bytes written and not yet read (as the kernel charges them: with its bookkeeping)."""
        if self._closed:
            return 0
        buf = bytearray(4)
        fcntl.ioctl(self._write_fd, termios.TIOCOUTQ, buf)
        return int.from_bytes(buf, "little")

    async def write(self, data: bytes) -> None:
        """Hand ``data`` over, waiting while the buffer is full; raises PipeAborted once closed."""
        view = memoryview(data)
        while view:
            if self._closed:
                raise PipeAborted
            room = self.max_bytes - self._slack - self.held
            if room < self._slack:  # full: wait until the reader has drained it to a quarter
                await self._writable()
                continue
            try:
                written = os.write(self._write_fd, view[:room])
            except BlockingIOError:
                await self._writable()
                continue
            except (BrokenPipeError, ConnectionResetError):  # the reader end is gone
                raise PipeAborted from None
            view = view[written:]
            self.total += written
            self.peak = max(self.peak, self.held)

    async def _writable(self) -> None:
        self.wakeups += 1
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
