"""Cache building blocks: the entry format, the byte-bounded LRU, single-flight."""

from __future__ import annotations

import asyncio
import time

import pytest

from imgproxy_py.cache.base import CacheEntry
from imgproxy_py.cache.memory import MemoryTier
from imgproxy_py.cache.singleflight import SingleFlight


def entry(data: bytes = b"x" * 100, fresh: float = 60) -> CacheEntry:
    now = time.time()
    return CacheEntry(data, "jpeg", '"tag"', "Wed, 21 Oct 2015 07:28:00 GMT", now, now + fresh)


def test_entry_round_trips_without_base64_bloat() -> None:
    original = entry(bytes(range(256)) * 40)
    blob = original.to_bytes()
    assert CacheEntry.from_bytes(blob) == original
    assert len(blob) < len(original.data) + 200


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"IPY1",
        b"XXXX\x00\x00\x00\x02{}",
        b"IPY1\x00\x00\x00\xff{}",
        b"IPY1\x00\x00\x00\x02{}",
        b"IPY1\x00\x00\x00\x03[1]",
    ],
)
def test_malformed_entries_read_as_misses(blob: bytes) -> None:
    assert CacheEntry.from_bytes(blob) is None


async def test_memory_tier_is_bounded_by_bytes_and_evicts_lru() -> None:
    tier = MemoryTier(max_bytes=100_000)
    for i in range(30):
        await tier.set(f"k{i}", entry(b"x" * 9_000), ttl=60)
        await tier.get("k0")  # keep k0 recently used
    assert tier.size <= 100_000
    assert await tier.get("k0") is not None
    assert await tier.get("k1") is None
    assert await tier.get("k29") is not None


async def test_memory_tier_skips_huge_entries_and_expires() -> None:
    tier = MemoryTier(max_bytes=100_000)
    await tier.set("huge", entry(b"x" * 50_000), ttl=60)
    assert await tier.get("huge") is None
    await tier.set("short", entry(), ttl=0.05)
    assert await tier.get("short") is not None
    await asyncio.sleep(0.08)
    assert await tier.get("short") is None
    assert tier.size == 0


async def test_single_flight_runs_once_and_shares_the_outcome() -> None:
    flight: SingleFlight[int] = SingleFlight()
    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return 42

    results = await asyncio.gather(*(flight.do("k", work) for _ in range(10)))
    assert calls == 1
    assert [r for r, _ in results] == [42] * 10
    assert sum(shared for _, shared in results) == 9
    assert len(flight) == 0


async def test_single_flight_shares_errors_and_forgets_them() -> None:
    flight: SingleFlight[int] = SingleFlight()
    calls = 0

    async def boom() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise ValueError("source down")

    results = await asyncio.gather(*(flight.do("k", boom) for _ in range(5)), return_exceptions=True)
    assert calls == 1
    assert all(isinstance(r, ValueError) for r in results)
    with pytest.raises(ValueError):
        await flight.do("k", boom)
    assert calls == 2


async def test_a_cancelled_caller_does_not_cancel_the_work() -> None:
    flight: SingleFlight[int] = SingleFlight()
    done = asyncio.Event()

    async def work() -> int:
        await asyncio.sleep(0.05)
        done.set()
        return 1

    leader = asyncio.ensure_future(flight.do("k", work))
    await asyncio.sleep(0.01)
    follower = asyncio.ensure_future(flight.do("k", work))
    leader.cancel()
    assert await follower == (1, True)
    assert done.is_set()


async def test_a_caller_joining_as_the_last_one_leaves_gets_a_result_not_a_cancellation() -> None:
    """The race behind issue 16's ``500 error=unexpected``: the leader's client disconnects, which
    cancels the work; a second caller joins before the cancelled work has unwound. It must get
    a result of a fresh run, never the first run's CancelledError."""
    flight: SingleFlight[int] = SingleFlight()
    calls = 0
    unwinding = asyncio.Event()

    async def work() -> int:
        nonlocal calls
        calls += 1
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            unwinding.set()
            await asyncio.sleep(0.05)  # teardown takes a moment (a worker thread stopping)
            raise
        return 42

    leader = asyncio.ensure_future(flight.do("k", work))
    await asyncio.sleep(0.01)
    leader.cancel()
    await unwinding.wait()
    late = await asyncio.wait_for(flight.do("k", work), 5)
    assert late == (42, False)
    assert calls == 2
    with pytest.raises(asyncio.CancelledError):
        await leader
