"""Cancellation that reaches into libvips: a per-transform token read from a context variable.

The server sets a token for each transform; the worker thread inherits it (WorkerPool.run
copies the context). An evaluation registers how to kill itself with the token, and is
killed (libvips' kill flag, checked between tiles) when every client waiting for the result
has gone (the event loop calls ``cancel``) or its deadline passes (one watchdog thread for
the whole process, as imgproxy does from a goroutine). Nothing runs per tile: a progress
callback into Python would cost a GIL round trip for every tile of every image.
Checking only between pipeline steps would miss the one step that takes the time: the save.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from imgproxy_py.errors import ClientClosedError, ImgproxyError, RequestTimeoutError

Kill = Callable[[], None]


@dataclass(slots=True, eq=False)
class CancelToken:
    deadline: float = math.inf  # time.monotonic() value
    cancelled: bool = False  # set from the event loop; read from worker threads (a plain bool is enough)
    _kills: list[Kill] = field(default_factory=list)
    _stopped: bool = False
    _scheduled: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def should_stop(self) -> bool:
        return self.cancelled or time.monotonic() > self.deadline

    def error(self) -> ImgproxyError:
        if self.cancelled:
            return ClientClosedError("every client waiting for this image went away")
        return RequestTimeoutError("processing deadline exceeded")

    def cancel(self) -> None:
        """Nobody waits for the result any more: kill what is being evaluated for it."""
        self.cancelled = True
        self.stop()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            kills = list(self._kills)
        for kill in kills:
            kill()

    @contextmanager
    def watching(self, kill: Kill) -> Iterator[None]:
        """Call ``kill`` if this token is stopped (or its deadline passes) while the block runs."""
        with self._lock:
            stopped = self._stopped
            if not stopped:
                self._kills.append(kill)
            schedule = not self._scheduled and math.isfinite(self.deadline)
            self._scheduled = self._scheduled or schedule
        if schedule:
            _WATCHDOG.add(self)
        if stopped:
            kill()
        try:
            yield
        finally:
            with self._lock:
                if kill in self._kills:
                    self._kills.remove(kill)


class _Watchdog:
    """One daemon thread that stops tokens whose deadline has passed.

    It is woken only when a token's deadline is earlier than every one it waits for (rare:
    deadlines are arrival + the same timeout), and then stops every token due within
    ``_LATE`` of the first: waking it for every request (a ``notify`` per cold miss) cost
    a futex wake while holding the GIL, and often the core, on every request.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, CancelToken]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, token: CancelToken) -> None:
        with self._cond:
            earliest = not self._heap or token.deadline < self._heap[0][0]
            heapq.heappush(self._heap, (token.deadline, next(self._order), token))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="imgproxy-deadlines", daemon=True)
                self._thread.start()
            elif earliest:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = []
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
                if not due:
                    # a deadline is kept to within _LATE; the tokens due meanwhile go in one wake-up
                    self._cond.wait(self._heap[0][0] - now + _LATE if self._heap else None)
                    continue
            for token in due:
                token.stop()


_LATE = 0.02  # seconds a deadline may be enforced late, so one wake-up serves every token due in it


_WATCHDOG = _Watchdog()

current_token: ContextVar[CancelToken | None] = ContextVar("imgproxy_cancel_token", default=None)
