"""The bounded hand-over between a download (event loop) and a decoder (a thread): a real OS pipe."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from imgproxy_py.sources.pipe import PipeAborted, SourcePipe


def _read_all(fd: int, into: bytearray) -> None:
    while chunk := os.read(fd, 4096):  # as libvips reads
        into.extend(chunk)


async def test_the_writer_waits_for_the_reader_and_never_holds_more_than_the_bound() -> None:
    pipe = SourcePipe(65536)
    assert pipe.max_bytes == 65536
    data = os.urandom(1 << 20)  # sixteen times the bound
    received = bytearray()
    fd = pipe.take_reader()
    thread = threading.Thread(target=_read_all, args=(fd, received))
    thread.start()
    try:
        for offset in range(0, len(data), 100_000):
            await pipe.write(data[offset : offset + 100_000])
            assert pipe.held <= pipe.max_bytes
        pipe.close()
        await asyncio.to_thread(thread.join, 10)
    finally:
        os.close(fd)
    assert bytes(received) == data
    assert 0 < pipe.peak <= pipe.max_bytes and pipe.total == len(data)


async def test_a_full_pipe_blocks_the_writer_until_read() -> None:
    pipe = SourcePipe(65536)
    fd = pipe.take_reader()
    try:
        await pipe.write(bytes(65536))
        blocked = asyncio.ensure_future(pipe.write(b"x" * 10))
        await asyncio.sleep(0.05)
        assert not blocked.done()  # back-pressure
        assert pipe.held == 65536
        assert len(await asyncio.to_thread(os.read, fd, 32768)) == 32768
        await asyncio.wait_for(blocked, 5)
        assert pipe.held == 32768 + 10
        assert pipe.blocked() > 0.0
    finally:
        pipe.close()
        os.close(fd)


async def test_abort_stops_a_waiting_writer_and_ends_the_readers_file() -> None:
    pipe = SourcePipe(65536)
    fd = pipe.take_reader()
    try:
        await pipe.write(bytes(65536))
        writer = asyncio.ensure_future(pipe.write(b"more"))
        await asyncio.sleep(0.01)
        pipe.abort()
        with pytest.raises(PipeAborted):
            await asyncio.wait_for(writer, 5)
        received = bytearray()
        await asyncio.to_thread(_read_all, fd, received)  # what was written, then end of file
        assert len(received) == 65536
    finally:
        os.close(fd)


async def test_descriptors_are_released() -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        pipe = SourcePipe(65536)
        await pipe.write(b"abc")
        pipe.abort()
        pipe.release_reader()
    assert len(os.listdir("/proc/self/fd")) == before
