"""Decode a source while it downloads: the download on the event loop, the decoder on a worker thread.

The download's first bytes are held until they show a complete header (processing/streamed.py);
a streamable JPEG/PNG is then handed to the decoder through a bounded SourcePipe (a Unix socket
pair; back-pressure: at most ``pipe_bytes`` of source are held between the two), anything else is
buffered whole and returned as a SourceImage for the usual path, without a second download.
The size cap is enforced by the source as bytes arrive, the download deadline here without the
time spent waiting for the decoder; the digest the cache key needs when the source has no
validator is computed as the bytes pass (with a validator, not at all). A failed or cancelled
download closes the pipe (the decoder reads an early end of file and fails; its error is replaced
by the download's); a failed decode cancels the download; a decoder done early lets the rest
drain (digest, cap, truncation).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from imgproxy_py.cancel import CancelToken
from imgproxy_py.errors import SourceTimeoutError
from imgproxy_py.processing.streamed import Head, StreamedInput, head_status
from imgproxy_py.sources.base import FetchLimits, SourceImage, SourceMeta, StreamingSource
from imgproxy_py.sources.pipe import PipeAborted, SourcePipe

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Streamed(Generic[T]):
    """A streamed source's outcome: what ``decode`` returned and what the cache key needs."""

    value: T
    meta: SourceMeta
    version: str
    size: int
    peak_held: int  # the most source bytes held between download and decoder at once


