"""The report's statistics on known inputs (scipy's functions as the reference), and the log fields."""

from __future__ import annotations

import json
import math
import random

import pytest
from scipy import stats

from imgproxy_py.cache.status import CacheStatus
from imgproxy_py.experiments import report
from imgproxy_py.observability import AccessLog, RequestRecord


def _arm(values: list[float], requests: float | None = None, share: float | None = 50) -> report.ArmData:
    arm = report.ArmData(requests=len(values) if requests is None else requests, share=share)
    for value in values:
        arm.bytes.add(value)
    return arm


def test_interval_and_difference_agree_with_scipy() -> None:
    rng = random.Random(3)
    control = [rng.gauss(10_000, 1500) for _ in range(400)]
    treatment = [rng.gauss(9_000, 1500) for _ in range(380)]
    moments = _arm(control).bytes
    low, high = moments.interval()
    expected = stats.t.interval(0.95, len(control) - 1, loc=moments.mean, scale=stats.sem(control))
    assert (low, high) == pytest.approx(expected)
    diff = report.difference(_arm(treatment).bytes, moments)
    assert diff is not None
    welch = stats.ttest_ind(treatment, control, equal_var=False)
    assert diff.p_value == pytest.approx(welch.pvalue)
    assert diff.relative == pytest.approx(sum(treatment) / len(treatment) / (sum(control) / len(control)) - 1)
    assert diff.low < diff.relative < diff.high < 0


def test_verdicts_srm_not_enough_data_and_significance() -> None:
    rng = random.Random(4)
    same = {
        "control": _arm([rng.gauss(100, 10) for _ in range(200)]),
        "treatment": _arm([rng.gauss(100, 10) for _ in range(200)]),
    }
    srm = report.sample_ratio_mismatch(same)
    assert srm == pytest.approx(1.0)
    assert "no significant difference" in report.verdict(same, "control", srm)
    better = {
        "control": _arm([rng.gauss(100, 10) for _ in range(200)]),
        "treatment": _arm([rng.gauss(80, 10) for _ in range(200)]),
    }
    line = report.verdict(better, "control", report.sample_ratio_mismatch(better))
    assert line.startswith("vs control: treatment: bytes -2") and "%" in line
    skewed = {"control": _arm([100.0] * 200, requests=5600), "treatment": _arm([100.0] * 200, requests=4400)}
    p = report.sample_ratio_mismatch(skewed)
    assert p is not None and p < 1e-6
    assert report.verdict(skewed, "control", p).startswith("sample-ratio mismatch")
    few = {"control": _arm([1.0, 2.0]), "treatment": _arm([1.0, 2.0])}
    assert "not enough data" in report.verdict(few, "control", report.sample_ratio_mismatch(few))
    assert report.sample_ratio_mismatch({"a": _arm([1.0], share=None), "b": _arm([1.0])}) is None


def test_summary_of_metrics_text_with_a_namespace() -> None:
    text = "\n".join(
        f'ns_experiment_{name}{{experiment="q",arm="{arm}"}} {value}'
        for arm, values in (
            ("control", (100, 100, 2_000_000, 40_000_000_000)),
            ("treatment", (100, 100, 1_800_000, 33_000_000_000)),
        )
        for name, value in zip(
            ("requests_total", "results_total", "result_bytes_total", "result_bytes_squared_total"), values, strict=True
        )
    )
    (summary,) = report.summarise(report.from_metrics(text + "\n", "ns"))
    rows = {row["arm"]: row for row in summary["arms"]}
    assert rows["control"]["bytes"]["mean"] == 20_000
    assert rows["treatment"]["bytes"]["vs_control"]["relative"] == pytest.approx(-0.1)
    assert summary["srm_p_value"] is None  # no share exported: no SRM test
    assert math.isclose(rows["treatment"]["bytes"]["mean"], 18_000)


def test_access_log_lines_carry_the_arm() -> None:
    record = RequestRecord(
        "id1", "GET", "/-/q:80/plain/local:///a.jpg", status=200, cache=CacheStatus.HIT_L1, result_bytes=10
    )
    record.experiment = "quality=control"
    pretty = AccessLog("pretty")._format(record, 0.001, "", 20)
    assert pretty.rstrip().endswith("experiment=quality=control")
    line = json.loads(AccessLog("json")._format(record, 0.001, "", 20))
    assert line["experiment"] == "quality=control"
    data = report.from_access_log([json.dumps(line)], {("quality", "control"): 50, ("quality", "treatment"): 50})
    assert data["quality"]["control"].requests == 1 and data["quality"]["control"].cache_hits == 1
    assert data["quality"]["treatment"].requests == 0  # configured but unseen: still in the SRM test
