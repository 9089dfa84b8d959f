"""imgproxy Pro's syntax for objects, detections, auto-quality and the best format."""

from __future__ import annotations

import pytest

from imgproxy_py.errors import InvalidOptionError
from imgproxy_py.options.model import AutoQuality, Detections, Gravity, GravityType, ProcessingOptions
from imgproxy_py.options.parser import Parser
from imgproxy_py.settings import OptionSettings

_PARSER = Parser(OptionSettings())


def parse(text: str, ext: str = "") -> ProcessingOptions:
    return _PARSER.parse(f"/{text}/plain/local:///x.jpg{ext}").options


def test_object_gravity_with_and_without_classes() -> None:
    assert parse("g:obj:face").gravity == Gravity(GravityType.OBJECT)
    assert parse("g:obj").gravity == Gravity(GravityType.OBJECT)
    assert parse("g:obj:all").gravity == Gravity(GravityType.OBJECT)
    assert parse("c:100:100:obj:face").crop.gravity == Gravity(GravityType.OBJECT)


@pytest.mark.parametrize("text", ["g:obj:cat", "ex:1:sm", "bd:5:dog", "bd:x", "dd:maybe", "aq:size", "aq:dssim:2"])
def test_bad_arguments_are_refused(text: str) -> None:
    with pytest.raises(InvalidOptionError):
        parse(text)


def test_object_weights() -> None:
    """``objw:class:weight…`` (``all`` for every class not named, default 1), as imgproxy Pro spells it."""
    g = parse("g:objw:all:2:face:3").gravity
    assert g.type is GravityType.OBJECT and g.class_weights() == {"all": 2.0, "face": 3.0}
    assert parse("g:objw:face:3:all:2").canonical() == parse("g:objw:all:2:face:3").canonical()
    assert parse("g:objw:face:0").canonical() != parse("g:obj").canonical()
    assert parse("c:10:10:objw:face:0.5").crop.gravity == Gravity(GravityType.OBJECT, weights=(("face", 0.5),))
    assert parse("ex:1:objw:face:2").extend.gravity.class_weights() == {"face": 2.0}
    assert parse("exar:1:obj").extend_aspect_ratio.gravity == Gravity(GravityType.OBJECT)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("g:objw:cat:2", "'cat'"),
        ("g:objw:face", "pairs"),
        ("g:objw", "pairs"),
        ("g:objw:face:-1", "out of range"),
        ("g:objw:face:x", "invalid number"),
        ("wm:1:objw", "watermark"),
    ],
)
def test_bad_object_weights_are_refused_by_name(text: str, says: str) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        parse(text)
    assert says in str(caught.value)


def test_detection_overlays() -> None:
    assert parse("bd:10:face").blur_detections == Detections(True, 10.0)
    assert parse("blur_detections:0").blur_detections == Detections(False, 0.0)
    assert parse("dd:1").draw_detections == Detections(True)
    assert parse("bd:10/bd:0").canonical() == parse("bd:0").canonical() == ""


def test_autoquality_arguments() -> None:
    aq = parse("aq:dssim:0.01:40:85:0.001").autoquality
    assert aq == AutoQuality("dssim", 0.01, 40, 85, 0.001)
    assert parse("autoquality:dssim").autoquality == AutoQuality("dssim")
    assert parse("aq:none").autoquality.method == "none"
    with pytest.raises(InvalidOptionError):
        parse("aq:dssim:0.01:90:40")


def test_best_format_by_option_or_extension() -> None:
    for po in (parse("f:best"), parse("rs:fit:10:10", "@best")):
        assert po.format is None and po.format_best
    assert not parse("f:best/f:png").format_best
    assert parse("f:best").canonical() != parse("f:jpg").canonical()
