"""Coalesce concurrent work for the same key inside one process: one runs, the rest wait."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Flight(Generic[T]):
    future: asyncio.Future[T]  # the outcome, for its record (``_abandoned_under``)
    task: asyncio.Task[None] | None = None
    waiting: list[asyncio.Future[T]] = field(default_factory=list)  # one per caller still waiting

    @property
    def waiters(self) -> int:
        return len(self.waiting)

    def settle(self) -> None:
        """Hand the outcome to every caller still waiting (each has a future of its own, so a caller
        cancelled alone cancels only its own: the work's future is never awaited directly)."""
        future = self.future
        for waiter in self.waiting:
            if waiter.done():
                continue
            if not future.done() or future.cancelled():  # cancelled, or ended by a BaseException
                waiter.cancel()
            elif (exc := future.exception()) is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(future.result())


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._inflight: dict[str, _Flight[T]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._inflight)

    def in_flight(self, key: str) -> bool:
        return key in self._inflight

    async def do(self, key: str, fn: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Run ``fn`` unless a call for ``key`` is in flight; returns (result, shared).

        The outcome, result or exception, goes to every waiter. The work runs in its own
        task: one caller going away (a client disconnect) cancels nobody else's result,
        but once every caller has gone the work is cancelled too, so no orphaned transform
        keeps burning CPU.
        """
        for attempt in range(2):
            flight = self._inflight.get(key)
            shared = flight is not None
            if flight is None:
                loop = asyncio.get_running_loop()
                flight = _Flight(loop.create_future())
                self._inflight[key] = flight
                flight.task = loop.create_task(self._lead(key, fn, flight))
                self._tasks.add(flight.task)
                flight.task.add_done_callback(self._tasks.discard)
            waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            flight.waiting.append(waiter)
            try:
                return await waiter, shared
            except asyncio.CancelledError:
                if _abandoned_under(flight) and attempt == 0:
                    # Not our cancellation: the flight's last other waiter left and cancelled it
                    # just as we joined. Lead a fresh one rather than fail a live client (a 500).
                    continue
                if flight.waiters == 1 and flight.task is not None and not flight.task.done():
                    # Every waiter has gone: stop the work, and let the next caller start afresh
                    # instead of joining a flight that is being torn down.
                    if self._inflight.get(key) is flight:
                        del self._inflight[key]
                    flight.task.cancel()
                raise
            finally:
                flight.waiting.remove(waiter)
        raise asyncio.CancelledError  # pragma: no cover - the second attempt returns or raises above

    async def _lead(self, key: str, fn: Callable[[], Awaitable[T]], flight: _Flight[T]) -> None:
        future = flight.future
        try:
            result = await fn()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: a flight nobody waits for any more must not warn
        else:
            future.set_result(result)
        finally:
            flight.settle()
            current = self._inflight.get(key)
            if current is not None and current.future is future:  # a newer flight for the key stays
                del self._inflight[key]

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _abandoned_under(flight: _Flight[T]) -> bool:
    """The flight was cancelled by its last leaving waiter while the calling task itself is not being cancelled."""
    task = asyncio.current_task()
    return flight.future.cancelled() and task is not None and task.cancelling() == 0
