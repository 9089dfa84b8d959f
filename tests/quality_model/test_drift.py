"""The model's input drift: a mix unlike the training images (screenshots) raises the PSI gauge."""

from __future__ import annotations

import dataclasses

from prometheus_client import CollectorRegistry

from imgproxy_py.monitoring import ModelMetrics, ModelRegistry
from imgproxy_py.processing import Job, Processor, aqfeatures, vips
from imgproxy_py.quality_model.registry import ModelHandle
from imgproxy_py.quality_model.serving import MODEL_NAME, MlOutcome, QualityModelService
from imgproxy_py.server.quality_models import QualityModelTracker
from tests.processing.process_helpers import DEFAULT_CONFIG, fixture_bytes, options


def _screenshot(i: int) -> tuple[float, ...]:
    """Features of a synthetic screenshot: flat areas, a few grey levels, crisp text-like edges."""
    img = vips.Image.black(640 + i, 400).linear(1, 245).cast("uchar")
    for row in range(20, 380, 24):
        img = img.draw_rect([40], 30 + i % 7, row, 400, 6, fill=True)
    return aqfeatures.compute(img.bandjoin([img, img]).copy(interpretation="srgb"))


def _feed(tracker: QualityModelTracker, version: str, features: list[tuple[float, ...]]) -> None:
    tracker.observe(tuple(MlOutcome(version, 60, 60, 0.002, 1, f) for f in features))


def test_screenshots_raise_the_drift_gauge_photos_do_not() -> None:
    registry = CollectorRegistry()
    models = ModelRegistry(ModelMetrics(registry))
    service = QualityModelService(ModelHandle(None), lambda v: models.monitor(MODEL_NAME, v))
    version = service.version  # the shipped model, whose meta.json carries the training profile
    tracker = QualityModelTracker(service, models)
    screenshots = [_screenshot(i) for i in range(20)] * 15  # 300 predictions, over the 200 minimum
    _feed(tracker, version, screenshots)
    drifted = registry.get_sample_value(
        "model_drift_psi", {"model": MODEL_NAME, "version": version, "feature": "flat_share"}
    )
    assert drifted is not None and drifted > 0.25

    # Photos like the training set's, through the real pipeline: the gauge stays low.
    config = dataclasses.replace(DEFAULT_CONFIG, quality_model=service)
    photos = []
    for name in ("flowers.jpeg", "Landscape_1.jpg", "Portrait_1.jpg", "concert.jpg"):
        for width in (320, 640):
            result = Processor(config).process(Job(fixture_bytes(name), options(f"rs:fit:{width}:{width}/aq:ml/f:jpg")))
            photos.append(result.ml[0].features)
    fresh = ModelRegistry(ModelMetrics(CollectorRegistry()))
    tracker = QualityModelTracker(QualityModelService(ModelHandle(None)), fresh)
    _feed(tracker, version, photos * 40)
    monitor = fresh.monitor(MODEL_NAME, version)
    assert monitor.drift is not None
    calm = monitor.drift.value("flat_share")
    assert calm is not None and calm < drifted
