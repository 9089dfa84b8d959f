"""The worker pool: admission on arrival (the queue counts requests still in the caches) and its threads."""

from __future__ import annotations

import asyncio
import threading

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


async def test_a_cancelled_caller_leaves_its_job_running_and_the_slot_taken_until_it_ends() -> None:
    pool = WorkerPool(workers=1, threads=1)
    try:
        started, finish = threading.Event(), threading.Event()

        def job() -> str:
            started.set()
            finish.wait(5)
            return "done"

        slot = await pool.admit()
        caller = asyncio.ensure_future(pool.run(slot, job))
        await asyncio.to_thread(started.wait, 5)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        pool.release_slot(slot)
        assert pool.busy == 1  # the thread still works under it: no second transform may start
        finish.set()
        for _ in range(100):
            if not pool.busy:
                break
            await asyncio.sleep(0.01)
        assert pool.busy == 0
        slot = await pool.admit()  # free again
        assert await pool.run(slot, lambda: 7) == 7
        pool.release_slot(slot)
    finally:
        pool.close()


async def test_a_job_whose_caller_left_before_a_thread_took_it_still_runs_and_errors_reach_the_caller() -> None:
    """A queued job may own what only it closes (a streamed input's descriptor): it is never dropped."""
    pool = WorkerPool(workers=2, threads=1)
    try:
        started, finish = threading.Event(), threading.Event()
        ran: list[str] = []

        def blocker() -> None:
            started.set()
            finish.wait(5)

        def queued_job() -> None:
            ran.append("queued")

        first, second = await pool.admit(), await pool.admit()
        running = asyncio.ensure_future(pool.run(first, blocker))
        await asyncio.to_thread(started.wait, 5)
        queued = asyncio.ensure_future(pool.run(second, queued_job))  # behind the blocker on the only thread
        await asyncio.sleep(0)
        queued.cancel()
        pool.release_slot(second)
        assert pool.busy == 2  # the queued job keeps its slot until it has run
        finish.set()
        await running
        pool.release_slot(first)
        for _ in range(100):
            if not pool.busy:
                break
            await asyncio.sleep(0.01)

        def broken() -> None:
            raise ValueError("bad image")

        slot = await pool.admit()
        with pytest.raises(ValueError, match="bad image"):
            await pool.run(slot, broken)
        pool.release_slot(slot)
        assert ran == ["queued"]
        assert pool.busy == 0
    finally:
        pool.close()
