"""``local:///path`` under IMGPROXY_LOCAL_FILESYSTEM_ROOT, confined to that root.

The path is resolved with symlinks followed, and must stay inside the
root's real path; only regular files are read (a FIFO or device would hang or leak).
Blocking file I/O runs in threads, never on the event loop: a pool of this source's own
(asyncio's executor hand-off costs the event loop about half of anyio's ``to_thread`` with a
limiter and a cancel scope, and a cold miss pays it once per request).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from typing import BinaryIO, TypeVar

from imgproxy_py.errors import (
    InvalidSourceURLError,
    SourceNotFoundError,
    SourceTimeoutError,
    SourceTooBigError,
)
from imgproxy_py.sources.base import FetchLimits, SizeCap, SourceImage, SourceMeta, StreamSink

T = TypeVar("T")


class LocalSource:
    def __init__(self, root: str, threads: int = 16) -> None:
        self._root = os.path.realpath(root)
        # At most ``threads`` reads at once; a cancelled or timed-out read is abandoned to finish there.
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="imgproxy-local")

    async def _in_thread(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def resolve(self, url: str) -> str:
        """Map a ``local:///`` URL to a real path inside the root, or raise."""
        # As imgproxy: the path is taken as written after one decoding (done by the URL
        # parser), up to the first "?"; no second percent-decoding.
        rest = url.split("://", 1)[1] if "://" in url else ""
        host, _, relative = rest.partition("/")
        if host not in ("", "localhost"):
            raise InvalidSourceURLError("local URL with a host")
        relative = relative.split("?", 1)[0]
        if "\x00" in relative:
            raise InvalidSourceURLError("NUL byte in a local path")
        candidate = os.path.realpath(os.path.join(self._root, relative.lstrip("/")))
        if candidate != self._root and not candidate.startswith(self._root + os.sep):
            raise SourceNotFoundError("local path escapes the root")
        return candidate

    def read_blocking(self, url: str, limits: FetchLimits) -> SourceImage:
        """The whole file on the calling thread (never the event loop's), within the size cap.

        The image endpoint calls this on the worker thread that then processes the file: one
        hand-over per cold miss instead of two. There the read is bounded by the request's
        deadline rather than the download timeout (a slow disk holds that worker's slot).
        """
        return _read(self.resolve(url), limits.max_bytes)

    async def fetch(self, url: str, limits: FetchLimits) -> SourceImage:
        # Resolving checks every path component (a system call each): in the thread, with the read.
        try:
            async with asyncio.timeout(limits.timeout):
                return await self._in_thread(self.read_blocking, url, limits)
        except TimeoutError:
            raise SourceTimeoutError("local read timed out") from None

    async def stream(self, url: str, limits: FetchLimits, sink: StreamSink) -> None:
        """The file to ``sink`` in chunks read on threads, within the same cap and timeout as ``fetch``."""

        def open_file() -> tuple[BinaryIO, SourceMeta]:
            return _open(self.resolve(url), limits.max_bytes)

        async def read(f: BinaryIO) -> bytes:
            return await self._in_thread(f.read, _CHUNK)

        try:
            async with asyncio.timeout(limits.timeout):
                f, meta = await self._in_thread(open_file)
                with f:
                    cap = SizeCap(limits.max_bytes)
                    await sink.begin(meta)
                    while chunk := await read(f):
                        cap.add(len(chunk))  # the file may grow while it is read
                        await sink.write(chunk)
        except TimeoutError:
            raise SourceTimeoutError("local read timed out") from None

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


_CHUNK = 256 * 1024


def _open_regular(path: str, max_bytes: int) -> tuple[BinaryIO, os.stat_result]:
    """The regular file at ``path`` opened unbuffered, with its stat; missing, not a file or over the limit: 4xx."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, OSError):
        raise SourceNotFoundError(
            "local file is missing or unreadable", hint="local:/// paths are relative to IMGPROXY_LOCAL_FILESYSTEM_ROOT"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SourceNotFoundError("local path is not a regular file")
        if max_bytes and info.st_size > max_bytes:
            raise SourceTooBigError("local file exceeds the size limit")
        f = os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise
    return f, info


def _open(path: str, max_bytes: int) -> tuple[BinaryIO, SourceMeta]:
    """The regular file at ``path`` opened for reading, with its validators; checks as ``_read``."""
    f, info = _open_regular(path, max_bytes)
    return f, SourceMeta(etag=_etag(path, info), last_modified=formatdate(info.st_mtime, usegmt=True))


def _etag(path: str, info: os.stat_result) -> str:
    tag = hashlib.blake2b(f"{path}\x00{info.st_size}\x00{info.st_mtime_ns}".encode(), digest_size=12)
    return f'"{tag.hexdigest()}"'


def _read(path: str, max_bytes: int) -> SourceImage:
    f, info = _open_regular(path, max_bytes)
    with f:
        # One byte more than the file has (or than the limit) shows growth past the limit;
        # asking for the limit itself would allocate all of it up front.
        data = f.read(min(info.st_size, max_bytes) + 1 if max_bytes else -1)
        if max_bytes and info.st_size < len(data) <= max_bytes:  # it grew since fstat: read on
            data += f.read(max_bytes + 1 - len(data)) or b""
    if max_bytes and len(data) > max_bytes:
        raise SourceTooBigError("local file exceeds the size limit")
    return SourceImage(
        data=data or b"",
        etag=_etag(path, info),
        last_modified=formatdate(info.st_mtime, usegmt=True),
    )
