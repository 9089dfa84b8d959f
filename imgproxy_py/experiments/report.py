"""``imgproxy-py experiments report``: per experiment and arm, means with 95% confidence intervals,
the relative difference to control, a sample-ratio-mismatch test and a one-line verdict.

Input is what the server exports: its Prometheus metrics (count, sum and sum of squares per
arm, and each arm's configured share) or its JSON access log (one line per request with
``experiment``). The statistics are scipy's (Student/Welch t intervals, chi-square test).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from scipy import stats

SRM_ALPHA = 0.001  # the usual threshold for a sample-ratio mismatch: only a real bug trips it
ALPHA = 0.05
MIN_SAMPLES = 30  # below this per arm, no verdict (the t intervals are too wide to say anything)


@dataclass(slots=True)
class Moments:
    """Count, sum and sum of squares: enough for a mean and its variance."""

    n: float = 0.0
    total: float = 0.0
    squares: float = 0.0

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value
        self.squares += value * value

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        if self.n < 2:
            return math.nan
        return max(0.0, (self.squares - self.total * self.total / self.n) / (self.n - 1))

    def interval(self) -> tuple[float, float]:
        """The mean's 95% confidence interval (Student t)."""
        if self.n < 2:
            return (math.nan, math.nan)
        half = float(stats.t.ppf(1 - ALPHA / 2, self.n - 1)) * math.sqrt(self.variance / self.n)
        return (self.mean - half, self.mean + half)


@dataclass(slots=True)
class ArmData:
    requests: float = 0.0
    errors: float = 0.0
    cache_hits: float = 0.0
    share: float | None = None  # configured percent
    bytes: Moments = field(default_factory=Moments)
    processing: Moments = field(default_factory=Moments)
    # Where auto-quality ran (histograms: count and sum, so a mean without an interval).
    chosen_quality: Moments = field(default_factory=Moments)
    achieved_dssim: Moments = field(default_factory=Moments)


Data = dict[str, dict[str, ArmData]]  # experiment → arm → data


@dataclass(frozen=True, slots=True)
class Difference:
    relative: float  # (arm − control) / control
    low: float
    high: float
    p_value: float


def difference(arm: Moments, control: Moments) -> Difference | None:
    """Welch's t interval for the difference of means, relative to the control's mean."""
    if arm.n < 2 or control.n < 2 or not control.mean:
        return None
    va, vc = arm.variance / arm.n, control.variance / control.n
    se = math.sqrt(va + vc)
    diff = arm.mean - control.mean
    if se == 0:
        return Difference(diff / control.mean, diff / control.mean, diff / control.mean, 0.0 if diff else 1.0)
    df = (va + vc) ** 2 / ((va * va / (arm.n - 1) if va else 0) + (vc * vc / (control.n - 1) if vc else 0))
    half = float(stats.t.ppf(1 - ALPHA / 2, df)) * se
    p = float(2 * stats.t.sf(abs(diff) / se, df))
    base = control.mean
    return Difference(diff / base, (diff - half) / base, (diff + half) / base, p)


def sample_ratio_mismatch(arms: Mapping[str, ArmData]) -> float | None:
    """The chi-square goodness-of-fit p-value of the observed requests against the configured shares."""
    if any(a.share is None for a in arms.values()) or len(arms) < 2:
        return None
    observed = [a.requests for a in arms.values()]
    total = sum(observed)
    shares = [float(a.share or 0) for a in arms.values()]
    if total == 0 or sum(shares) == 0:
        return None
    expected = [total * s / sum(shares) for s in shares]
    return float(stats.chisquare(observed, expected).pvalue)


# --- inputs ---------------------------------------------------------------------------------


