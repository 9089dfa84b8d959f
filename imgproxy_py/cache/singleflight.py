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
                flight.task = loop.create_task(self._lead(key, fn, flight.future))
                self._tasks.add(flight.task)
                flight.task.add_done_callback(self._tasks.discard)
            flight.waiters += 1
            try:
                return await asyncio.shield(flight.future), shared
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
                flight.waiters -= 1
        raise asyncio.CancelledError  # pragma: no cover - the second attempt returns or raises above

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
