"""Admission control and the thread pool that runs libvips work off the event loop.

``slot()`` admits at most ``workers`` requests into download+processing at once and
lets at most ``queue_size`` more wait (then TooManyRequestsError), as imgproxy's
workers semaphore does. ``run()`` executes a blocking function on a dedicated,
long-lived thread pool (libvips keeps per-thread state; never anyio's shared pool).

A slot is released only when the thread work started under it has finished, so a
cancelled request cannot push more transforms onto the CPU than the limit.
"""

from __future__ import annotations

import asyncio
import contextvars
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


class Admission:
    """One request's admission to a worker slot: a class, not an ``@asynccontextmanager``
    generator, as every cold miss enters one (the generator costs the event loop more)."""

    __slots__ = ("_pool", "_slot")

    def __init__(self, pool: WorkerPool) -> None:
        self._pool = pool
        self._slot: Slot | None = None

    async def __aenter__(self) -> Slot:
        self._slot = await self._pool._admit()
        return self._slot

    async def __aexit__(self, *exc: object) -> None:
        if self._slot is not None:
            self._pool._leave(self._slot)


class WorkerPool:
    def __init__(self, workers: int, queue_size: int = 0, threads: int | None = None) -> None:
        self.workers = workers
        self.queue_size = queue_size
        self._semaphore = asyncio.Semaphore(workers)
        self._waiting = 0
        self._busy = 0
        self._executor = ThreadPoolExecutor(max_workers=threads or workers, thread_name_prefix="imgproxy-vips")

    @property
    def busy(self) -> int:
        return self._busy

    @property
    def waiting(self) -> int:
        return self._waiting

    def slot(self) -> Admission:
        """``async with pool.slot() as slot``: admitted (or TooManyRequestsError), released on exit."""
        return Admission(self)

    async def _admit(self) -> Slot:
        if self._semaphore.locked() and self.queue_size and self._waiting >= self.queue_size:
            raise TooManyRequestsError("request queue is full")
        self._waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self._waiting -= 1
        self._busy += 1
        return Slot()

    def _leave(self, slot: Slot) -> None:
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
        future = loop.run_in_executor(self._executor, context.run, fn, *args)
        slot.pending = future
        # If the caller is cancelled, nobody awaits the outcome: consume it here, or the
        # future logs "exception was never retrieved" from a finaliser at a random moment.
        future.add_done_callback(_consume)
        return await asyncio.shield(future)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
