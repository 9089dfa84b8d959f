"""Admission control and the thread pool that runs libvips work off the event loop.

``admit()`` admits at most ``workers`` requests into download+processing at once and
lets at most ``queue_size`` more wait (then TooManyRequestsError), as imgproxy's
workers semaphore does. ``run()`` executes a blocking function on a dedicated,
long-lived thread pool (libvips keeps per-thread state; never anyio's shared pool).

The pool is a plain job queue and threads that hand the outcome back with one
``call_soon_threadsafe``: ``run_in_executor`` wraps a concurrent.futures Future in an
asyncio one (and the shield in a third), which costs the event loop three callbacks and
a lock per job — measurable on a cold miss, where the loop's Python competes with the
libvips threads for two cores (benchmarks/RESULTS.md).

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
import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from imgproxy_py.errors import TooManyRequestsError

T = TypeVar("T")


class Slot:
    """One admitted request; tracks thread work still running when the request ends."""

    __slots__ = ("running", "released")

    def __init__(self) -> None:
        self.running = 0  # jobs queued or running on a thread for this slot
        self.released = False  # the request has given the slot back: free it when ``running`` is 0


class _Job:
    __slots__ = ("loop", "future", "context", "fn", "args", "slot")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        slot: Slot,
    ) -> None:
        self.loop = loop
        self.future = future
        # The thread runs in a copy of the caller's context, so it sees the cancel token.
        self.context = contextvars.copy_context()
        self.fn = fn
        self.args = args
        self.slot = slot


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
        self._max_threads = threads or workers
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []  # started one per job until there are enough

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
        if slot.released:
            return
        slot.released = True
        if not slot.running:  # else freed by the last job's hand-back (_finished)
            self._release()

    def _release(self) -> None:
        self._busy -= 1
        self._semaphore.release()

    async def run(self, slot: Slot, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the pool; a cancelled caller leaves the work to finish in the slot
        (even one not started yet: a job may own resources only it closes, e.g. a streamed input)."""
        assert not slot.released, "a job under a slot already given back"
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if len(self._threads) < self._max_threads:
            self._start_thread()
        slot.running += 1
        self._jobs.put(_Job(loop, future, fn, args, slot))
        return await future  # cancelling the caller cancels ``future``, never the job

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._serve, name=f"imgproxy-vips_{len(self._threads)}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        """One worker thread: take a job, run it, hand the outcome back to the job's loop."""
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            ok, value = True, None
            try:
                value = job.context.run(job.fn, *job.args)
            except BaseException as exc:  # handed to the caller, as an executor does
                ok, value = False, exc
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is left to tell
                job.loop.call_soon_threadsafe(self._finished, job, ok, value)
            del job, value  # not kept alive by this frame while it waits for the next job

    def _finished(self, job: _Job, ok: bool, value: Any) -> None:
        """On the loop: the job's outcome to its caller (if it still waits), its slot freed if it was let go."""
        slot = job.slot
        slot.running -= 1
        if slot.released and not slot.running:
            self._release()
        future = job.future
        if future.done():  # the caller was cancelled: nobody reads the outcome
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def close(self) -> None:
        """Stop the threads once the queued jobs have run (at shutdown, when no request is left)."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        self._threads.clear()
