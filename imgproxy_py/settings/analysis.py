"""Face detection, auto-quality, best format, the feature store and model monitoring."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from imgproxy_py.errors import SettingsError
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.settings.env import _Env


@dataclass(frozen=True, slots=True)
class AnalysisSettings:
    """Face detection, perceptual auto-quality and ``f:best`` (imgproxy Pro's names where it has them)."""

    face_detection: bool = True  # IMGPROXY_FACE_DETECTION: use the detector when it is installed
    face_threshold: float = 0.5  # IMGPROXY_FACE_DETECTION_THRESHOLD: minimum confidence, 0..1
    detection_size: int = 512  # IMGPROXY_FACE_DETECTION_SIZE: longest side of the copy the detector sees
    keep_faces_whole: bool = True  # IMGPROXY_KEEP_FACES_WHOLE: any gravity's crop moves to keep faces whole
    autoquality_method: str = "none"  # IMGPROXY_AUTOQUALITY_METHOD: none | dssim | ml
    autoquality_target: float = 0.0025  # IMGPROXY_AUTOQUALITY_TARGET: DSSIM (1/SSIM - 1), our metric's scale
    autoquality_min: int = 30
    autoquality_max: int = 90
    autoquality_allowed_error: float = 0.0003
    autoquality_format_min: Mapping[ImageFormat, int] = field(default_factory=dict)
    autoquality_format_max: Mapping[ImageFormat, int] = field(default_factory=dict)
    best_format_by_default: bool = False  # IMGPROXY_BEST_FORMAT_BY_DEFAULT: no format asked → best
    best_format_max_resolution: float = 0.0  # megapixels; above it the first candidate is taken without trying
    feature_store: bool = True  # IMGPROXY_FEATURE_STORE: keep per-source analysis in the cache tiers
    autoquality_dataset: str = ""  # IMGPROXY_AUTOQUALITY_DATASET: SQLite file or s3://bucket/prefix of rows ("": none)
    models_registry: str = ""  # IMGPROXY_MODELS_REGISTRY: registry folder or s3://bucket/prefix ("": the shipped model)
    models_poll: float = 5.0  # IMGPROXY_MODELS_POLL_INTERVAL: seconds between checks of the pointer file
    face_latency_budget: float = 0.5  # IMGPROXY_FACE_DETECTION_LATENCY_BUDGET: p95 seconds before the breaker opens
    model_cooldown: float = 30.0  # IMGPROXY_MODEL_BREAKER_COOLDOWN: seconds an open breaker waits before a trial
    model_min_calls: int = 20  # IMGPROXY_MODEL_BREAKER_MIN_CALLS: calls in the window before rates are judged
    # Drift (monitoring/drift.py): the offline evaluation's reference profile file ("": the shipped
    # one, "none": no drift gauges) and the sliding window PSI is computed over.
    model_reference_profile: str = ""  # IMGPROXY_MODEL_REFERENCE_PROFILE
    model_drift_window: int = 5000  # IMGPROXY_MODEL_DRIFT_WINDOW: values per feature in the window
    model_drift_min_values: int = 200  # IMGPROXY_MODEL_DRIFT_MIN_VALUES: values before a PSI is exported
    # A shadow face detector on a sampled share of misses, after the response (monitoring/face_shadow.py).
    face_shadow_sample: float = 0.0  # IMGPROXY_FACE_DETECTION_SHADOW_SAMPLE: share of misses, 0 = off
    face_shadow_size: int = 320  # IMGPROXY_FACE_DETECTION_SHADOW_SIZE: the shadow's input size (px)
    face_shadow_threshold: float = 0.5  # IMGPROXY_FACE_DETECTION_SHADOW_THRESHOLD: default: the serving one
    # A shadow aq:ml model version on a sampled share of aq:ml misses (monitoring/quality_shadow.py).
    aq_ml_shadow: str = ""  # IMGPROXY_AUTOQUALITY_ML_SHADOW: a registry version ("": off)
    aq_ml_shadow_sample: float = 0.05  # IMGPROXY_AUTOQUALITY_ML_SHADOW_SAMPLE: share of aq:ml misses

    @classmethod
    def from_env(cls, env: _Env) -> AnalysisSettings:
        method = env.get_str("IMGPROXY_AUTOQUALITY_METHOD", "none")
        if method not in ("none", "dssim", "ml"):
            raise SettingsError(
                f"IMGPROXY_AUTOQUALITY_METHOD: supported methods are none, dssim and ml, got {method!r}"
            )
        aq_min = env.get_int("IMGPROXY_AUTOQUALITY_MIN", 30, min_value=1, max_value=100)
        aq_max = env.get_int("IMGPROXY_AUTOQUALITY_MAX", 90, min_value=1, max_value=100)
        if aq_min > aq_max:
            raise SettingsError("IMGPROXY_AUTOQUALITY_MIN: must not be above IMGPROXY_AUTOQUALITY_MAX")
        threshold = env.get_float("IMGPROXY_FACE_DETECTION_THRESHOLD", 0.5, min_value=0.01, max_value=1)
        drift_window = env.get_int("IMGPROXY_MODEL_DRIFT_WINDOW", 5000, min_value=10, max_value=1_000_000)
        drift_min = env.get_int("IMGPROXY_MODEL_DRIFT_MIN_VALUES", 200, min_value=2, max_value=1_000_000)
        if drift_min > drift_window:
            raise SettingsError("IMGPROXY_MODEL_DRIFT_MIN_VALUES: must not be above IMGPROXY_MODEL_DRIFT_WINDOW")
        return cls(
            face_detection=env.get_bool("IMGPROXY_FACE_DETECTION", True),
            face_threshold=threshold,
            detection_size=env.get_int("IMGPROXY_FACE_DETECTION_SIZE", 512, min_value=64, max_value=1024),
            keep_faces_whole=env.get_bool("IMGPROXY_KEEP_FACES_WHOLE", True),
            autoquality_method=method,
            autoquality_target=env.get_float("IMGPROXY_AUTOQUALITY_TARGET", 0.0025, min_value=0.0001, max_value=0.9999),
            autoquality_min=aq_min,
            autoquality_max=aq_max,
            autoquality_allowed_error=env.get_float(
                "IMGPROXY_AUTOQUALITY_ALLOWED_ERROR", 0.0003, min_value=0, max_value=1
            ),
            autoquality_format_min=env.format_quality("IMGPROXY_AUTOQUALITY_FORMAT_MIN", {}),
            autoquality_format_max=env.format_quality("IMGPROXY_AUTOQUALITY_FORMAT_MAX", {}),
            best_format_by_default=env.get_bool("IMGPROXY_BEST_FORMAT_BY_DEFAULT", False),
            best_format_max_resolution=env.get_float("IMGPROXY_BEST_FORMAT_MAX_RESOLUTION", 0, min_value=0),
            feature_store=env.get_bool("IMGPROXY_FEATURE_STORE", True),
            autoquality_dataset=env.get_str("IMGPROXY_AUTOQUALITY_DATASET", ""),
            models_registry=env.get_str("IMGPROXY_MODELS_REGISTRY", ""),
            models_poll=env.get_float("IMGPROXY_MODELS_POLL_INTERVAL", 5.0, min_value=0.1, max_value=3600),
            face_latency_budget=env.get_float("IMGPROXY_FACE_DETECTION_LATENCY_BUDGET", 0.5, min_value=0.001),
            model_cooldown=env.get_float("IMGPROXY_MODEL_BREAKER_COOLDOWN", 30.0, min_value=0.1, max_value=86400),
            model_min_calls=env.get_int("IMGPROXY_MODEL_BREAKER_MIN_CALLS", 20, min_value=1, max_value=10000),
            model_reference_profile=env.get_str("IMGPROXY_MODEL_REFERENCE_PROFILE", ""),
            model_drift_window=drift_window,
            model_drift_min_values=drift_min,
            face_shadow_sample=env.get_float("IMGPROXY_FACE_DETECTION_SHADOW_SAMPLE", 0.0, min_value=0, max_value=1),
            face_shadow_size=env.get_int("IMGPROXY_FACE_DETECTION_SHADOW_SIZE", 320, min_value=64, max_value=1024),
            face_shadow_threshold=env.get_float(
                "IMGPROXY_FACE_DETECTION_SHADOW_THRESHOLD", threshold, min_value=0.01, max_value=1
            ),
            aq_ml_shadow=env.get_str("IMGPROXY_AUTOQUALITY_ML_SHADOW", "").strip(),
            aq_ml_shadow_sample=env.get_float("IMGPROXY_AUTOQUALITY_ML_SHADOW_SAMPLE", 0.05, min_value=0, max_value=1),
        )
