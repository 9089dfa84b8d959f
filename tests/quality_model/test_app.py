"""``aq:ml`` and data collection through the real app: rows recorded after the response, hot
promotion, the version in the cache key, and a corrupt promoted artefact served by the fallback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from imgproxy_py.quality_model.dataset import Dataset
from imgproxy_py.quality_model.registry import DEFAULT_DIR, Registry
from imgproxy_py.quality_model.trees import sha256
from tests.conftest import app_with_service

URL = "/_/rs:fit:300:300/aq:{method}/plain/local:///flowers.jpeg@webp"


async def test_searches_record_rows_after_the_response(tmp_path: Path) -> None:
    path = tmp_path / "aq.sqlite"
    async with app_with_service(IMGPROXY_AUTOQUALITY_DATASET=str(path)) as (client, _):
        for _ in range(2):  # the same source, format and bucket: one row
            assert (await client.get(URL.format(method="dssim"))).status_code == 200
        assert (await client.get(URL.format(method="dssim").replace("@webp", "@jpg"))).status_code == 200
        assert (await client.get(URL.format(method="ml"))).status_code == 200  # aq:ml records nothing
    rows = list(Dataset(path).rows())
    assert sorted(r.format for r in rows) == ["jpeg", "webp"]
    assert all(30 <= r.label <= 90 and len(r.trail) >= 1 for r in rows)


async def test_promotion_is_picked_up_and_a_corrupt_artefact_falls_back(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "reg")
    doc = json.loads((DEFAULT_DIR / "model.json").read_bytes())
    for version in ("good", "bad"):
        artefact = json.dumps({**doc, "version": version}).encode()
        registry.publish(version, artefact, {"version": version, "sha256": sha256(artefact)})
    (tmp_path / "reg" / "bad" / "model.json").write_bytes(artefact[:-100])  # truncated: digest mismatch
    env = {"IMGPROXY_MODELS_REGISTRY": str(tmp_path / "reg"), "IMGPROXY_MODELS_POLL_INTERVAL": "0.1"}
    async with app_with_service(**env) as (client, service):
        first = await client.get(URL.format(method="ml"))
        assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
        assert (await client.get(URL.format(method="ml"))).headers["x-cache"] != "MISS"  # cached
        registry.promote("bad")
        await asyncio.sleep(0.3)
        broken = await client.get(URL.format(method="ml"))
        assert broken.status_code == 200  # the DSSIM search served it
        assert broken.headers["x-cache"] == "MISS"  # another version: another cache key
        searched = await client.get(URL.format(method="dssim"))
        assert len(broken.content) == len(searched.content)
        registry.promote("good")
        await asyncio.sleep(0.3)
        good = await client.get(URL.format(method="ml"))
        assert good.status_code == 200 and good.headers["x-cache"] == "MISS"
        assert service.images.quality_models is not None
        assert service.images.quality_models.cache_version() == "good"
