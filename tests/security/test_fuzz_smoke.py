"""A short fuzz run (benchmarks/fuzz.py, fixed seed): mutated fixtures never crash, hang, raise or 5xx.

The run is made with ``--self-check``: cases 1, 2 and 3 abort their child, hang and raise
on purpose, so the test also proves that the harness records exactly those as a crash, a
hang and an exception (with a replayable input) and keeps going. Anything else found fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import FIXTURES, REPO, images_dir

SECONDS = 18
SEED = 20251125
MAX_CASES = 600  # the same cases on any machine: at most these, in order (fewer on a slow one)
INJECTED = {"crash": 1, "hang": 1, "exception": 1}


def test_a_short_fuzz_run_finds_nothing_but_the_injected_faults(tmp_path: Path) -> None:
    images_dir()  # skips without the fixtures
    cmd = [sys.executable, "-m", "benchmarks.fuzz", "--seconds", str(SECONDS), "--seed", str(SEED)]
    cmd += ["--max-cases", str(MAX_CASES)]
    cmd += ["--self-check", "--case-timeout", "8", "--fixtures", str(FIXTURES), "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=SECONDS + 90, check=False)
    summary_file = tmp_path / "fuzz-summary.json"
    assert summary_file.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(summary_file.read_text())

    failures = {k: v for k, v in summary["findings"].items() if k not in ("slow", "memory")}
    assert failures == INJECTED, proc.stdout[-3000:]
    assert proc.returncode == 1  # the injected faults count as failures
    assert summary["cases"] > 50
    outcomes = summary["outcomes"]
    assert not [k for k in outcomes if k.startswith("asgi") and k.split(": ")[1].startswith("5")], outcomes
    assert outcomes.get("process: 200", 0) > 0 and outcomes.get("asgi: 422", 0) > 0, outcomes
    for kind in INJECTED:
        folder = tmp_path / "fuzz-crashes" / f"{kind}-{SEED}-{list(INJECTED).index(kind) + 1}"
        record = json.loads((folder / "case.json").read_text())
        assert record["kind"] == kind and record["inject"] == kind
        assert (folder / "input.bin").exists()
