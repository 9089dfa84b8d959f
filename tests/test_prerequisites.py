"""A missing tool skips its tests, saying so; under ``CI=true`` it fails the run instead."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import REPO


@pytest.mark.parametrize(("ci", "expected"), [("", "1 skipped"), ("true", "1 error")])
def test_a_missing_redis_server_skips_locally_and_fails_in_ci(ci: str, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGPROXY_")}
    env["PATH"] = os.path.dirname(sys.executable)  # the venv's tools only: no redis-server
    env["CI"] = ci
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/cache/test_shared_keys.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert expected in proc.stdout, proc.stdout[-2000:]
    assert "redis-server is not installed" in proc.stdout
    assert (proc.returncode == 0) is (not ci)
