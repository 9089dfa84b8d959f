"""The input mix: what the server is asked to process (source format, megapixels, source bytes).

Observed once per processed request, a cache miss (a hit processes nothing and is never
counted): a counter bump and two histogram observations, and, with a reference profile, the
three drift features (``source_format`` categorical, ``megapixels`` and ``source_bytes``
binned) exported as ``model_drift_psi{model="inputs", version=<the profile's id>}``.
"""

from __future__ import annotations

from imgproxy_py.monitoring.drift import DriftMonitor, ReferenceProfile
from imgproxy_py.monitoring.metrics import ModelMetrics
from imgproxy_py.monitoring.reference import INPUTS_MODEL

FEATURES = ("source_format", "megapixels", "source_bytes")


class InputMix:
    def __init__(
        self,
        metrics: ModelMetrics | None,
        reference: ReferenceProfile | None = None,
        window: int = 5000,
        min_values: int = 200,
    ) -> None:
        self.metrics = metrics
        self.drift: DriftMonitor | None = None
        if reference is not None:
            gauge = metrics.drift if metrics is not None else None
            version = reference.version

            def export(feature: str, value: float) -> None:
                if gauge is not None:
                    gauge.labels(INPUTS_MODEL, version, feature).set(value)

            self.drift = DriftMonitor(reference, window=window, min_values=min_values, on_value=export)

    def observe(self, fmt: str, width: int, height: int, source_bytes: int) -> None:
        """One processed source; ``source_bytes`` 0 when unknown."""
        megapixels = width * height / 1e6
        metrics = self.metrics
        if metrics is not None:
            metrics.input_images.labels(fmt).inc()
            metrics.input_megapixels.observe(megapixels)
            if source_bytes:
                metrics.input_source_bytes.observe(source_bytes)
        drift = self.drift
        if drift is not None:
            drift.observe("source_format", fmt)
            drift.observe("megapixels", megapixels)
            if source_bytes:
                drift.observe("source_bytes", source_bytes)
