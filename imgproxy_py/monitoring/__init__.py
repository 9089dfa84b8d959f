"""Model monitoring: per-version latency, a circuit breaker with fallback, drift (PSI), shadow runs.

Generic over what a model is: the face detector and auto-quality (issue 12) wrap their calls in
a ModelMonitor from the app's ModelRegistry; nothing here knows about images.
"""

from imgproxy_py.monitoring.breaker import BreakerPolicy, CircuitBreaker
from imgproxy_py.monitoring.drift import DriftMonitor, FeatureProfile, ReferenceProfile, psi
from imgproxy_py.monitoring.metrics import ModelMetrics
from imgproxy_py.monitoring.monitor import ModelMonitor, ModelRegistry
from imgproxy_py.monitoring.shadow import ShadowRunner, box_iou

__all__ = [
    "BreakerPolicy",
    "CircuitBreaker",
    "DriftMonitor",
    "FeatureProfile",
    "ModelMetrics",
    "ModelMonitor",
    "ModelRegistry",
    "ReferenceProfile",
    "ShadowRunner",
    "box_iou",
    "psi",
]
