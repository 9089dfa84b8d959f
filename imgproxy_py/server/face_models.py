"""Composition of the face detector with its model monitor: latency, breaker, outputs.

The detector is wrapped, not changed: ``MonitoredDetector.detect`` calls the real one through
the ``ModelMonitor`` of its version (``model_inference_seconds``, ``model_errors_total``, the
circuit breaker) and records faces found per image, whether any was found, and each face's
score (``model_output``). When the breaker is open or the detector raises, ``DetectorSkipped``
tells the pipeline to fall back to libvips' attention crop and keep nothing in the feature
store; a request never fails because the detector did.
"""

from __future__ import annotations

from imgproxy_py.analysis.detector import Detection, Detector, DetectorSkipped
from imgproxy_py.monitoring import BreakerPolicy, ModelMonitor, ModelRegistry
from imgproxy_py.settings import AnalysisSettings

MODEL_NAME = "faces"


class MonitoredDetector:
    """A ``Detector`` whose calls go through its version's monitor (one instance per process)."""

    def __init__(self, inner: Detector, monitor: ModelMonitor) -> None:
        self.inner = inner
        self.monitor = monitor
        self.name = inner.name
        self.version = inner.version

    def detect(self, width: int, height: int, rgb: bytes) -> list[Detection]:
        def skipped() -> list[Detection]:
            raise DetectorSkipped(self.monitor.name)

        found = self.monitor.call(lambda: self.inner.detect(width, height, rgb), skipped)
        monitor = self.monitor
        monitor.observe_output("faces_found", len(found))
        monitor.observe_output("has_faces", 1.0 if found else 0.0)
        for detection in found:
            monitor.observe_output("score", detection.score)
        return found


def monitored(detector: Detector | None, conf: AnalysisSettings, models: ModelRegistry) -> Detector | None:
    """``detector`` behind its monitor (None stays None: smart crop is attention-only anyway)."""
    if detector is None:
        return None
    policy = BreakerPolicy(
        latency_budget=conf.face_latency_budget, cooldown=conf.model_cooldown, min_calls=conf.model_min_calls
    )
    return MonitoredDetector(detector, models.monitor(MODEL_NAME, detector.version, policy))
