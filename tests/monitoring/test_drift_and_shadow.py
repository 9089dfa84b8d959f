"""PSI, reference profiles, the sliding window, and shadow runs."""

from __future__ import annotations

import asyncio
import math
import random

import pytest
from prometheus_client import CollectorRegistry

from imgproxy_py.monitoring import (
    FeatureProfile,
    ModelMetrics,
    ModelMonitor,
    ReferenceProfile,
    ShadowRunner,
    box_iou,
    psi,
)
from imgproxy_py.monitoring.shadow import boxes_agreement


def test_psi_matches_the_formula() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0
    expected = (0.7 - 0.5) * math.log(0.7 / 0.5) + (0.3 - 0.5) * math.log(0.3 / 0.5)
    assert psi([0.5, 0.5], [70, 30]) == pytest.approx(expected)  # counts are normalised
    assert psi([0.5, 0.5], [1, 0]) > 4  # an empty bin stays finite
    with pytest.raises(ValueError):
        psi([1.0], [1.0, 2.0])


def test_profile_from_sample_round_trips_and_bins() -> None:
    rng = random.Random(1)
    sample = [rng.gauss(0.6, 0.1) for _ in range(5000)]
    profile = FeatureProfile.from_sample(sample, bins=10)
    assert len(profile.shares) == 10 and all(abs(s - 0.1) < 0.01 for s in profile.shares)
    reference = ReferenceProfile("faces", "v1", {"score": profile})
    assert ReferenceProfile.from_json(reference.to_json()) == reference
    with pytest.raises(ValueError, match="not a reference profile"):
        ReferenceProfile.from_json('{"model": "x"}')
    formats, index = FeatureProfile.categorical({"jpeg": 0.7, "png": 0.2, "webp": 0.1})
    assert [formats.bin_of(index[n]) for n in ("jpeg", "png", "webp")] == [0, 1, 2]


def test_drift_gauge_stays_low_for_the_same_distribution_and_rises_on_a_shift() -> None:
    rng = random.Random(2)
    reference = ReferenceProfile(
        "faces", "v1", {"score": FeatureProfile.from_sample([rng.gauss(0.6, 0.1) for _ in range(5000)])}
    )
    registry = CollectorRegistry()
    monitor = ModelMonitor("faces", "v1", metrics=ModelMetrics(registry))
    drift = monitor.watch_drift(reference, window=1000, min_values=500)
    for _ in range(499):
        monitor.observe_output("score", rng.gauss(0.6, 0.1))
    assert drift.value("score") is None  # not enough values yet
    for _ in range(1001):
        monitor.observe_output("score", rng.gauss(0.6, 0.1))
    labels = {"model": "faces", "version": "v1", "feature": "score"}
    stable = registry.get_sample_value("model_drift_psi", labels)
    assert stable is not None and stable < 0.1
    for _ in range(1000):  # the window slides onto shifted values
        monitor.observe_output("score", rng.gauss(0.8, 0.1))
    shifted = registry.get_sample_value("model_drift_psi", labels)
    assert shifted is not None and shifted > 0.25
    assert (
        registry.get_sample_value("model_output_count", {"model": "faces", "version": "v1", "output": "score"}) == 2500
    )
    monitor.observe_output("unprofiled", 1.0)  # no reference for it: counted, no drift


def test_box_iou_and_agreement() -> None:
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0
    assert boxes_agreement([], []) == 1 and boxes_agreement([(0, 0, 1, 1)], []) == 0
    assert boxes_agreement([(0, 0, 10, 10)], [(0, 0, 10, 10)]) == 1


async def test_shadow_runs_on_a_stable_sample_after_the_fact_and_never_raises() -> None:
    registry = CollectorRegistry()
    runner: ShadowRunner[list[tuple[float, float, float, float]]] = ShadowRunner(
        "faces", "v1", "v2", sample=0.25,
        compare=lambda a, b: {"iou": boxes_agreement(a, b)}, metrics=ModelMetrics(registry), max_pending=1000,
    )  # fmt: skip
    keys = [f"s3://bucket/{i}.jpg" for i in range(2000)]
    sampled = [k for k in keys if runner.sampled(k)]
    assert 0.22 < len(sampled) / len(keys) < 0.28
    assert sampled == [k for k in keys if runner.sampled(k)]  # stable
    tasks = [runner.after_response(k, [(0, 0, 10, 10)], lambda: [(5, 0, 10, 10)]) for k in sampled[:20]]
    assert runner.after_response(next(k for k in keys if k not in sampled), [], list) is None

    def broken() -> list[tuple[float, float, float, float]]:
        raise RuntimeError("shadow crashed")

    tasks.append(runner.after_response(sampled[20], [], broken))
    await asyncio.gather(*(t for t in tasks if t is not None))
    labels = {"model": "faces", "serving": "v1", "shadow": "v2", "measure": "iou"}
    assert registry.get_sample_value("model_shadow_agreement_count", labels) == 20
    assert registry.get_sample_value("model_shadow_agreement_sum", labels) == pytest.approx(20 * 50 / 150)
    assert (
        registry.get_sample_value("model_shadow_runs_total", {"model": "faces", "shadow": "v2", "outcome": "error"})
        == 1
    )
    await runner.aclose()


async def test_shadow_queue_is_bounded() -> None:
    runner: ShadowRunner[int] = ShadowRunner(
        "q", "v1", "v2", sample=1.0, compare=lambda a, b: {"diff": abs(a - b)}, max_pending=2
    )

    def slow() -> int:
        return 1

    first = runner.after_response("a", 1, slow)
    second = runner.after_response("b", 1, slow)
    assert first is not None and second is not None
    assert runner.after_response("c", 1, slow) is None  # two pending: dropped, not queued
    await asyncio.gather(first, second)
    await runner.aclose()
