"""Shadow runs: a second model version on a sampled share of cache misses, after the response
has been sent, recording how far it agrees with the serving version; never what clients get.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

import anyio.to_thread

from imgproxy_py.monitoring.metrics import ModelMetrics

T = TypeVar("T")
Box = tuple[float, float, float, float]  # left, top, width, height
log = logging.getLogger("imgproxy_py.models")


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (also how much two crops overlap)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return min(1.0, inter / union) if union > 0 else 1.0  # rounding must not fall past the 1.0 bucket


def boxes_agreement(serving: list[Box], shadow: list[Box]) -> float:
    """Mean best-match IoU over the union of both sets of boxes (1.0 when both found none)."""
    if not serving and not shadow:
        return 1.0
    if not serving or not shadow:
        return 0.0
    matched = [max(box_iou(s, o) for o in shadow) for s in serving]
    matched += [max(box_iou(o, s) for s in serving) for o in shadow]
    return min(1.0, sum(matched) / len(matched))


def sampled(shadow: str, key: str, share: float) -> bool:
    """Whether ``key`` is in the stable ``share`` of keys ``shadow`` runs on (the same in every process)."""
    digest = hashlib.blake2b(f"shadow\x00{shadow}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / float(1 << 64) < share


class ShadowRunner(Generic[T]):
    """Runs ``shadow`` for a stable, sampled share of keys (the cache key or source URL), one at a
    time in a thread, and records ``compare(serving_result, shadow_result)`` as metrics."""

    def __init__(
        self,
        model: str,
        serving: str,
        shadow: str,
        sample: float,
        compare: Callable[[T, T], Mapping[str, float]],
        metrics: ModelMetrics | None = None,
        max_pending: int = 4,
    ) -> None:
        if not 0 <= sample <= 1:
            raise ValueError("the shadow sample is a share between 0 and 1")
        self.model, self.serving, self.shadow = model, serving, shadow
        self.sample = sample
        self.compare = compare
        self.metrics = metrics
        self.max_pending = max_pending
        self._limiter = anyio.CapacityLimiter(1)  # a shadow never takes more than one thread
        self._tasks: set[asyncio.Task[None]] = set()
        self.results: list[Mapping[str, float]] = []  # the last agreements (tests, debugging)

    def sampled(self, key: str) -> bool:
        return sampled(self.shadow, key, self.sample)

    def after_response(self, key: str, serving_result: T, run_shadow: Callable[[], T]) -> asyncio.Task[None] | None:
        """Schedule a shadow run (call this once the response is sent); None when not sampled or
        when ``max_pending`` runs are already queued (shadows are dropped, never queued without bound)."""
        if not self.sampled(key) or len(self._tasks) >= self.max_pending:
            return None
        task = asyncio.ensure_future(self._run(serving_result, run_shadow))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, serving_result: T, run_shadow: Callable[[], T]) -> None:
        try:
            result = await anyio.to_thread.run_sync(run_shadow, limiter=self._limiter)
            agreement = self.compare(serving_result, result)
        except Exception as exc:  # a shadow's failure is a metric, never an error of the request
            log.info("shadow %s/%s failed: %s: %s", self.model, self.shadow, type(exc).__name__, exc)
            self._count("error")
            return
        self._count("ok")
        self.results = [*self.results[-99:], agreement]
        if self.metrics is not None:
            for measure, value in agreement.items():
                self.metrics.shadow_agreement.labels(self.model, self.serving, self.shadow, measure).observe(value)

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.shadow_runs.labels(self.model, self.shadow, outcome).inc()

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
