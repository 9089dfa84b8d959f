"""The bounded hand-over between a download (event loop) and a decoder (a thread): pure logic, real threads."""

from __future__ import annotations

import asyncio
import threading

import pytest

from imgproxy_py.sources.pipe import ChunkPipe, PipeAborted


async def test_the_writer_waits_for_the_reader_and_never_holds_more_than_the_bound() -> None:
    pipe = ChunkPipe(1000)
    data = bytes(range(256)) * 40  # 10240 bytes: ten times the bound
    received = bytearray()

    def reader() -> None:
        while chunk := pipe.read(300):
            assert len(chunk) <= 300
            received.extend(chunk)

    thread = threading.Thread(target=reader)
    thread.start()
    for offset in range(0, len(data), 4096):  # chunks larger than the bound are split
        await pipe.write(data[offset : offset + 4096])
        assert pipe.held <= 1000
    pipe.close()
    await asyncio.to_thread(thread.join, 10)
    assert bytes(received) == data
    assert pipe.peak == 1000 and pipe.total == len(data)


async def test_a_full_pipe_blocks_the_writer_until_read() -> None:
    pipe = ChunkPipe(100)
    await pipe.write(bytes(100))
    blocked = asyncio.ensure_future(pipe.write(b"x"))
    await asyncio.sleep(0.05)
    assert not blocked.done()  # back-pressure
    assert bytes(await asyncio.to_thread(pipe.read, 50)) == bytes(50)
    await asyncio.sleep(0.05)
    assert not blocked.done()  # the chunk being read still counts until it is used up
    assert bytes(await asyncio.to_thread(pipe.read, 80)) == bytes(50)
    assert bytes(await asyncio.to_thread(pipe.read, 80)) == b"x"  # the writer was let in when the reader asked for more
    assert blocked.done()
    assert pipe.peak == 100
    assert pipe.blocked() > 0.0


async def test_abort_wakes_both_sides() -> None:
    pipe = ChunkPipe(10)
    await pipe.write(bytes(10))
    writer = asyncio.ensure_future(pipe.write(b"more"))
    await asyncio.sleep(0.01)
    pipe.abort()
    with pytest.raises(PipeAborted):
        await asyncio.wait_for(writer, 5)
    with pytest.raises(PipeAborted):
        await asyncio.to_thread(pipe.read, 10)
    assert pipe.held == 0  # the bytes held are dropped at once


async def test_a_reader_waiting_on_a_stalled_download_stops_when_told() -> None:
    pipe = ChunkPipe(10)
    stop = threading.Event()
    reading = asyncio.ensure_future(asyncio.to_thread(pipe.read, 10, stop.is_set))
    await asyncio.sleep(0.05)
    assert not reading.done()
    stop.set()  # e.g. the deadline passed
    with pytest.raises(PipeAborted):
        await asyncio.wait_for(reading, 5)


async def test_the_end_of_the_body_after_what_is_held() -> None:
    pipe = ChunkPipe(10)
    await pipe.write(b"abc")
    pipe.close()
    assert bytes(pipe.read(10)) == b"abc"
    assert bytes(pipe.read(10)) == b""
