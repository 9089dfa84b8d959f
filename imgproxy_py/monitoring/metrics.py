"""The models' Prometheus metrics, on the server's registry (one set per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

_INFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_AGREEMENT_BUCKETS = (0.1, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
_QUALITY_DIFFERENCE_BUCKETS = (-20.0, -10.0, -5.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0)
_MEGAPIXEL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 16.0, 24.0, 50.0)
_SOURCE_BYTE_BUCKETS = tuple(float(2**k) for k in range(12, 27, 2))  # 4 KiB … 64 MiB


class ModelMetrics:
    def __init__(self, registry: CollectorRegistry, namespace: str = "") -> None:
        ns, reg = namespace, registry
        mv = ["model", "version"]
        self.inference = Histogram(
            "model_inference_seconds", "Model inference latency", mv, namespace=ns, registry=reg,
            buckets=_INFERENCE_BUCKETS,
        )  # fmt: skip
        self.errors = Counter("model_errors_total", "Model calls that raised", mv, namespace=ns, registry=reg)
        self.fallbacks = Counter(
            "model_fallbacks_total", "Requests served by the fallback instead of the model", [*mv, "reason"],
            namespace=ns, registry=reg,
        )  # fmt: skip
        self.circuit_open = Gauge(
            "model_circuit_open", "1 while the model's circuit breaker is open (not called)", mv,
            namespace=ns, registry=reg, multiprocess_mode="max",
        )  # fmt: skip
        self.outputs = Summary(
            "model_output", "Model outputs (faces found, scores, chosen quality): count and sum",
            [*mv, "output"], namespace=ns, registry=reg,
        )  # fmt: skip
        self.drift = Gauge(
            "model_drift_psi", "Population-stability index of a feature against the reference profile",
            [*mv, "feature"], namespace=ns, registry=reg, multiprocess_mode="max",
        )  # fmt: skip
        self.shadow_agreement = Histogram(
            "model_shadow_agreement", "Agreement of a shadow version with the serving one (1 = same)",
            ["model", "serving", "shadow", "measure"], namespace=ns, registry=reg, buckets=_AGREEMENT_BUCKETS,
        )  # fmt: skip
        self.shadow_quality_difference = Histogram(
            "model_shadow_quality_difference", "A shadow quality model's prediction minus the serving one's "
            "(measure=predicted), or its first encode's quality minus the served one (measure=served), in "
            "quality steps (signed: no _sum)",
            ["model", "serving", "shadow", "measure"], namespace=ns, registry=reg,
            buckets=_QUALITY_DIFFERENCE_BUCKETS,
        )  # fmt: skip
        self.shadow_runs = Counter(
            "model_shadow_runs_total", "Shadow runs by outcome (ok, error)", ["model", "shadow", "outcome"],
            namespace=ns, registry=reg,
        )  # fmt: skip
        # The input mix of processed requests (cache misses only: a hit processes nothing).
        self.input_images = Counter(
            "input_images_total", "Source images processed, by format", ["format"], namespace=ns, registry=reg
        )
        self.input_megapixels = Histogram(
            "input_megapixels", "Source image size (megapixels) of processed requests", namespace=ns,
            registry=reg, buckets=_MEGAPIXEL_BUCKETS,
        )  # fmt: skip
        self.input_source_bytes = Histogram(
            "input_source_bytes", "Source image bytes of processed requests", namespace=ns, registry=reg,
            buckets=_SOURCE_BYTE_BUCKETS,
        )  # fmt: skip
