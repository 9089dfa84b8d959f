"""Composition of ``aq:ml`` in the server: the model handle, its monitors, metrics and drift.

One ModelMonitor per model version (the breaker: a version that fails or cannot load falls
back to the DSSIM search and, after repeated failures, is skipped until its cool-down ends).
Per version: predicted vs served quality, achieved DSSIM and encodes (model_outputs), fallbacks
(model_fallbacks_total) and the PSI drift of the model's input features against the training
set's profile in the artefact's metadata (model_feature_drift).
"""

from __future__ import annotations

import logging

from imgproxy_py.monitoring import ModelMonitor, ModelRegistry, ReferenceProfile
from imgproxy_py.processing.quality import METRIC_VERSION
from imgproxy_py.quality_model.inputs import FEATURE_NAMES
from imgproxy_py.quality_model.registry import ModelHandle
from imgproxy_py.quality_model.serving import MODEL_NAME, MlOutcome, QualityModelService
from imgproxy_py.s3conn import S3Target
from imgproxy_py.settings import Settings

log = logging.getLogger("imgproxy_py.quality_model")
SEARCH_NAME = "autoquality-dssim"  # the DSSIM search: no model, but its choices are watched the same way


def build_quality_model(settings: Settings, models: ModelRegistry) -> QualityModelService:
    handle = ModelHandle(
        settings.analysis.models_registry or None,
        poll=settings.analysis.models_poll,
        s3=S3Target.from_settings(settings.s3),  # used when the registry is s3://bucket/prefix
    )
    handle.preload()  # at start-up, not on the first request (on S3: a network call)
    return QualityModelService(handle, lambda version: models.monitor(MODEL_NAME, version))


class QualityModelTracker:
    def __init__(self, service: QualityModelService | None, models: ModelRegistry) -> None:
        self.service = service
        self.models = models
        self._watched: set[str] = set()

    def cache_version(self) -> str:
        """The serving version, for the result cache key of aq:ml results."""
        return self.service.version if self.service is not None else "none"

    def observe(self, outcomes: tuple[MlOutcome, ...], searched: tuple[tuple[str, int, float], ...] = ()) -> None:
        """aq:ml's outcomes per version, and the DSSIM searches' chosen quality and achieved score
        (``aq:dssim``, and aq:ml's fallback) under the model ``autoquality-dssim``, version = the metric's."""
        for fmt, quality, dssim in searched:
            monitor = self.models.monitor(SEARCH_NAME, METRIC_VERSION)
            monitor.observe_output(f"chosen_quality_{fmt}", quality)
            monitor.observe_output("achieved_dssim", dssim)
        for outcome in outcomes:
            if outcome.predicted == 0:  # fell back to the search: counted by the monitor
                continue
            monitor = self.models.monitor(MODEL_NAME, outcome.version)
            self._watch(monitor)
            monitor.observe_output("predicted_quality", outcome.predicted)
            monitor.observe_output("served_quality", outcome.quality)
            monitor.observe_output("encodes", outcome.encodes)
            if outcome.dssim is not None:
                monitor.observe_output("achieved_dssim", outcome.dssim)
            if monitor.drift is not None and outcome.features:
                monitor.drift.observe_many(zip(FEATURE_NAMES, outcome.features, strict=False))

    def _watch(self, monitor: ModelMonitor) -> None:
        if monitor.version in self._watched or self.service is None:
            return
        self._watched.add(monitor.version)
        self.service.version  # noqa: B018 - loads the serving version (and its metadata) if not yet
        meta = self.service.handle.meta
        if meta.get("version") != monitor.version or not meta.get("feature_profile"):
            return
        try:
            monitor.watch_drift(ReferenceProfile.from_json(str(meta["feature_profile"])))
        except ValueError as exc:
            log.warning("no drift reference for %s (%s)", monitor.name, exc)
