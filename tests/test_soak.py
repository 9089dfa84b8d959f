"""Memory stays bounded under sustained mixed load (a short version of benchmarks/soak.py)."""

from __future__ import annotations

from typing import Any

from benchmarks.soak import soak
from tests.support import images_dir


def test_rss_stays_flat_once_caches_are_full() -> None:
    images_dir()
    result: dict[str, Any] = soak(1500, concurrency=6)
    assert result["statuses"] == {200: 1500}
    samples = [rss for _, rss in result["rss_mb"]]
    first, last = samples[: len(samples) // 2], samples[len(samples) // 2 :]
    # Caches are capped at 32 MB each; past the first half, growth would be a leak.
    assert max(last) <= max(first) + 60, result["rss_mb"]
    assert max(samples) < 450, result["rss_mb"]
