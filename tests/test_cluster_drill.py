"""A short run of the scale-out drill harness (benchmarks/cluster.py): the whole stack
(2 Varnish PoPs → HAProxy → 3 replicas, Redis Cluster, S3, origin) comes up, and one
new variant requested 30 times at once across the replicas is fetched and transformed once."""

from __future__ import annotations

import shutil
from pathlib import Path

from benchmarks import cluster
from tests.support import missing_prerequisite


async def test_drill_stack_coalesces_one_variant_across_replicas() -> None:
    for tool in ("haproxy", "varnishd", "redis-server", "redis-cli"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            missing_prerequisite(f"{tool} is not installed (CI installs varnish, haproxy, redis-server)")
    (row,) = await cluster.main(2, ["coalesce"])
    statuses = {s.status for s in row.run.samples}
    assert statuses == {200}
    assert "source fetches 1, transforms (MISS) 1;" in row.result
    assert "| coalescing" in cluster.render([row])
