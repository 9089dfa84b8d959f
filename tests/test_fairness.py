"""The cropping fairness report groups faces by their labelled attributes (real detector, real crops)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from benchmarks import fairness
from tests.processing.test_faces import detector
from tests.support import FIXTURES


def test_groups_by_attribute_with_counts(tmp_path: Path) -> None:
    face_detector = detector()  # skips without the detector
    labels = json.loads((FIXTURES / "faces" / "labels.json").read_text())
    for name, tone in (("astronaut.png", "I-II"), ("camera.png", "V-VI")):
        shutil.copy(FIXTURES / "faces" / name, tmp_path / name)
        labels[name][0]["attributes"] = {"skin_tone": tone}
    labels["camera.png"][0]["attributes"]["pose"] = "frontal"
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    result = fairness.report(face_detector, tmp_path)
    tones = result["attributes"]["skin_tone"]
    assert {g: s["faces"] for g, s in tones.items()} == {"I-II": 1, "V-VI": 1}
    assert result["attributes"]["pose"]["(unlabelled)"]["faces"] == 1  # astronaut has no pose label
    assert all(s["too_few"] and 0 <= s["recall"] <= 1 for s in tones.values())
    assert all(0 <= k <= 1 for s in tones.values() for k in s["kept"].values())
    text = fairness.markdown(result)
    assert "| skin_tone | V-VI* | 1 |" in text
