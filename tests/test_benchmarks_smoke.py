"""The benchmark harness works: two seconds of W1 against this server only (a smoke test, not a benchmark)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import REPO, images_dir, missing_prerequisite


def test_harness_runs_w1_against_the_server(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        missing_prerequisite("wrk is not installed (apt-get install wrk; .ci/run does): the benchmark harness needs it")
    cmd = [sys.executable, "-m", "benchmarks.run", "--duration", "2", "--warmup", "0", "--concurrency", "2"]
    cmd += ["--workloads", "W1", "--systems", "server", "--no-plot", "--out", str(tmp_path)]
    cmd += ["--fixtures", str(images_dir())]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=90, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]

    data = json.loads((tmp_path / "results.json").read_text())
    rows = [r for r in data["rows"] if r["workload"] == "W1" and r["system"] == "server"]
    assert len(rows) == 1, data["rows"]
    row = rows[0]
    assert row["ok"], row["error"]
    assert row["rps"] > 0
    assert row["requests"] > 0
    assert row["errors"] == 0
    assert "| W1 | imgproxy-py | 2 |" in proc.stdout
    assert (tmp_path / "results.md").read_text().startswith("# imgproxy-py benchmark results")
