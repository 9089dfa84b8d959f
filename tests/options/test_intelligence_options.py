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


@pytest.mark.parametrize("text", ["g:obj:cat", "ex:1:obj", "bd:5:dog", "bd:x", "dd:maybe", "aq:size", "aq:dssim:2"])
def test_bad_arguments_are_refused(text: str) -> None:
    with pytest.raises(InvalidOptionError):
        parse(text)


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
