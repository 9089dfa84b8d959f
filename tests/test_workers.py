"""Admission on arrival (WorkerPool.arrive): the queue counts requests still looking in the caches."""

from __future__ import annotations

import asyncio

import pytest

from imgproxy_py.errors import TooManyRequestsError
from imgproxy_py.workers import WorkerPool


async def _hold_slot(pool: WorkerPool, taken: asyncio.Event, release: asyncio.Event) -> None:
    slot = await pool.admit()
    try:
        taken.set()
        await release.wait()
    finally:
        pool.release_slot(slot)


async def test_arrivals_fill_the_queue_only_while_every_worker_is_busy() -> None:
    pool = WorkerPool(workers=1, queue_size=2)
    try:
        first = pool.arrive()  # a worker is free: counted, never refused
        second = pool.arrive()
        third = pool.arrive()
        for arrival in (first, second, third):
            arrival.leave()
        taken, release = asyncio.Event(), asyncio.Event()
        holder = asyncio.ensure_future(_hold_slot(pool, taken, release))
        await taken.wait()
        looking = [pool.arrive(), pool.arrive()]  # the queue (2) taken by requests still in their lookups
        with pytest.raises(TooManyRequestsError):
            pool.arrive()
        looking[0].leave()  # answered from a cache: its place is free again
        looking[0].leave()  # idempotent
        looking.append(pool.arrive())
        with pytest.raises(TooManyRequestsError):
            pool.arrive()
        assert pool.arriving == 2
        release.set()
        await holder
        for arrival in looking:
            arrival.leave()
        assert pool.arriving == 0
    finally:
        pool.close()


async def test_a_counted_arrival_that_queues_is_counted_once() -> None:
    pool = WorkerPool(workers=1, queue_size=1)
    try:
        taken, release = asyncio.Event(), asyncio.Event()
        holder = asyncio.ensure_future(_hold_slot(pool, taken, release))
        await taken.wait()
        queued = asyncio.Event()

        async def request() -> None:
            pool.arrive()  # in this task's context, as the handler does

            async def flight() -> None:  # the slot is taken by a task the request started
                pool.release_slot(await pool.admit())

            task = asyncio.create_task(flight())  # copies this context, as SingleFlight does
            await asyncio.sleep(0)
            queued.set()
            await task

        waiter = asyncio.ensure_future(request())
        await queued.wait()
        assert (pool.waiting, pool.arriving) == (1, 0)  # moved from arriving to waiting, not both
        with pytest.raises(TooManyRequestsError):
            pool.arrive()
        release.set()
        await asyncio.gather(holder, waiter)
        assert (pool.busy, pool.waiting, pool.arriving) == (0, 0, 0)  # nothing leaked
    finally:
        pool.close()
