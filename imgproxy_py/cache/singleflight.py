"""Coalesce concurrent work for the same key inside one process: one runs, the rest wait."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Flight(Generic[T]):
    future: asyncio.Future[T]
    task: asyncio.Task[None] | None = None
    waiters: int = 0


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._inflight: dict[str, _Flight[T]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._inflight)

    async def do(self, key: str, fn: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Run ``fn`` unless a call for ``key`` is in flight; returns (result, shared).

        The outcome, result or exception, goes to every waiter. The work runs in its own
        task: one caller going away (a client disconnect) cancels nobody else's result,
        but once every caller has gone the work is cancelled too, so no orphaned transform
        keeps burning CPU.
        """
        flight = self._inflight.get(key)
        shared = flight is not None
        if flight is None:
            loop = asyncio.get_running_loop()
            flight = _Flight(loop.create_future())
            self._inflight[key] = flight
            flight.task = loop.create_task(self._lead(key, fn, flight.future))
            self._tasks.add(flight.task)
            flight.task.add_done_callback(self._tasks.discard)
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.future), shared
        except asyncio.CancelledError:
            if flight.waiters == 1 and flight.task is not None and not flight.task.done():
                flight.task.cancel()
            raise
        finally:
            flight.waiters -= 1

    async def _lead(self, key: str, fn: Callable[[], Awaitable[T]], future: asyncio.Future[T]) -> None:
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
            self._inflight.pop(key, None)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
