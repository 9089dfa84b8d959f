"""The feature record's codec: round trip, merge, and refusal of anything that is not one."""

from __future__ import annotations

import pytest

from imgproxy_py.analysis.detector import Detection
from imgproxy_py.analysis.records import FeatureRecord, record_key, source_digest

FACE = Detection(0.25, 0.1, 0.2, 0.3, 0.9)


def test_round_trip() -> None:
    record = FeatureRecord(
        "v1",
        640,
        480,
        (FACE,),
        "#102030",
        ({"color": "#000000", "share": 1.0},),
        "LKO",
        "ab",
        {"p18:jpeg:0.02:30-90": 62},
    )
    assert FeatureRecord.from_bytes(record.to_bytes(), "v1") == record


def test_another_version_is_not_trusted() -> None:
    assert FeatureRecord.from_bytes(FeatureRecord("v1", faces=(FACE,)).to_bytes(), "v2") is None
    assert record_key("d", "v1") != record_key("d", "v2")
    assert record_key("d", "v1").startswith("features:")


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x00\xff garbage",
        b"[]",
        b'{"schema":1,"version":"v1"}',
        b'{"schema":1,"version":"v1","width":1,"height":1,"faces":[{"x":2}],"average_color":null,'
        b'"dominant_colors":null,"blurhash":null,"phash":null,"qualities":{}}',
        b'{"schema":1,"version":"v1","width":1,"height":1,"faces":null,"average_color":null,'
        b'"dominant_colors":null,"blurhash":null,"phash":null,"qualities":{"k":500}}',
        b'{"schema":1,"version":"v1","width":-1,"height":1,"faces":null,"average_color":null,'
        b'"dominant_colors":null,"blurhash":null,"phash":null,"qualities":{}}',
    ],
)
def test_corrupt_or_foreign_records_read_as_none(blob: bytes) -> None:
    assert FeatureRecord.from_bytes(blob, "v1") is None


def test_merge_keeps_what_either_knows() -> None:
    old = FeatureRecord("v1", 10, 20, None, blurhash="B", qualities={"a": 50})
    new = FeatureRecord("v1", faces=(FACE,), qualities={"b": 60})
    merged = new.merged(old)
    assert merged.faces == (FACE,) and merged.blurhash == "B" and merged.qualities == {"a": 50, "b": 60}
    assert (merged.width, merged.height) == (10, 20)
    assert new.merged(FeatureRecord("v0", blurhash="X")).blurhash is None


def test_focal_point_weights_faces() -> None:
    big, small = Detection(0.0, 0.0, 0.4, 0.4, 1.0), Detection(0.9, 0.9, 0.1, 0.1, 1.0)
    x, y = FeatureRecord("v", faces=(big, small)).focal_point() or (1.0, 1.0)
    assert x < 0.3 and y < 0.3
    assert FeatureRecord("v", faces=()).focal_point() is None


def test_digest_is_of_the_bytes() -> None:
    assert source_digest(b"a") == source_digest(b"a") != source_digest(b"b")
