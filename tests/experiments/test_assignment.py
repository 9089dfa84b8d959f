"""Arm assignment: shares over many URLs, stability across processes, scopes, definitions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from imgproxy_py.errors import SettingsError
from imgproxy_py.experiments import Experiments, bucket, load_experiments
from imgproxy_py.options.parser import Parser
from imgproxy_py.settings import ExperimentSettings, OptionSettings, Settings

REPO = Path(__file__).resolve().parents[2]
URLS = [f"https://img.example.com/photos/{i}.jpg" for i in range(10_000)]


def _definitions(*shares: float, name: str = "split", scope: object = "all") -> dict[str, object]:
    arms = [{"name": f"arm{i}", "options": f"q:{60 + i}", "share": share} for i, share in enumerate(shares)]
    return {"experiments": [{"name": name, "scope": scope, "arms": arms}]}


def _with_options(options: str) -> dict[str, object]:
    arms = [{"name": "a", "share": 50, "options": options}, {"name": "b", "share": 50}]
    return {"experiments": [{"name": "x", "arms": arms}]}


def _experiments(definitions: dict[str, object]) -> Experiments:
    loaded = load_experiments(ExperimentSettings(json.dumps(definitions)), Parser(OptionSettings()).check_options)
    assert loaded is not None
    return Experiments(loaded)


def _split(experiments: Experiments, urls: list[str]) -> list[str]:
    arms = []
    for url in urls:
        assignment = experiments.assign(url, ())
        assert assignment is not None
        arms.append(assignment.arm)
    return arms


@pytest.mark.parametrize("shares", [(50, 50), (90, 10)])
def test_observed_shares_are_within_one_point(shares: tuple[float, float]) -> None:
    counts = Counter(_split(_experiments(_definitions(*shares)), URLS))
    for i, share in enumerate(shares):
        observed = counts[f"arm{i}"] / len(URLS) * 100
        assert abs(observed - share) <= 1.0, (shares, counts)


_CHILD = """
import json, sys
from imgproxy_py.experiments import Experiments, load_experiments
from imgproxy_py.settings import ExperimentSettings
defs = load_experiments(ExperimentSettings(sys.argv[1]))
exps = Experiments(defs)
print(json.dumps([exps.assign(f"https://img.example.com/photos/{i}.jpg", ()).arm for i in range(10000)]))
"""


@pytest.mark.parametrize("shares", [(50, 50), (90, 10)])
def test_assignment_is_identical_in_other_processes(shares: tuple[float, float]) -> None:
    """Two real processes with different string-hash seeds (and a restart) assign every URL alike."""
    definitions = json.dumps(_definitions(*shares))
    here = _split(_experiments(_definitions(*shares)), URLS)
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, definitions], capture_output=True, text=True, env=env, cwd=REPO, check=True
        ).stdout
        assert json.loads(out) == here


def test_bucket_depends_on_experiment_name_and_url_only() -> None:
    assert bucket("a", "s3://b/k") == bucket("a", "s3://b/k")
    assert bucket("a", "s3://b/k") != bucket("b", "s3://b/k")
    assert 0 <= bucket("a", "x") < 1
    # Different experiments split independently: the 50/50 arms of two experiments are uncorrelated.
    a = _split(_experiments(_definitions(50, 50, name="one")), URLS[:4000])
    b = _split(_experiments(_definitions(50, 50, name="two")), URLS[:4000])
    same = sum(x == y for x, y in zip(a, b, strict=True)) / 4000
    assert 0.45 < same < 0.55


def test_scopes_preset_and_prefix() -> None:
    by_prefix = _experiments(_definitions(50, 50, scope={"source_prefixes": ["s3://bucket/a/", "local:///x"]}))
    assert by_prefix.assign("s3://bucket/a/1.jpg", ()) is not None
    assert by_prefix.assign("local:///x/y.png", ()) is not None
    assert by_prefix.assign("s3://bucket/b/1.jpg", ()) is None
    by_preset = _experiments(_definitions(50, 50, scope={"preset": "thumb"}))
    assert by_preset.assign("s3://bucket/a/1.jpg", ("thumb",)) is not None
    assert by_preset.assign("s3://bucket/a/1.jpg", ("other",)) is None


def test_disabled_experiment_assigns_nothing() -> None:
    definitions = _definitions(50, 50)
    definitions["experiments"][0]["enabled"] = False  # type: ignore[index]
    assert _experiments(definitions).assign("s3://b/k", ()) is None


@pytest.mark.parametrize(
    ("definitions", "problem"),
    [
        (_definitions(60, 50), "add up to 100, they add up to 110"),
        (_definitions(100), "at least 2 items"),
        ({"experiments": [{"name": "bad name!", "arms": []}]}, "experiments.0.name"),
        ({"experiments": [{**_definitions(50, 50)["experiments"][0], "colour": 1}]}, "colour: Extra inputs"),  # type: ignore[index]
        ({"experiments": [{"name": "x", "arms": [{"name": "a", "share": 50}, {"name": "a", "share": 50}]}]}, "unique"),
        ({"experiments": [{"name": "x", "scope": "some", "arms": []}]}, "experiments.0.scope"),
        (_with_options("q:high"), "arm 'a': invalid options 'q:high'"),
        (_with_options("nope:1"), "unknown option 'nope'"),
    ],
)
def test_invalid_definitions_name_the_problem(definitions: dict[str, object], problem: str) -> None:
    with pytest.raises(SettingsError, match="IMGPROXY_EXPERIMENTS") as info:
        _experiments(definitions)
    assert problem in str(info.value)


def test_settings_read_inline_json_yaml_and_files(tmp_path: Path) -> None:
    inline = Settings.from_env({"IMGPROXY_EXPERIMENTS": json.dumps(_definitions(50, 50))})
    assert load_experiments(inline.experiments) is not None
    yaml_file = tmp_path / "exp.yaml"
    yaml_file.write_text(
        "experiments:\n  - name: q\n    arms:\n      - {name: control, options: 'q:80', share: 50}\n"
        "      - {name: treatment, options: 'q:70', share: 50}\n"
    )
    loaded = load_experiments(Settings.from_env({"IMGPROXY_EXPERIMENTS": str(yaml_file)}).experiments)
    assert loaded is not None and [a.segments for a in loaded.experiments[0].arms] == [("q:80",), ("q:70",)]
    with pytest.raises(SettingsError, match="cannot read"):
        Settings.from_env({"IMGPROXY_EXPERIMENTS": str(tmp_path / "missing.json")})
    with pytest.raises(SettingsError, match="not valid JSON"):
        load_experiments(ExperimentSettings("{nope"))


def test_shipped_example_loads_with_the_option_parser() -> None:
    settings = Settings.from_env({"IMGPROXY_EXPERIMENTS": str(REPO / "config" / "experiments.example.json")})
    loaded = load_experiments(settings.experiments, Parser(settings.options).check_options)
    assert loaded is not None
    (quality,) = loaded.experiments
    assert quality.name == "quality" and quality.scope == "all"
    assert [(a.name, a.options, a.share) for a in quality.arms] == [
        ("control", "q:80", 50),
        ("treatment", "aq:dssim", 50),
    ]