_METRIC_FIELDS = {
    "experiment_requests_total": "requests",
    "experiment_errors_total": "errors",
    "experiment_cache_hits_total": "cache_hits",
    "experiment_arm_share": "share",
    "experiment_results_total": "bytes.n",
    "experiment_result_bytes_total": "bytes.total",
    "experiment_result_bytes_squared_total": "bytes.squares",
    "experiment_processed_total": "processing.n",
    "experiment_processing_seconds_total": "processing.total",
    "experiment_processing_seconds_squared_total": "processing.squares",
    "experiment_chosen_quality_count": "chosen_quality.n",
    "experiment_chosen_quality_sum": "chosen_quality.total",
    "experiment_achieved_dssim_count": "achieved_dssim.n",
    "experiment_achieved_dssim_sum": "achieved_dssim.total",
}


def from_metrics(text: str, namespace: str = "") -> Data:
    """The server's Prometheus exposition text (``/metrics``)."""
    from prometheus_client.parser import text_string_to_metric_families

    prefix = f"{namespace}_" if namespace else ""
    data: Data = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name.removeprefix(prefix)
            labels = sample.labels
            if "experiment" not in labels or "arm" not in labels or not name.startswith("experiment_"):
                continue
            arm = data.setdefault(labels["experiment"], {}).setdefault(labels["arm"], ArmData())
            value = sample.value
            where = _METRIC_FIELDS.get(name)
            if where is None:
                continue
            target, _, attr = where.partition(".")
            setattr(getattr(arm, target) if attr else arm, attr or target, value)
    return data


def from_access_log(lines: Iterable[str], shares: Mapping[tuple[str, str], float] | None = None) -> Data:
    """The server's JSON access log (IMGPROXY_LOG_FORMAT=json); other lines are skipped."""
    data: Data = {}
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            record: dict[str, Any] = json.loads(line)
        except ValueError:
            continue
        label = record.get("experiment")
        if record.get("msg") != "request" or not isinstance(label, str) or "=" not in label:
            continue
        name, _, arm_name = label.partition("=")
        arm = data.setdefault(name, {}).setdefault(arm_name, ArmData())
        arm.requests += 1
        if record.get("error") and record.get("status") != 499:
            arm.errors += 1
        if str(record.get("cache", "")).startswith("HIT-L"):
            arm.cache_hits += 1
        if record.get("result_bytes"):
            arm.bytes.add(float(record["result_bytes"]))
        processing = (record.get("spans_ms") or {}).get("processing_image")
        if processing is not None:
            arm.processing.add(float(processing) / 1000)
    for (name, arm_name), share in (shares or {}).items():
        if name in data:
            data[name].setdefault(arm_name, ArmData()).share = share
    return data


# --- the report -----------------------------------------------------------------------------


def control_of(arms: Mapping[str, ArmData]) -> str:
    """The arm named ``control``, else the first one."""
    return "control" if "control" in arms else next(iter(arms))


def summarise(data: Data) -> list[dict[str, Any]]:
    """Everything the report prints, as plain data (``--json``)."""
    out = []
    for name, arms in sorted(data.items()):
        control = control_of(arms)
        rows = []
        for arm_name, arm in arms.items():
            row: dict[str, Any] = {
                "arm": arm_name,
                "share": arm.share,
                "requests": arm.requests,
                "errors": arm.errors,
                "cache_hits": arm.cache_hits,
            }
            for metric, moments in (("bytes", arm.bytes), ("processing_seconds", arm.processing)):
                low, high = moments.interval()
                row[metric] = {"n": moments.n, "mean": _num(moments.mean), "ci95": [_num(low), _num(high)]}
                other = getattr(arms[control], "bytes" if metric == "bytes" else "processing")
                diff = difference(moments, other) if arm_name != control else None
                if diff is not None:
                    row[metric]["vs_control"] = {
                        "relative": _num(diff.relative),
                        "ci95": [_num(diff.low), _num(diff.high)],
                        "p_value": _num(diff.p_value),
                    }
            for metric, moments in (("chosen_quality", arm.chosen_quality), ("achieved_dssim", arm.achieved_dssim)):
                row[metric] = {"n": moments.n, "mean": _num(moments.mean)}
            rows.append(row)
        srm = sample_ratio_mismatch(arms)
        out.append(
            {
                "experiment": name,
                "control": control,
                "arms": rows,
                "srm_p_value": srm,
                "verdict": verdict(arms, control, srm),
            }
        )
    return out


