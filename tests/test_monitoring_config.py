"""config/: the Prometheus alert rules and the Grafana dashboard, checked by the tools they are
written for (promtool; a CLI, it starts no Prometheus server) and against the metrics the server exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from imgproxy_py.monitoring import ModelMetrics
from imgproxy_py.monitoring.arm_quality import ArmQuality
from imgproxy_py.observability import Metrics
from tests.support import REPO, missing_prerequisite

ALERTS = REPO / "config" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "config" / "grafana" / "imgproxy-py.json"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        missing_prerequisite("promtool is not installed (apt-get install prometheus)")
    return path


def exported_names() -> set[str]:
    """Every sample name the server can export: its metrics and the models' (default namespace)."""
    registry = CollectorRegistry()
    metrics = Metrics(registry=registry)
    ModelMetrics(metrics.registry)
    ArmQuality(metrics.registry, [("quality", "control")])
    names = set()
    for family in registry.collect():
        for suffix in _SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label matchers, grouping and functions removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        if following.startswith("(") or match.group() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


def _dashboard_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def test_metric_name_extraction() -> None:
    expr = 'sum by (le) (rate(request_duration_seconds_bucket{span="queue"}[5m])) / ignoring(arm) group_left x_total'
    assert metric_names(expr) == {"request_duration_seconds_bucket", "x_total"}


def test_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    promtool = _promtool()
    check = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 10 rules found" in check.stdout
    tests = subprocess.run(
        [promtool, "test", "rules", "alerts.test.yml"], cwd=ALERTS.parent, capture_output=True, text=True, timeout=60
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr


def test_alert_rules_cover_what_the_issue_names_and_use_exported_metrics() -> None:
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    names = {rule["alert"] for rule in rules}
    assert {"ImgproxyModelDrift", "ImgproxyModelDegraded", "ImgproxyHighErrorRate", "ImgproxyHighLatency"} <= names
    assert {"ImgproxyQueueRejections", "ImgproxyInputMixDrift", "ImgproxyShadowDisagrees"} <= names
    exported = exported_names()
    for rule in rules:
        assert metric_names(rule["expr"]) <= exported, rule["alert"]


def test_dashboard_structure_and_every_query_uses_exported_metrics() -> None:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    rows = [panel["title"] for panel in panels if panel["type"] == "row"]
    assert rows == ["Requests", "Cache tiers", "Workers", "Models", "Experiments"]
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        if panel["type"] != "row":
            assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"])
    exported = exported_names()
    used: set[str] = set()
    for title, expr in _dashboard_exprs():
        names = metric_names(expr)
        assert names and names <= exported, (title, names - exported)
        used |= names
    # every family of the server's metrics appears on the dashboard (a new metric needs a panel),
    # except the sums of squares, which only `imgproxy-py experiments report` reads (for variances)
    families = {re.sub(r"_(?:total|bucket|count|sum)$", "", name) for name in exported if "_squared" not in name}
    assert families <= {re.sub(r"_(?:total|bucket|count|sum)$", "", name) for name in used}


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query as a recording rule (Grafana's variables replaced by durations)."""
    promtool = _promtool()
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$__rate_interval", "5m").replace("$__range", "1h")}
        for i, (_, expr) in enumerate(_dashboard_exprs())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    check = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(rules)} rules found" in check.stdout
