"""Per experiment arm: the quality auto-quality chose and the score it achieved.

Histograms labelled ``experiment`` and ``arm`` (``experiment_chosen_quality``,
``experiment_achieved_dssim``), observed on misses where a search or ``aq:ml`` ran. Only the
configured arms are labels (the set is fixed at start-up), so the cardinality is bounded by
the experiments file, never by requests. ``imgproxy-py experiments report`` shows their means.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Histogram

from imgproxy_py.processing import ProcessResult

_QUALITY_BUCKETS = (20, 30, 40, 50, 60, 65, 70, 75, 80, 85, 90, 95, 100)
_DSSIM_BUCKETS = (0.0005, 0.001, 0.0015, 0.002, 0.0025, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.02)


class ArmQuality:
    def __init__(self, registry: CollectorRegistry, arms: Iterable[tuple[str, str]], namespace: str = "") -> None:
        labels = ["experiment", "arm"]
        self.chosen = Histogram(
            "experiment_chosen_quality", "Quality auto-quality chose, by experiment arm", labels,
            namespace=namespace, registry=registry, buckets=_QUALITY_BUCKETS,
        )  # fmt: skip
        self.achieved = Histogram(
            "experiment_achieved_dssim", "DSSIM auto-quality achieved (0 = identical), by experiment arm", labels,
            namespace=namespace, registry=registry, buckets=_DSSIM_BUCKETS,
        )  # fmt: skip
        self._children = {
            f"{name}={arm}": (self.chosen.labels(name, arm), self.achieved.labels(name, arm)) for name, arm in arms
        }

    def observe(self, label: str, result: ProcessResult) -> None:
        """``label``: the request's ``name=arm``; an unknown one is ignored (bounded labels)."""
        children = self._children.get(label)
        if children is None:
            return
        chosen, achieved = children
        for _fmt, quality, dssim in result.searched:
            chosen.observe(quality)
            achieved.observe(dssim)
        for outcome in result.ml:
            if outcome.predicted == 0:  # fell back to the search: counted in ``searched``
                continue
            chosen.observe(outcome.quality)
            if outcome.dssim is not None:
                achieved.observe(outcome.dssim)
