"""The circuit breaker and ModelMonitor's fallback, on a fake clock (pure logic)."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from imgproxy_py.monitoring import BreakerPolicy, CircuitBreaker, ModelMetrics, ModelMonitor, ModelRegistry
from imgproxy_py.monitoring.breaker import CLOSED, HALF_OPEN, OPEN, percentile


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_percentile_is_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.5) == 50.0
    assert percentile([3.0], 0.95) == 3.0


def test_error_rate_opens_then_cooldown_trial_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerPolicy(min_calls=10, max_error_rate=0.2, consecutive_errors=99, cooldown=30), clock)
    for i in range(9):
        assert breaker.record(i % 3 != 0, 0.01) is None  # 3 errors in 9: too few calls to judge
    assert breaker.record(False, 0.01) == OPEN  # 4 of 10 > 20%
    assert "error rate 40%" in breaker.reason
    assert not breaker.allow()
    clock.now += 29
    assert not breaker.allow()
    clock.now += 2
    assert breaker.allow() and breaker.state == HALF_OPEN
    assert not breaker.allow()  # one trial at a time
    assert breaker.record(True, 0.01) == CLOSED
    assert breaker.allow()


def test_failed_trial_reopens_for_another_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerPolicy(consecutive_errors=2, cooldown=10), clock)
    breaker.record(False, 0.0)
    assert breaker.record(False, 0.0) == OPEN and breaker.reason == "2 errors in a row"
    clock.now += 11
    assert breaker.allow()
    assert breaker.record(False, 0.0) == OPEN
    assert breaker.retry_at == clock.now + 10 and not breaker.allow()


def test_p95_over_budget_opens_and_old_calls_leave_the_window() -> None:
    clock = Clock()
    policy = BreakerPolicy(window=60, min_calls=20, latency_budget=0.2, cooldown=5)
    breaker = CircuitBreaker(policy, clock)
    for _ in range(19):
        breaker.record(True, 0.05)
    # 1 slow call of 20: p95 is still fast
    assert breaker.record(True, 0.9) is None
    clock.now += 61  # all of those leave the window
    for _ in range(18):
        assert breaker.record(True, 0.05) is None
    assert breaker.record(True, 0.5) is None  # 19 calls in the window: not judged yet
    assert breaker.record(True, 0.5) == OPEN  # 2 of 20 slow: p95 = 0.5 s
    assert "p95 latency 0.500 s over budget 0.200 s" in breaker.reason
    clock.now += 6
    assert breaker.allow()
    assert breaker.record(True, 0.3) == OPEN  # the trial was healthy but over budget


def test_monitor_falls_back_counts_logs_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    registry = CollectorRegistry()
    models = ModelRegistry(ModelMetrics(registry))
    monitor = models.monitor("faces", "v2", BreakerPolicy(consecutive_errors=3, cooldown=30))
    monitor.clock = clock
    monitor.breaker.clock = clock
    broken = True

    def detect() -> str:
        if broken:
            raise RuntimeError("model exploded")
        return "faces"

    with caplog.at_level(logging.INFO, logger="imgproxy_py.models"):
        answers = [monitor.call(detect, lambda: "attention") for _ in range(5)]
    assert answers == ["attention"] * 5
    sample = registry.get_sample_value
    assert sample("model_errors_total", {"model": "faces", "version": "v2"}) == 3
    assert sample("model_fallbacks_total", {"model": "faces", "version": "v2", "reason": "error"}) == 3
    assert sample("model_fallbacks_total", {"model": "faces", "version": "v2", "reason": "circuit_open"}) == 2
    assert sample("model_circuit_open", {"model": "faces", "version": "v2"}) == 1
    assert any("circuit open: 3 errors in a row" in r.getMessage() for r in caplog.records)
    assert models.status_lines() == ["model faces/v2: open (3 errors in a row), fallback in use, retry in 30 s"]
    broken = False
    clock.now += 31
    assert monitor.call(detect, lambda: "attention") == "faces"
    assert sample("model_circuit_open", {"model": "faces", "version": "v2"}) == 0
    assert models.status_lines() == ["model faces/v2: ok"]
    assert sample("model_inference_seconds_count", {"model": "faces", "version": "v2"}) == 1


async def test_async_calls_and_a_raising_model_never_raise() -> None:
    monitor = ModelMonitor("quality", "v1", BreakerPolicy(consecutive_errors=1))

    async def bad() -> int:
        raise ValueError("nope")

    async def good() -> int:
        return 42

    assert await monitor.acall(bad, lambda: 80) == 80
    assert monitor.breaker.state == OPEN
    assert await monitor.acall(good, lambda: 80) == 80  # open: not called
