"""ModelMonitor: call a model version through its circuit breaker, time it, fall back on failure.

A request never fails because a model did: an exception, or an open breaker, returns the
fallback's answer (attention crop, fixed quality) and is counted, logged and shown in /health.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from imgproxy_py.monitoring.breaker import CLOSED, OPEN, BreakerPolicy, CircuitBreaker
from imgproxy_py.monitoring.drift import DriftMonitor, ReferenceProfile
from imgproxy_py.monitoring.metrics import ModelMetrics
from imgproxy_py.monitoring.reference import ProfileSet

T = TypeVar("T")
log = logging.getLogger("imgproxy_py.models")


class ModelMonitor:
    def __init__(
        self,
        model: str,
        version: str,
        policy: BreakerPolicy | None = None,
        metrics: ModelMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.version = version
        self.metrics = metrics
        self.clock = clock
        self.breaker = CircuitBreaker(policy or BreakerPolicy(), clock)
        self.drift: DriftMonitor | None = None
        if metrics is not None:
            self._latency = metrics.inference.labels(model, version)
            self._errors = metrics.errors.labels(model, version)
            self._open = metrics.circuit_open.labels(model, version)
            self._open.set(0)

    @property
    def name(self) -> str:
        return f"{self.model}/{self.version}"

    def call(self, fn: Callable[[], T], fallback: Callable[[], T]) -> T:
        """``fn()``, or ``fallback()`` when the breaker is open or ``fn`` raises (never raises itself
        unless the fallback does)."""
        if not self.breaker.allow():
            self._fell_back("circuit_open")
            return fallback()
        started = self.clock()
        try:
            result = fn()
        except Exception as exc:
            self._failed(self.clock() - started, exc)
            return fallback()
        self._succeeded(self.clock() - started)
        return result

    async def acall(self, fn: Callable[[], Awaitable[T]], fallback: Callable[[], T]) -> T:
        """``call`` for a coroutine function."""
        if not self.breaker.allow():
            self._fell_back("circuit_open")
            return fallback()
        started = self.clock()
        try:
            result = await fn()
        except Exception as exc:
            self._failed(self.clock() - started, exc)
            return fallback()
        self._succeeded(self.clock() - started)
        return result

    def observe_output(self, output: str, value: float) -> None:
        """A model output (faces found, a score, the chosen quality): its mean and, with a
        reference profile, its drift."""
        if self.metrics is not None:
            self.metrics.outputs.labels(self.model, self.version, output).observe(value)
        if self.drift is not None:
            self.drift.observe(output, value)

    def watch_drift(
        self, reference: ReferenceProfile, window: int | None = None, min_values: int | None = None
    ) -> DriftMonitor:
        """Compare this version's outputs and inputs against ``reference`` over a sliding window
        (added to the features already watched, in the same window: the evaluation's outputs,
        the training inputs). Default window: 5000 values, a PSI from 200 on."""
        gauge = self.metrics.drift if self.metrics is not None else None
        if self.drift is not None:
            reference = self.drift.reference.merged(reference)
            window = window or self.drift.window
            min_values = min_values or self.drift.min_values
        window, min_values = window or 5000, min_values or 200

        def export(feature: str, value: float) -> None:
            if gauge is not None:
                gauge.labels(self.model, self.version, feature).set(value)

        self.drift = DriftMonitor(reference, window=window, min_values=min_values, on_value=export)
        return self.drift

    def status(self) -> str:
        """One line for /health's detail."""
        breaker = self.breaker
        if breaker.state == CLOSED:
            return f"model {self.name}: ok"
        retry_at = breaker.retry_at or 0.0
        wait = max(0.0, retry_at - self.clock())
        return f"model {self.name}: {breaker.state} ({breaker.reason}), fallback in use, retry in {wait:.0f} s"

    def _succeeded(self, latency: float) -> None:
        if self.metrics is not None:
            self._latency.observe(latency)
        if self.drift is not None:
            self.drift.observe("inference_seconds", latency)
        self._changed(self.breaker.record(True, latency))

    def _failed(self, latency: float, exc: Exception) -> None:
        if self.metrics is not None:
            self._errors.inc()
        log.warning("model %s failed (%s: %s); using the fallback", self.name, type(exc).__name__, exc)
        self._fell_back("error")
        self._changed(self.breaker.record(False, latency))

    def _fell_back(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.fallbacks.labels(self.model, self.version, reason).inc()

    def _changed(self, state: str | None) -> None:
        if state is None:
            return
        if self.metrics is not None:
            self._open.set(1 if state == OPEN else 0)
        if state == OPEN:
            log.warning(
                "model %s circuit open: %s; falling back, retrying in %.0f s",
                self.name,
                self.breaker.reason,
                self.breaker.policy.cooldown,
            )
        else:
            log.info("model %s circuit closed: calls resumed", self.name)


class ModelRegistry:
    """The app's model monitors (one per model version), for /health and the metrics.

    With ``references`` (the offline evaluation's profile file), a version the file profiles
    has its drift watched from its first call; one it does not is logged once.
    """

    def __init__(
        self,
        metrics: ModelMetrics | None = None,
        references: ProfileSet | None = None,
        drift_window: int = 5000,
        drift_min_values: int = 200,
    ) -> None:
        self.metrics = metrics
        self.references = references
        self.drift_window = drift_window
        self.drift_min_values = drift_min_values
        self.monitors: dict[str, ModelMonitor] = {}

    def monitor(self, model: str, version: str, policy: BreakerPolicy | None = None) -> ModelMonitor:
        key = f"{model}/{version}"
        found = self.monitors.get(key)
        if found is None:
            found = self.monitors[key] = ModelMonitor(model, version, policy, self.metrics)
            reference = self.references.get(model, version) if self.references is not None else None
            if reference is not None:
                found.watch_drift(reference, self.drift_window, self.drift_min_values)
            elif self.references is not None:
                log.info("no reference profile for model %s (%s): no drift gauge", key, self.references.id)
        return found

    def status_lines(self) -> list[str]:
        return [m.status() for m in self.monitors.values()]
