"""Admission control and the thread pool that runs libvips work off the event loop.

``admit()`` admits at most ``workers`` requests into download+processing at once and
lets at most ``queue_size`` more wait (then TooManyRequestsError), as imgproxy's
workers semaphore does. ``run()`` executes a blocking function on a dedicated,
long-lived thread pool (libvips keeps per-thread state; never anyio's shared pool).

``arrive()`` makes the same decision when a request arrives, before its first await: a
request that may need a worker is counted from then on, and while every worker is busy
the requests waiting for one plus those still looking in the caches may not exceed the
queue. So the excess of a spike is refused in microseconds, not after cache lookups and
lock round trips whose latency grows with the load (measured by ``benchmarks.cluster``).

A slot is released only when the thread work started under it has finished, so a
cancelled request cannot push more transforms onto the CPU than the limit.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from imgproxy_py.errors import TooManyRequestsError

T = TypeVar("T")


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class Slot:
    """One admitted request; tracks thread work still running when the request ends."""

    def __init__(self) -> None:
        self.pending: asyncio.Future[Any] | None = None


class Arrival:
    """A request counted by ``WorkerPool.arrive()`` until it queues for a slot or ends."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.counted = True

    def leave(self) -> None:
        if self.counted:
            self.counted = False
            self.pool._arriving -= 1


_arrival: contextvars.ContextVar[Arrival | None] = contextvars.ContextVar("imgproxy_arrival", default=None)


class WorkerPool:
    def __init__(self, workers: int, queue_size: int = 0, threads: int | None = None) -> None:
        self.workers = workers
        self.queue_size = queue_size
        self._semaphore = asyncio.Semaphore(workers)
        self._waiting = 0
        self._arriving = 0  # arrived (counted by arrive()) and not yet queued in admit() or gone
        self._busy = 0
        self._executor = ThreadPoolExecutor(max_workers=threads or workers, thread_name_prefix="imgproxy-vips")

    @property
    def busy(self) -> int:
        return self._busy

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def arriving(self) -> int:
        return self._arriving

    def arrive(self) -> Arrival:
        """Count a request that may need a slot, or raise TooManyRequestsError if the queue is
        already taken (by waiting requests and by arrivals still looking in the caches).

        The caller ``leave()``s when its request ends; ``admit()`` stops counting it as an
        arrival once it queues (it is found through a context variable, so the flight task
        that takes the slot on the request's behalf needs no extra argument).
        """
        if self._semaphore.locked() and self.queue_size and self._waiting + self._arriving >= self.queue_size:
            raise TooManyRequestsError("request queue is full")
        arrival = Arrival(self)
        self._arriving += 1
        _arrival.set(arrival)
        return arrival

    async def admit(self) -> Slot:
        """A slot (waiting in the queue for it), or TooManyRequestsError; give it back with ``release_slot``."""
        arrival = _arrival.get()
        if arrival is not None and arrival.pool is self:
            arrival.leave()  # from now on counted as waiting
        if self._semaphore.locked() and self.queue_size and self._waiting >= self.queue_size:
            raise TooManyRequestsError("request queue is full")
        self._waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self._waiting -= 1
        self._busy += 1
        return Slot()

    def release_slot(self, slot: Slot) -> None:
        if slot.pending is not None and not slot.pending.done():
            slot.pending.add_done_callback(lambda _: self._release())
        else:
            self._release()

    def _release(self) -> None:
        self._busy -= 1
        self._semaphore.release()

    async def run(self, slot: Slot, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the pool; a cancelled caller leaves the work to finish in the slot."""
        loop = asyncio.get_running_loop()
        # The thread runs in a copy of the caller's context, so it sees the cancel token.
        context = contextvars.copy_context()
        future = loop.run_in_executor(self._executor, functools.partial(context.run, fn, *args))
        slot.pending = future
        # If the caller is cancelled, nobody awaits the outcome: consume it here, or the
        # future logs "exception was never retrieved" from a finaliser at a random moment.
        future.add_done_callback(_consume)
        return await asyncio.shield(future)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
