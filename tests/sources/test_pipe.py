"""The bounded hand-over between a download (event loop) and a decoder (a thread): a real Unix socket pair."""

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


async def test_a_full_pipe_blocks_the_writer_until_the_reader_has_drained_most_of_it() -> None:
    pipe = SourcePipe(65536)
    fd = pipe.take_reader()
    try:
        writer = asyncio.ensure_future(pipe.write(bytes(1 << 20)))
        await asyncio.sleep(0.05)
        assert not writer.done()  # back-pressure
        full = pipe.held
        assert pipe.max_bytes // 2 < full <= pipe.max_bytes
        # reading a little does not wake the writer (no 4 KiB ping-pong) ...
        assert len(await asyncio.to_thread(os.read, fd, 8192)) == 8192
        await asyncio.sleep(0.05)
        assert pipe.wakeups == 1 and pipe.total < 1 << 20
        # ... reading most of it does
        received = 8192
        while received < (1 << 20) and pipe.wakeups == 1:
            received += len(await asyncio.to_thread(os.read, fd, 4096))
        await asyncio.sleep(0.05)
        assert pipe.total > full  # it wrote again, in one go
        assert pipe.blocked() > 0.0
        while received < 1 << 20:
            received += len(await asyncio.to_thread(os.read, fd, 65536))
        await asyncio.wait_for(writer, 5)
        assert pipe.wakeups < 40  # 1 MiB through a 64 KiB buffer: a wake-up per ~48 KiB, not per page
    finally:
        pipe.close()
        os.close(fd)


async def test_abort_stops_a_waiting_writer_and_ends_the_readers_file() -> None:
    pipe = SourcePipe(65536)
    fd = pipe.take_reader()
    try:
        writer = asyncio.ensure_future(pipe.write(bytes(1 << 20)))
        await asyncio.sleep(0.05)
        assert not writer.done() and pipe.total > 0
        pipe.abort()
        with pytest.raises(PipeAborted):
            await asyncio.wait_for(writer, 5)
        received = bytearray()
        await asyncio.to_thread(_read_all, fd, received)  # what was written, then end of file
        assert len(received) == pipe.total
    finally:
        os.close(fd)


async def test_a_reader_gone_aborts_the_writer() -> None:
    pipe = SourcePipe(65536)
    os.close(pipe.take_reader())  # libvips done with the source (its end marker) or failed
    try:
        with pytest.raises(PipeAborted):
            await asyncio.wait_for(pipe.write(bytes(1 << 20)), 5)
    finally:
        pipe.close()


async def test_a_reader_going_away_wakes_a_waiting_writer() -> None:
    pipe = SourcePipe(65536)
    fd = pipe.take_reader()
    try:
        writer = asyncio.ensure_future(pipe.write(bytes(1 << 20)))
        await asyncio.sleep(0.05)
        assert not writer.done()  # full, waiting for the reader
        os.close(fd)  # the decoder stops reading mid-body (failed, or done at the end marker)
        with pytest.raises(PipeAborted):
            await asyncio.wait_for(writer, 5)
    finally:
        pipe.close()


async def test_descriptors_are_released() -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        pipe = SourcePipe(65536)
        await pipe.write(b"abc")
        pipe.abort()
        pipe.release_reader()
    assert len(os.listdir("/proc/self/fd")) == before