def verdict(arms: Mapping[str, ArmData], control: str, srm: float | None) -> str:
    if srm is not None and srm < SRM_ALPHA:
        return f"sample-ratio mismatch (p={srm:.2g}): the split is not as configured, do not trust the differences"
    if any(a.bytes.n < MIN_SAMPLES for a in arms.values()):
        return f"not enough data yet (fewer than {MIN_SAMPLES} responses with bytes in an arm)"
    parts = []
    for name, arm in arms.items():
        if name == control:
            continue
        findings = []
        for label, moments, base in (
            ("bytes", arm.bytes, arms[control].bytes),
            ("processing time", arm.processing, arms[control].processing),
        ):
            diff = difference(moments, base)
            if diff is not None and diff.p_value < ALPHA:
                findings.append(f"{label} {diff.relative:+.1%}")
        parts.append(f"{name}: " + (", ".join(findings) if findings else "no significant difference"))
    return f"vs {control}: " + "; ".join(parts)


def write_text(summary: list[dict[str, Any]], out: TextIO) -> None:
    if not summary:
        out.write("no experiment data found\n")
        return
    for exp in summary:
        srm = exp["srm_p_value"]
        out.write(f"experiment {exp['experiment']} (control: {exp['control']})\n")
        out.write(
            f"  {'arm':<14}{'share':>7}{'requests':>10}{'errors':>8}{'hits':>8}"
            f"  {'mean bytes [95% CI]':<28}{'vs control':<26}{'mean processing ms [95% CI]':<30}{'vs control'}\n"
        )
        for row in exp["arms"]:
            share = "-" if row["share"] is None else f"{row['share']:g}%"
            b, p = row["bytes"], row["processing_seconds"]
            out.write(
                f"  {row['arm']:<14}{share:>7}{row['requests']:>10.0f}{row['errors']:>8.0f}{row['cache_hits']:>8.0f}"
                f"  {_ci(b, 1):<28}{_vs(b):<26}{_ci(p, 1000):<30}{_vs(p)}\n"
            )
        quality = [row for row in exp["arms"] if row["chosen_quality"]["n"]]
        if quality:
            out.write("  auto-quality (where it ran): " + "; ".join(_aq(row) for row in exp["arms"]) + "\n")
        out.write(f"  sample-ratio mismatch: {'n/a' if srm is None else f'chi-square p={srm:.3g}'}\n")
        out.write(f"  verdict: {exp['verdict']}\n")


def _aq(row: dict[str, Any]) -> str:
    chosen, achieved = row["chosen_quality"], row["achieved_dssim"]
    if not chosen["n"]:
        return f"{row['arm']} -"
    text = f"{row['arm']} mean quality {chosen['mean']:.1f} (n={chosen['n']:.0f})"
    if achieved["n"]:
        text += f", mean DSSIM {achieved['mean']:.5f}"
    return text


def _ci(metric: dict[str, Any], scale: float) -> str:
    mean, (low, high) = metric["mean"], metric["ci95"]
    if mean is None:
        return "-"
    if low is None:
        return f"{mean * scale:.1f}"
    return f"{mean * scale:.1f} [{low * scale:.1f}, {high * scale:.1f}]"


def _vs(metric: dict[str, Any]) -> str:
    diff = metric.get("vs_control")
    if not diff or diff["relative"] is None:
        return "-"
    low, high = diff["ci95"]
    return f"{diff['relative']:+.1%} [{low:+.1%}, {high:+.1%}]"


def _num(value: float) -> float | None:
    return None if math.isnan(value) else value
