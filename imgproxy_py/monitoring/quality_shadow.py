"""A shadow version of the learned quality model (``aq:ml``) on a sampled share of aq:ml misses.

After a miss's response is sent, a second registry version (typically the candidate just
trained and not promoted) predicts from the very inputs the serving prediction used (the
features, output format, target and quality bounds the result's ``MlOutcome`` carries), and how
far the two agree is recorded under ``model="autoquality-ml"``, ``serving``, ``shadow``:

- ``model_shadow_agreement{measure="quality"}``: 1 − |shadow − serving| / 10 (1: the same
  quality, 0: ten or more steps apart), on the scale the shared alert reads (median below 0.5:
  more than five steps apart on most misses);
- ``model_shadow_quality_difference{measure="predicted"}``: shadow − serving prediction, and
  ``{measure="served"}``: the quality the shadow would have encoded first (its prediction plus
  the serving path's PREDICTION_MARGIN, within the bounds) − the quality served (after the
  correcting encode when one ran); signed, in quality steps: below 0 the shadow would likely
  have needed a correcting encode up, above it would have spent bytes the target did not
  need. Signed values need negative buckets, and Prometheus exposes no ``_sum`` for such a
  histogram: read it by quantiles, or the share below 0 as ``le="-1"`` over the count.

A prediction is pure Python over 120 depth-3 trees, about 0.1 ms (137 µs measured on the
shared 2-core dev machine), so it runs inline on the event loop after the response: in a
thread the same Python would hold the GIL all the same, plus a hand-off. What clients
receive never changes. Not shadowed: fallbacks to the search (no
serving prediction to compare) and outcomes of the shadow's own version (once promoted).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from imgproxy_py.monitoring.metrics import ModelMetrics
from imgproxy_py.monitoring.shadow import sampled
from imgproxy_py.processing.quality import PREDICTION_MARGIN
from imgproxy_py.quality_model.registry import Registry
from imgproxy_py.quality_model.serving import MODEL_NAME, MlOutcome, predict_quality
from imgproxy_py.quality_model.storage import StoreError
from imgproxy_py.quality_model.trees import ModelError, TreeModel
from imgproxy_py.s3conn import S3Target
from imgproxy_py.settings import AnalysisSettings

log = logging.getLogger("imgproxy_py.models")
AGREEMENT_SPAN = 10.0  # quality steps apart at which the agreement measure reaches 0


def agreement(shadow: int, outcome: MlOutcome) -> dict[str, float]:
    """The measures of one shadow prediction against the serving outcome (see module doc)."""
    first = min(max(shadow + PREDICTION_MARGIN, outcome.min_quality), outcome.max_quality)
    return {
        "quality": max(0.0, 1.0 - abs(shadow - outcome.predicted) / AGREEMENT_SPAN),
        "predicted": float(shadow - outcome.predicted),
        "served": float(first - outcome.quality),
    }


class QualityShadow:
    """``model`` predicting on a stable ``sample`` share of aq:ml encodes (see module doc)."""

    def __init__(self, model: TreeModel, sample: float, metrics: ModelMetrics | None) -> None:
        if not 0 <= sample <= 1:
            raise ValueError("the shadow sample is a share between 0 and 1")
        self.model = model
        self.version = model.version
        self.sample = sample
        self.metrics = metrics
        self.results: list[dict[str, float]] = []  # the last measures (tests, debugging)
        self._failed = False

    def observe(self, key: str, outcomes: Iterable[MlOutcome]) -> None:
        """Call once the response is sent: ``key`` names the variant (sampling), ``outcomes`` its encodes."""
        for outcome in outcomes:
            if outcome.predicted == 0 or not outcome.format or outcome.version == self.version:
                continue
            if not sampled(self.version, f"{key}\x00{outcome.format}", self.sample):
                continue
            try:
                prediction = predict_quality(
                    self.model,
                    outcome.features,
                    outcome.format,
                    outcome.target,
                    outcome.min_quality,
                    outcome.max_quality,
                )
            except Exception as exc:  # a shadow's failure is a metric, never an error of the request
                if not self._failed:  # once: the same inputs fail the same way on every miss
                    log.warning("aq:ml shadow %s failed: %s: %s", self.version, type(exc).__name__, exc)
                    self._failed = True
                self._count("error")
                continue
            self._record(outcome.version, agreement(prediction.quality, outcome))

    def _record(self, serving: str, measures: dict[str, float]) -> None:
        self._count("ok")
        self.results = [*self.results[-99:], measures]
        if self.metrics is None:
            return
        labels = (MODEL_NAME, serving, self.version)
        self.metrics.shadow_agreement.labels(*labels, "quality").observe(measures["quality"])
        for measure in ("predicted", "served"):
            self.metrics.shadow_quality_difference.labels(*labels, measure).observe(measures[measure])

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.shadow_runs.labels(MODEL_NAME, self.version, outcome).inc()


def quality_shadow(
    conf: AnalysisSettings, metrics: ModelMetrics | None, s3: S3Target | None = None
) -> tuple[QualityShadow | None, str]:
    """The shadow version IMGPROXY_AUTOQUALITY_ML_SHADOW names, loaded once from the registry at
    start-up, and a status line (start-up log, /health). A version that cannot be loaded is
    logged once and leaves the shadow off; it never stops start-up or fails a request."""
    version = conf.aq_ml_shadow
    if not version or conf.aq_ml_shadow_sample <= 0:
        return None, "off"
    if not conf.models_registry:
        status = f"off: {version} needs IMGPROXY_MODELS_REGISTRY"
    elif metrics is None:
        status = "off: nothing would read it without IMGPROXY_PROMETHEUS_BIND"
    else:
        try:
            model = Registry(conf.models_registry, s3).load(version)
        except (ModelError, StoreError, ValueError) as exc:
            status = f"off: version {version} is not usable ({exc})"
        else:
            shadow = QualityShadow(model, conf.aq_ml_shadow_sample, metrics)
            status = f"{shadow.version} on {shadow.sample:.0%} of aq:ml misses"
            log.info("aq:ml shadow: %s", status)
            return shadow, status
    log.warning("aq:ml shadow %s", status)
    return None, status
