"""``imgproxy-py models``: collect over a folder, train, list, promote, rollback (real images, real files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from imgproxy_py.cli import main
from imgproxy_py.quality_model.dataset import Dataset
from imgproxy_py.quality_model.registry import Registry
from tests.support import FIXTURES

IMAGES = (
    "flowers.jpeg",
    "Landscape_1.jpg",
    "Landscape_3.jpg",
    "Portrait_1.jpg",
    "concert.jpg",
    "320x240.jpg",
    "4.webp",
    "with-alpha.png",
    "trim-mc.png",
    "embedgravitybird.png",
)


def test_collect_train_list_promote_rollback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sklearn")
    images = tmp_path / "images"
    images.mkdir()
    for name in IMAGES:
        shutil.copy(FIXTURES / "images" / name, images / name)
    (images / "notes.txt").write_text("not an image")
    data = tmp_path / "aq.sqlite"
    registry = tmp_path / "registry"
    assert (
        main(["models", "collect", str(images), "--into", str(data), "--widths", "160,320", "--formats", "jpeg,webp"])
        == 0
    )
    rows = list(Dataset(data).rows())
    assert len({r.source_digest for r in rows}) == len(IMAGES)
    assert {r.format for r in rows} == {"jpeg", "webp"}
    count = len(rows)
    assert (
        main(["models", "collect", str(images), "--into", str(data), "--widths", "160,320", "--formats", "jpeg,webp"])
        == 0
    )
    assert Dataset(data).count() == count  # the same sources again: deduplicated

    capsys.readouterr()
    assert main(["models", "--registry", str(registry), "train", "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "held-out MAE" in out and "bytes vs q80" in out
    (first,) = Registry(registry).versions()
    meta = first.meta
    assert meta["rows"] == count and meta["feature_version"] and meta["data_snapshot"]
    assert set(meta["metrics"]["held_out"]) >= {"mae", "miss_share", "bytes_vs_q80"}
    assert "scikit-learn" in meta["libraries"]
    assert main(["models", "--registry", str(registry), "promote", first.name]) == 0
    assert Registry(registry).current() == first.name

    second = json.loads((registry / first.name / "meta.json").read_text())
    second["version"] = "manual-2"
    Registry(registry).publish("manual-2", (registry / first.name / "model.json").read_bytes(), second)
    assert main(["models", "--registry", str(registry), "promote", "manual-2"]) == 0
    capsys.readouterr()
    assert main(["models", "--registry", str(registry), "list"]) == 0
    listing = capsys.readouterr().out
    assert "* manual-2" in listing and first.name in listing
    assert main(["models", "--registry", str(registry), "rollback"]) == 0
    assert Registry(registry).current() == first.name
    assert main(["models", "--registry", str(registry), "promote", "no-such-version"]) == 2
