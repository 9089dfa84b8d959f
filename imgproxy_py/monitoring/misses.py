"""One hook per processed request (a cache miss): the input mix, per-arm quality, the shadows.

The server calls ``MissMonitor.observe`` where a miss's result is produced; everything it
does runs after that request's response has been sent (``observability.after_response``),
on the event loop and cheaply (the shadow detector's detection runs in its own thread, the
shadow quality model's microsecond prediction inline). Cache hits never reach it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from imgproxy_py.analysis.detector import Detector
from imgproxy_py.analysis.registry import default_registry
from imgproxy_py.errors import SettingsError
from imgproxy_py.monitoring.arm_quality import ArmQuality
from imgproxy_py.monitoring.face_shadow import FaceShadow
from imgproxy_py.monitoring.inputs import InputMix
from imgproxy_py.monitoring.metrics import ModelMetrics
from imgproxy_py.monitoring.monitor import ModelRegistry
from imgproxy_py.monitoring.quality_shadow import QualityShadow
from imgproxy_py.monitoring.reference import ProfileSet
from imgproxy_py.observability import Metrics, after_response, current_record
from imgproxy_py.processing import ProcessResult
from imgproxy_py.settings import AnalysisSettings

log = logging.getLogger("imgproxy_py.models")


class MissMonitor:
    def __init__(
        self,
        inputs: InputMix | None = None,
        arms: ArmQuality | None = None,
        faces: FaceShadow | None = None,
        quality: QualityShadow | None = None,
    ) -> None:
        self.inputs = inputs
        self.arms = arms
        self.faces = faces
        self.quality = quality

    def observe(self, experiment: str, source_url: str, result: ProcessResult, source: object) -> None:
        """A processed request: ``experiment`` its ``name=arm`` (or ""), ``source`` the source's
        bytes (anything else, e.g. a streamed input: no shadow run, size from the request record)."""
        if self.inputs is None and self.arms is None and self.faces is None and self.quality is None:
            return  # nothing is monitored (no metrics listener): no closure, no after-response hook
        data = source if isinstance(source, bytes) else None
        record = current_record.get()

        def later() -> None:
            if self.inputs is not None:
                size = len(data) if data is not None else (record.source_bytes if record is not None else 0)
                self.inputs.observe(result.source_format.value, result.source_width, result.source_height, size)
            if self.arms is not None and experiment and (result.searched or result.ml):
                self.arms.observe(experiment, result)
            if self.faces is not None and data is not None and result.faces is not None:
                self.faces.submit(source_url, data, result.faces)
            if self.quality is not None and result.ml:  # sampled per variant: source and output size
                self.quality.observe(f"{source_url}\x00{result.width}x{result.height}", result.ml)

        after_response(later)

    async def aclose(self) -> None:
        if self.faces is not None:
            await self.faces.runner.aclose()


def model_registry(conf: AnalysisSettings, metrics: Metrics | None, namespace: str = "") -> ModelRegistry:
    """The app's model monitors, with the reference profile IMGPROXY_MODEL_REFERENCE_PROFILE names
    (a file that cannot be read stops start-up, naming the problem)."""
    references = None
    if conf.model_reference_profile.lower() != "none":
        try:
            references = ProfileSet.load(conf.model_reference_profile)
        except ValueError as exc:
            raise SettingsError(f"IMGPROXY_MODEL_REFERENCE_PROFILE: {exc}") from None
    return ModelRegistry(
        ModelMetrics(metrics.registry, namespace) if metrics is not None else None,
        references,
        conf.model_drift_window,
        conf.model_drift_min_values,
    )


def miss_monitor(
    conf: AnalysisSettings,
    models: ModelRegistry,
    metrics: Metrics | None,
    detector: Detector | None,
    arms: Iterable[tuple[str, str]] = (),
    namespace: str = "",
    quality: QualityShadow | None = None,
) -> tuple[MissMonitor, str]:
    """The miss hook for this app, and the shadow detector's status line (start-up log, /health)."""
    reference = models.references.inputs() if models.references is not None else None
    inputs = None
    if models.metrics is not None:  # nothing could read the input mix without the metrics listener
        inputs = InputMix(models.metrics, reference, conf.model_drift_window, conf.model_drift_min_values)
    arm_list = list(arms)
    arm_quality = ArmQuality(metrics.registry, arm_list, namespace) if metrics is not None and arm_list else None
    shadow, status = face_shadow(detector, conf, models)
    return MissMonitor(inputs, arm_quality, shadow, quality), status


def face_shadow(
    serving: Detector | None, conf: AnalysisSettings, models: ModelRegistry
) -> tuple[FaceShadow | None, str]:
    """The shadow detector the settings ask for (IMGPROXY_FACE_DETECTION_SHADOW_*), and a status line."""
    if conf.face_shadow_sample <= 0:
        return None, "off"
    if serving is None:
        return None, "off: no serving detector"
    shadow = default_registry(conf.face_shadow_threshold).get("face")
    if shadow is None:
        return None, "off: the detector is not installed"
    runner = FaceShadow(shadow, serving.version, conf.face_shadow_size, conf.face_shadow_sample, models.metrics)
    return runner, f"{runner.version} on {conf.face_shadow_sample:.0%} of misses"
