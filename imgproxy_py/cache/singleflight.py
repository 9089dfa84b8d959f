"""Coalesce concurrent work for the same key inside one process: one runs, the rest wait."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[T]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._inflight)

    async def do(self, key: str, fn: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Run ``fn`` unless a call for ``key`` is in flight; returns (result, shared).

        The leader's outcome, result or exception, goes to every waiter. The work runs
        in its own task, so a caller going away (client disconnect) cancels nobody
        else's result.
        """
        future = self._inflight.get(key)
        if future is not None:
            return await asyncio.shield(future), True
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._inflight[key] = future
        task = loop.create_task(self._lead(key, fn, future))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(future), False

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
