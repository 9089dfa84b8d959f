"""A circuit breaker for a model: too many errors, or a p95 latency over budget, in a sliding
window → stop calling it (the caller falls back) until a cool-down has passed, then let one
trial call through; it closes again when that call is healthy.

Hand-written rather than a library (pybreaker, aiobreaker): those count consecutive failures
only, and this one must also trip on a latency percentile over a time window.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    window: float = 60.0  # seconds of calls the rates and the p95 are computed over
    min_calls: int = 20  # fewer calls in the window: no rate or percentile judgement yet
    max_error_rate: float = 0.2
    consecutive_errors: int = 5  # this many errors in a row open it whatever the window says
    latency_budget: float | None = None  # seconds: p95 over this opens it
    cooldown: float = 30.0  # seconds open before a trial call
    max_samples: int = 2000  # bound on the calls kept per window


class CircuitBreaker:
    """Thread-safe: models run in worker threads."""

    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self.state = CLOSED
        self.reason = ""
        self.opened_at = 0.0
        self._calls: deque[tuple[float, bool, float]] = deque(maxlen=policy.max_samples)
        self._streak = 0
        self._trial = False
        self._lock = threading.Lock()

    @property
    def retry_at(self) -> float | None:
        return self.opened_at + self.policy.cooldown if self.state != CLOSED else None

    def allow(self) -> bool:
        """May the model be called now? Open: no, until the cool-down ends; then one trial call."""
        with self._lock:
            if self.state == CLOSED:
                return True
            if self.state == OPEN and self.clock() >= self.opened_at + self.policy.cooldown:
                self.state = HALF_OPEN
                self._trial = False
            if self.state == HALF_OPEN and not self._trial:
                self._trial = True
                return True
            return False

    def record(self, ok: bool, latency: float) -> str | None:
        """Record one call; returns the new state when it changed (for the log and the gauge)."""
        policy = self.policy
        with self._lock:
            now = self.clock()
            if self.state == HALF_OPEN:
                budget = policy.latency_budget
                if ok and (budget is None or latency <= budget):
                    self.state, self.reason, self._streak = CLOSED, "", 0
                    self._calls.clear()
                    return CLOSED
                return self._open(now, "trial call failed" if not ok else f"trial call took {latency:.3f} s")
            if self.state == OPEN:
                return None  # a call let through before it opened
            self._calls.append((now, ok, latency))
            self._streak = 0 if ok else self._streak + 1
            while self._calls and self._calls[0][0] < now - policy.window:
                self._calls.popleft()
            if self._streak >= policy.consecutive_errors:
                return self._open(now, f"{self._streak} errors in a row")
            n = len(self._calls)
            if n < policy.min_calls:
                return None
            errors = sum(1 for _, good, _ in self._calls if not good)
            if errors / n > policy.max_error_rate:
                return self._open(now, f"error rate {errors / n:.0%} over {policy.max_error_rate:.0%}")
            if policy.latency_budget is not None:
                p95 = percentile([lat for _, _, lat in self._calls], 0.95)
                if p95 > policy.latency_budget:
                    return self._open(now, f"p95 latency {p95:.3f} s over budget {policy.latency_budget:.3f} s")
            return None

    def _open(self, now: float, reason: str) -> str:
        self.state, self.reason, self.opened_at = OPEN, reason, now
        self._calls.clear()
        self._streak = 0
        return OPEN


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (what a latency budget is usually stated in)."""
    ordered = sorted(values)
    rank = math.ceil(q * len(ordered) - 1e-9)  # 1-based; the epsilon absorbs 0.95 * n rounding up
    return ordered[min(len(ordered), max(1, rank)) - 1]
