"""``aq:ml`` at request time: a prediction behind the model monitor's circuit breaker.

Processing calls ``predict`` in the worker thread; ``None`` means "fall back to the DSSIM
search" (no model, a corrupt artefact, an open breaker, a failing prediction). The monitor is
whatever the server composes (monitoring.ModelMonitor per model version): anything with
``call(fn, fallback)``, so this package does not depend on the server's layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from imgproxy_py.quality_model.inputs import model_inputs
from imgproxy_py.quality_model.registry import ModelHandle
from imgproxy_py.quality_model.trees import ModelError, TreeModel

MODEL_NAME = "autoquality-ml"
T = TypeVar("T")


class Monitor(Protocol):
    def call(self, fn: Callable[[], T], fallback: Callable[[], T]) -> T: ...


@dataclass(frozen=True, slots=True)
class Prediction:
    quality: int
    raw: float
    version: str


@dataclass(frozen=True, slots=True)
class MlOutcome:
    """What one ``aq:ml`` encode did, for per-version metrics (server) and evaluation."""

    version: str
    predicted: int  # 0: fell back to the search
    quality: int  # served
    dssim: float | None
    encodes: int
    features: tuple[float, ...] = ()
    # The rest of what the prediction saw, so a shadow version can predict from the same inputs.
    format: str = ""
    target: float = 0.0
    min_quality: int = 0
    max_quality: int = 0


def predict_quality(
    model: TreeModel, features: Sequence[float], fmt: str, target: float, lo: int, hi: int
) -> Prediction:
    raw = model.predict(model_inputs(list(features), fmt, target))
    if not math.isfinite(raw):
        raise ModelError("prediction is not finite")
    return Prediction(min(max(round(raw), lo), hi), raw, model.version)


class QualityModelService:
    def __init__(self, handle: ModelHandle, monitor_for: Callable[[str], Monitor] | None = None) -> None:
        self.handle = handle
        self.monitor_for = monitor_for

    @property
    def version(self) -> str:
        """The serving version (part of the result cache key of ``aq:ml`` results)."""
        try:
            return self.handle.get().version
        except ModelError:
            return f"broken:{self.handle.version}"

    def predict(self, features: Sequence[float], fmt: str, target: float, lo: int, hi: int) -> Prediction | None:
        try:
            model: TreeModel | None = self.handle.get()
        except ModelError:
            model = None

        def run() -> Prediction | None:
            if model is None:
                raise ModelError("no usable model")
            return predict_quality(model, features, fmt, target, lo, hi)

        if self.monitor_for is None:
            try:
                return run()
            except ModelError:
                return None
        return self.monitor_for(self.handle.version).call(run, lambda: None)