@dataclass(eq=False)
class Share:
    """A streamed download other variants of the source may still join.

    Until the header is complete nothing has reached a decoder; a variant asking for the same
    source by then sets ``wanted``, which makes the download a buffered one, and every variant
    gets its bytes from ``image`` (one download, as when buffering). A variant arriving later
    downloads on its own (None from ``image`` also means that: the leader went away)."""

    wanted: bool = False
    decided: bool = False
    image: asyncio.Future[SourceImage | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def publish(self, image: SourceImage | None) -> None:
        if not self.image.done():
            self.image.set_result(image)

    def fail(self, exc: BaseException) -> None:
        if not self.image.done():
            self.image.set_exception(exc)
            self.image.exception()  # retrieved: a share nobody joined must not warn


class _Sink:
    def __init__(self, pipe: SourcePipe, share: Share) -> None:
        self.pipe = pipe
        self.share = share
        self.meta = SourceMeta()
        self.head: bytearray | None = bytearray()  # the first bytes, until they show a complete header
        self.header = b""  # the bytes the decision was made on (a streamed source's header)
        self.decided: asyncio.Future[Head] = asyncio.get_running_loop().create_future()
        self.body: io.BytesIO | None = None
        self.digest: hashlib.blake2b | None = hashlib.blake2b(digest_size=16)  # None: a validator is the key
        self.size = 0
        self.draining = False  # the decoder is done: read the rest for the digest and the checks only

    async def begin(self, meta: SourceMeta) -> None:
        self.meta = meta
        if _validator(meta) is not None:  # the cache key uses the validator: no digest to compute
            self.digest = None

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.digest is not None:
            self.digest.update(chunk)
        if self.head is not None:
            self.head += chunk
            status = head_status(bytes(self.head))
            if status is Head.MORE:
                return
            self.share.decided = True
            if status is Head.STREAM and self.share.wanted:  # other variants wait for these bytes
                status = Head.BUFFER
            head, self.head = bytes(self.head), None
            self.header = head
            if status is Head.BUFFER:
                self.body = io.BytesIO(head)
                self.body.seek(0, io.SEEK_END)
            self.decided.set_result(status)
            if status is Head.STREAM:
                await self._to_pipe(head)
        elif self.body is not None:
            self.body.write(chunk)
        elif not self.draining:
            await self._to_pipe(chunk)

    def release(self) -> None:
        """Free the bytes held now, not when the collector gets to a failed request's traceback
        (which keeps this sink alive: a gigabyte per endless source otherwise, issue 16)."""
        self.head = None
        if self.body is not None:
            self.body.close()
            self.body = None

    async def _to_pipe(self, data: bytes) -> None:
        try:
            await self.pipe.write(data)
        except PipeAborted:
            # The decoder has closed its end (done at the image's end marker, or failed): the rest
            # is still read, for the digest, the size cap and the truncation check, as when buffered.
            self.draining = True


async def fetch_streamed(
    source: StreamingSource,
    url: str,
    limits: FetchLimits,
    pipe_bytes: int,
    token: CancelToken,
    decode: Callable[[StreamedInput, SourceMeta, str | None], Awaitable[T]],
    share: Share | None = None,
) -> SourceImage | Streamed[T]:
    """Download ``url``; decode it with ``decode(input, meta, version or None)`` as it arrives if it can stream.

    ``version`` is the source's validator when it sent one (known before the body), else None:
    the digest is known only at the end (``Streamed.version``). Returns a SourceImage when the
    source is not streamable (decode was not called).
    """
    pipe = SourcePipe(pipe_bytes)
    share = share or Share()
    sink = _Sink(pipe, share)
    # The source's own deadline would count the time the decoder holds the download back; the
    # download deadline is enforced here without it, the request's deadline bounds the rest.
    unbounded = FetchLimits(max_bytes=limits.max_bytes, timeout=max(limits.timeout, token.deadline - time.monotonic()))
    download = asyncio.ensure_future(_within(source.stream(url, unbounded, sink), pipe, limits.timeout))
    download.add_done_callback(lambda task: pipe.abort() if task.cancelled() or task.exception() else pipe.close())
    try:
        either: set[asyncio.Future[Any]] = {download, sink.decided}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not sink.decided.done():  # the whole body arrived (or failed) before a complete header
            share.decided = True
            download.result()
            image = _image(sink.meta, bytes(sink.head or b""))
            share.publish(image)
            return image
        if sink.decided.result() is Head.BUFFER:
            await download
            assert sink.body is not None
            image = _image(sink.meta, sink.body.getvalue())  # BytesIO hands its buffer over, no copy
            share.publish(image)
            return image
        share.publish(None)
        meta = sink.meta
        validator = _validator(meta)

        try:
            # the decoder owns the read end from here (processing closes it), so no descriptor
            # number is closed on this side while a worker may still be about to read it
            value = await decode(StreamedInput(sink.header, pipe.take_reader()), meta, validator)
        except Exception:
            failure = download.exception() if download.done() and not download.cancelled() else None
            if failure is not None:  # the decoder stopped because the download failed: that is the error
                raise failure from None
            raise
        sink.draining = True
        pipe.abort()  # free what the decoder left (trailing bytes) and let the download run on
        await download
        if validator is not None:
            version = validator
        else:
            assert sink.digest is not None  # kept: there was no validator
            version = "d:" + sink.digest.hexdigest()
        return Streamed(value=value, meta=meta, version=version, size=sink.size, peak_held=pipe.peak)
    except Exception as exc:
        share.fail(exc)  # joiners get the same error, as from a shared buffered download
        raise
    finally:
        share.decided = True
        share.publish(None)
        if not download.done():
            download.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await download
        pipe.abort()
        pipe.release_reader()
        sink.release()


async def _within(download: Awaitable[None], pipe: SourcePipe, timeout: float) -> None:
    """Run ``download``, failing it once it has taken ``timeout`` seconds not counting back-pressure waits."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    task = asyncio.ensure_future(download)
    try:
        while True:
            left = timeout - (loop.time() - started - pipe.blocked())
            if left <= 0:
                raise SourceTimeoutError("download timed out")
            done, _ = await asyncio.wait({task}, timeout=left)
            if done:
                return task.result()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _validator(meta: SourceMeta) -> str | None:
    if meta.etag:
        return "e:" + meta.etag
    if meta.last_modified:
        return "m:" + meta.last_modified
    return None


def _image(meta: SourceMeta, data: bytes) -> SourceImage:
    return SourceImage(data=data, etag=meta.etag, last_modified=meta.last_modified, content_type=meta.content_type)
