"""The options added for imgproxy v4 parity, and the parser settings around them.

Expectations come from ../shared/reference/imgproxy.md (§1.4 source URLs, §2 options, §3.4
presets), imgproxy's option docs and its parser (upstream options/parser/*.go), not from
running this parser. Other § marks below refer to that reference's sections. Deliberate differences
from imgproxy are marked "deliberate".
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from imgproxy_py.errors import InvalidOptionError, InvalidURLError, SecurityOptionError, SettingsError
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.options.model import Color, GravityType, Padding, ProcessingOptions, Trim, Watermark
from imgproxy_py.options.parser import Parser
from imgproxy_py.options.source_url import URLRewriter
from imgproxy_py.settings import OptionSettings, Settings

SRC = "http://example.com/images/a.jpg"
DEFAULT = ProcessingOptions()
PARSER = Parser(OptionSettings())
SECURE = Parser(OptionSettings(allow_security_options=True))
G = GravityType
F = ImageFormat


def options(opts: str, parser: Parser = PARSER) -> ProcessingOptions:
    prefix = f"/{opts}" if opts else ""
    return parser.parse(f"{prefix}/plain/{SRC}").options


def with_(**fields: Any) -> ProcessingOptions:
    return replace(DEFAULT, **fields)


# --------------------------------------------------------------------------------------------
# Every new option and alias (spec §2.2, v4 column)
# --------------------------------------------------------------------------------------------

CASES: list[tuple[str, ProcessingOptions]] = [
    # trim / t: threshold:colour:equal_hor:equal_ver; the threshold may be any float
    ("t:10", with_(trim=Trim(10.0))),
    ("trim:0.5:FF00FF", with_(trim=Trim(0.5, Color(255, 0, 255)))),
    ("t:10:f0f", with_(trim=Trim(10.0, Color(255, 0, 255)))),  # 3-digit colours double each digit
    ("t:10:abcdef:1:0", with_(trim=Trim(10.0, Color(0xAB, 0xCD, 0xEF), True, False))),
    ("t:10::1:1", with_(trim=Trim(10.0, None, True, True))),
    ("t:-5", with_(trim=Trim(-5.0))),
    ("t:10/t:", DEFAULT),  # an empty threshold switches trim off (v4)
    ("t:10:ff0000/t:20", with_(trim=Trim(20.0))),  # a missing colour is removed, not kept
    ("t:10::1/t:20", with_(trim=Trim(20.0, None, True))),  # the equal flags are kept
    # padding / pd: CSS order, missing right/bottom = top, missing left = right
    ("pd:10", with_(padding=Padding(10, 10, 10, 10))),
    ("padding:10:20", with_(padding=Padding(10, 20, 10, 20))),
    ("pd:10:20:30", with_(padding=Padding(10, 20, 30, 20))),
    ("pd:1:2:3:4", with_(padding=Padding(1, 2, 3, 4))),
    ("pd:5/pd::7", with_(padding=Padding(5, 7, 5, 7))),  # an empty top keeps the earlier one
    ("pd:0", DEFAULT),
    # rotate / rot: multiples of 90, any sign, kept as 0..270
    ("rot:90", with_(rotate=90)),
    ("rotate:180", with_(rotate=180)),
    ("rot:-90", with_(rotate=270)),
    ("rot:450", with_(rotate=90)),
    ("rot:360", DEFAULT),
    # flip / fl: h:v, empty parts skipped
    ("fl:1", with_(flip_horizontal=True)),
    ("flip:0:1", with_(flip_vertical=True)),
    ("fl:1:1", with_(flip_horizontal=True, flip_vertical=True)),
    ("fl:1/fl::1", with_(flip_horizontal=True, flip_vertical=True)),
    # background / bg: R:G:B or hex; an empty argument removes it
    ("bg:255:0:10", with_(background=Color(255, 0, 10))),
    ("background:ff000a", with_(background=Color(255, 0, 10))),
    ("bg:fff", with_(background=Color(255, 255, 255))),
    ("bg:0255:0:0", with_(background=Color(255, 0, 0))),  # Go ParseUint takes leading zeros
    ("bg:fff/bg:", DEFAULT),
    # blur, sharpen: float > 0 (v4); pixelate: int ≥ 0, 0 and 1 mean off
    ("bl:2", with_(blur=2.0)),
    ("blur:0.5", with_(blur=0.5)),
    ("sh:1.5", with_(sharpen=1.5)),
    ("sharpen:3", with_(sharpen=3.0)),
    ("pix:8", with_(pixelate=8)),
    ("pixelate:2", with_(pixelate=2)),
    ("pix:1", DEFAULT),
    ("pix:8/pix:0", DEFAULT),
    # watermark / wm: opacity:position:x:y:scale (+2 ignored Pro arguments)
    ("wm:0.5", with_(watermark=Watermark(0.5))),
    ("watermark:1:soea:10:20", with_(watermark=Watermark(1.0, G.SOUTH_EAST, 10, 20))),
    ("wm:1:re", with_(watermark=Watermark(1.0, G.REPLICATE))),
    ("wm:1:no:0.1:-5:0.25", with_(watermark=Watermark(1.0, G.NORTH, 0.1, -5, 0.25))),
    ("wm:1:ce:0:0:0.5:x:y", with_(watermark=Watermark(1.0, G.CENTER, 0, 0, 0.5))),
    ("wm:1:so/wm:0.5", with_(watermark=Watermark(0.5, G.SOUTH))),  # empty parts keep their value
    ("wm:0", DEFAULT),
    ("wm:0:so:5", DEFAULT),  # opacity 0: off, whatever else is set
    # booleans and counts
    ("eth:1", with_(enforce_thumbnail=True)),
    ("enforce_thumbnail:true", with_(enforce_thumbnail=True)),
    ("mb:1000", with_(max_bytes=1000)),
    ("max_bytes:0", DEFAULT),
    # skip_processing / skp: format names, added to the configured list
    ("skp:png", with_(skip_processing=frozenset({F.PNG}))),
    ("skip_processing:jpg:svg", with_(skip_processing=frozenset({F.JPEG, F.SVG}))),
    ("skp:png/skp:gif", with_(skip_processing=frozenset({F.PNG, F.GIF}))),
]


@pytest.mark.parametrize(("opts", "expected"), CASES, ids=[c[0] for c in CASES])
def test_option_parses(opts: str, expected: ProcessingOptions) -> None:
    po = options(opts)
    assert po.canonical() == expected.canonical()
    if opts != "wm:0:so:5":  # the one case equal in effect only: a switched-off watermark keeps its parts
        assert po == expected


SECURITY_CASES: list[tuple[str, ProcessingOptions]] = [
    ("msr:10", with_(max_src_resolution=10_000_000)),
    ("max_src_resolution:0.5", with_(max_src_resolution=500_000)),
    ("msfs:1024", with_(max_src_file_size=1024)),
    ("max_src_file_size:-1", with_(max_src_file_size=-1)),
    ("maf:5", with_(max_animation_frames=5)),
    ("max_animation_frames:1", with_(max_animation_frames=1)),
    ("mafr:2", with_(max_animation_frame_resolution=2_000_000)),
    ("max_animation_frame_resolution:0", with_(max_animation_frame_resolution=0)),
    ("mrd:800", with_(max_result_dimension=800)),
    ("max_result_dimension:0", with_(max_result_dimension=0)),
]


@pytest.mark.parametrize(("opts", "expected"), SECURITY_CASES, ids=[c[0] for c in SECURITY_CASES])
def test_security_option_parses_when_allowed(opts: str, expected: ProcessingOptions) -> None:
    assert options(opts, SECURE) == expected


@pytest.mark.parametrize(("opts", "_expected"), SECURITY_CASES, ids=[c[0] for c in SECURITY_CASES])
def test_security_option_is_403_when_not_allowed(opts: str, _expected: ProcessingOptions) -> None:
    with pytest.raises(SecurityOptionError) as info:
        options(opts)
    assert info.value.status_code == 403


BAD = [
    # trim
    "t:x",
    "t:10:ff00f",
    "t:10:#ff00ff",
    "t:10:gg0000",
    "t:10:f:maybe",
    "t:1:2:1:1:1",
    "t:nan",
    # padding: ints ≥ 0
    "pd:-1",
    "pd:1.5",
    "pd:1:x",
    "pd:1:2:3:4:5",
    # rotate: a multiple of 90
    "rot:45",
    "rot:1",
    "rot:90.0",
    "rot:",
    "rot:90:90",
    # flip
    "fl:maybe",
    "fl:1:1:1",
    # background: 1 or 3 arguments
    "bg:1:2",
    "bg:1:2:3:4",
    "bg:256:0:0",
    "bg:-1:0:0",
    "bg:+1:0:0",
    "bg:ff",
    "bg:fffffff",
    "bg:red",
    # blur / sharpen: ≥ 0 (0 is "off", as imgproxy's docs say)
    "bl:-1",
    "bl:x",
    "bl:",
    "sh:-2",
    "sh:inf",
    # pixelate
    "pix:-1",
    "pix:2.5",
    # watermark
    "wm:",
    "wm:1.5",
    "wm:-0.1",
    "wm:x",
    "wm:1:sm",
    "wm:1:fp",
    "wm:1:xx",
    "wm:1:ce:x",
    "wm:1:ce:0:0:0",  # scale must be > 0 (deliberate: imgproxy v4 ignores a bad scale)
    "wm:1:ce:0:0:-1",
    "wm:1:ce:0:0:1:a:b:c",
    # others
    "eth:maybe",
    "mb:-1",
    "mb:1k",
    "skp:",
    "skp:xyz",
    "skp:png:",
]


@pytest.mark.parametrize("opts", BAD)
def test_bad_argument_is_404(opts: str) -> None:
    with pytest.raises(InvalidOptionError) as info:
        options(opts)
    assert info.value.status_code == 404


BAD_SECURITY = ["msr:-1", "msr:x", "msfs:1.5", "maf:0", "maf:-1", "mafr:-1", "mrd:x", "msr:1:2"]


@pytest.mark.parametrize("opts", BAD_SECURITY)
def test_bad_security_argument_is_404_when_allowed(opts: str) -> None:
    with pytest.raises(InvalidOptionError):
        options(opts, SECURE)


@pytest.mark.parametrize("opts", BAD_SECURITY)
def test_security_gate_comes_before_the_argument_check(opts: str) -> None:
    with pytest.raises(SecurityOptionError):
        options(opts)


# --------------------------------------------------------------------------------------------
# canonical(): the cache key
# --------------------------------------------------------------------------------------------

EQUIVALENT = [
    [
        "",
        "t:10/t:",
        "t:10:ff0000:1:1/t:",
        "pix:1",
        "pix:0",
        "wm:0",
        "wm:0:re:5:5:2",
        "rot:0",
        "rot:360",
        "pd:0",
        "bl:0",
        "sh:0",
    ],
    ["", "bg:fff/bg:", "fl:0:0", "mb:0", "eth:0"],
    ["rot:270", "rot:-90", "rotate:630"],
    ["pd:10", "pd:10:10", "pd:10:10:10:10", "padding:10::10", "pd:3/pd:10"],
    ["bg:ffffff", "bg:fff", "bg:255:255:255", "background:FFFFFF"],
    ["t:10:ff00ff", "t:10:F0F", "trim:10.0:ff00ff:0:0"],
    ["skp:png:jpg", "skp:jpeg/skp:png", "skp:png:png:jpg"],
    ["wm:0.5:so:10", "wm:0.5:so:10:0", "watermark:.5:so:1e1"],
    ["fl:1", "fl:1:0", "flip:t", "fl:0:1/fl::0/fl:1"],
]


@pytest.mark.parametrize("group", EQUIVALENT, ids=[g[0] or "defaults" for g in EQUIVALENT])
def test_canonical_equal_for_equivalent_urls(group: list[str]) -> None:
    assert len({options(opts).canonical() for opts in group}) == 1


DISTINCT = [
    "",
    "t:10",
    "t:11",
    "t:10:ff00ff",
    "t:10::1",
    "t:10:::1",
    "pd:1",
    "pd:1:2",
    "pd:1:2:3",
    "pd:1:2:3:4",
    "rot:90",
    "rot:180",
    "fl:1",
    "fl:0:1",
    "fl:1:1",
    "bg:fff",
    "bg:000",
    "bg:ff0000",
    "bl:1",
    "bl:2",
    "sh:1",
    "pix:2",
    "pix:3",
    "wm:1",
    "wm:0.5",
    "wm:1:re",
    "wm:1:so",
    "wm:1:so:1",
    "wm:1:so:0:1",
    "wm:1:so:0:0:0.5",
    "eth:1",
    "mb:1000",
    "mb:1001",
    "skp:png",
    "skp:jpg",
    "skp:png:jpg",
    "kcr:0",
]


def test_canonical_differs_for_different_options() -> None:
    seen: dict[str, str] = {}
    for opts in DISTINCT:
        canon = options(opts).canonical()
        assert canon not in seen, f"{opts!r} and {seen.get(canon)!r} share {canon!r}"
        seen[canon] = opts


def test_security_options_are_in_the_canonical_form() -> None:
    forms = {options(o, SECURE).canonical() for o in ["", "msr:1", "msr:2", "msfs:1", "maf:2", "mafr:1", "mrd:9"]}
    assert len(forms) == 7


# --------------------------------------------------------------------------------------------
# Settings that change parsing
# --------------------------------------------------------------------------------------------


def test_settings_defaults_become_base_options() -> None:
    parser = Parser(
        OptionSettings(
            keep_copyright=False,
            strip_color_profile=False,
            enforce_thumbnail=True,
            skip_processing_formats=frozenset({F.GIF}),
        )
    )
    po = options("", parser)
    assert (po.keep_copyright, po.strip_color_profile, po.enforce_thumbnail) == (False, False, True)
    assert options("skp:png", parser).skip_processing == frozenset({F.GIF, F.PNG})  # appended (§2.2)


def test_security_option_in_a_preset_stops_start_up_unless_allowed() -> None:
    with pytest.raises(SettingsError, match="IMGPROXY_PRESETS"):
        Parser(OptionSettings(presets=("big=msr:100",)))
    parser = Parser(OptionSettings(presets=("big=msr:100",), allow_security_options=True))
    assert options("pr:big", parser).max_src_resolution == 100_000_000


def test_presets_path_file(tmp_path: Path) -> None:
    file = tmp_path / "presets.conf"
    file.write_text("# thumbnails\nthumb=rs:fill:100:100/q:70\n\n  logo = wm:1:soea  \nsmall=w:10\n")
    settings = Settings.from_env({"IMGPROXY_PRESETS": "small=w:20,other=h:5", "IMGPROXY_PRESETS_PATH": str(file)})
    parser = Parser(settings.options)
    assert parser.preset_names == frozenset({"thumb", "logo", "small", "other"})
    po = options("pr:thumb", parser)
    assert (po.width, po.height, po.quality) == (100, 100, 70)
    assert options("pr:logo", parser).watermark == Watermark(1.0, G.SOUTH_EAST)
    assert options("pr:small", parser).width == 10  # the file is read after the variable
    assert options("pr:other", parser).height == 5


def test_presets_path_errors_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="IMGPROXY_PRESETS_PATH"):
        Settings.from_env({"IMGPROXY_PRESETS_PATH": str(tmp_path / "missing.conf")})
    bad = tmp_path / "bad.conf"
    bad.write_text("good=w:1\nbad=w:x\n")
    with pytest.raises(SettingsError, match="IMGPROXY_PRESETS_PATH.*bad"):
        Parser(Settings.from_env({"IMGPROXY_PRESETS_PATH": str(bad)}).options)
    bad.write_text("nodefinition\n")
    with pytest.raises(SettingsError, match="IMGPROXY_PRESETS_PATH"):
        Parser(Settings.from_env({"IMGPROXY_PRESETS_PATH": str(bad)}).options)


ONLY = Parser(OptionSettings(presets=("default=q:70", "small=rs:fit:100:100", "webp=f:webp"), only_presets=True))


def test_only_presets_mode_reads_preset_names_from_the_first_segment() -> None:
    parsed = ONLY.parse(f"/small:webp/plain/{SRC}")
    assert parsed.source_url == SRC
    po = parsed.options
    assert (po.width, po.height, po.quality, po.format) == (100, 100, 70, F.WEBP)
    assert ONLY.parse(f"/small/plain/{SRC}@png").options.format is F.PNG  # the extension still applies


@pytest.mark.parametrize("path", [f"/rs:fit:10:10/plain/{SRC}", f"/small:nope/plain/{SRC}", f"/plain/{SRC}", "/small"])
def test_only_presets_mode_refuses_anything_else(path: str) -> None:
    """Options are not options here: ``rs:fit:10:10`` is the presets rs, fit, 10 and 10; ``plain`` too (q)."""
    with pytest.raises(InvalidURLError):
        ONLY.parse(path)


ALLOWED = Parser(OptionSettings(allowed_processing_options=frozenset({"rs", "w", "pr"}), presets=("p=h:5/q:50",)))


def test_allowed_processing_options() -> None:
    assert options("rs:fit:10:10/w:20", ALLOWED).width == 20
    po = options("pr:p", ALLOWED)  # options inside presets are exempt
    assert (po.height, po.quality) == (5, 50)


@pytest.mark.parametrize("opts", ["h:10", "width:10", "resize:fit:10:10", "q:50", "pr:p/h:1"])
def test_options_outside_the_allowed_list_are_404(opts: str) -> None:
    """Names as written: ``width`` is not allowed when only ``w`` is (spec §1.4)."""
    with pytest.raises(InvalidOptionError) as info:
        options(opts, ALLOWED)
    assert info.value.status_code == 404


def test_arguments_separator() -> None:
    parser = Parser(OptionSettings(arguments_separator=",", presets=("p=rs,fill,50,60",)))
    po = options("rs,fill,300,200/g,no,5", parser)
    assert (po.width, po.height, po.gravity.type, po.gravity.x) == (300, 200, G.NORTH, 5)
    assert options("pr,p", parser).width == 50
    # a segment without the separator starts the URL, so a colon-style option is the source
    assert parser.parse(f"/w,10/plain/{SRC}").source_url == SRC
    with pytest.raises(InvalidURLError):
        parser.parse(f"/w:10/plain/{SRC}")  # "w:10" is read as a base64 source URL


def test_arguments_separator_setting() -> None:
    assert Settings.from_env({"IMGPROXY_ARGUMENTS_SEPARATOR": ","}).options.arguments_separator == ","
    assert Settings.from_env({}).options.arguments_separator == ":"
    with pytest.raises(SettingsError, match="IMGPROXY_ARGUMENTS_SEPARATOR"):
        Settings.from_env({"IMGPROXY_ARGUMENTS_SEPARATOR": "/"})


REWRITE_CASES: list[tuple[tuple[tuple[str, str], ...], str, str, str]] = [
    # (replacements, base URL, decoded source, result)
    ((), "", "http://a.com/x.jpg", "http://a.com/x.jpg"),
    ((("mys3://", "s3://my-bucket/"),), "", "mys3://images/x.jpg", "s3://my-bucket/images/x.jpg"),
    ((("img://*/", "https://${1}.example.com/"),), "", "img://cdn/x.jpg", "https://cdn.example.com/x.jpg"),
    ((("img://*/*/", "https://$2.$1.com/"),), "", "img://a/b/c.jpg", "https://b.a.com/c.jpg"),
    ((("x://*", "y://$1z"),), "", "x://abc", "y://"),  # Go reads "$1z" as the (absent) group "1z"
    ((("x://*", "y://$$1"),), "", "x://abc", "y://$1"),
    ((("x://*", "y://${9}"),), "", "x://abc", "y://"),  # no such group: empty
    ((("x://", "y://"),), "", "z://x://a", "z://x://a"),  # anchored at the start
    ((("a.b://", "c://"),), "", "axb://q", "axb://q"),  # the pattern is literal except for *
    ((("*://", "https://"),), "", "cdn://img/a.jpg", "https://img/a.jpg"),
    ((("http://*", "x"),), "", "http://a/b/c", "x/b/c"),  # * stops at a slash
    ((("one://", "two://"), ("two://", "three://")), "", "one://a", "three://a"),  # applied in order
    ((), "http://base.com/", "images/a.jpg", "http://base.com/images/a.jpg"),
    ((), "http://base.com/", "http://base.com/a.jpg", "http://base.com/a.jpg"),  # already there
    ((("s3://", "b/"),), "http://base.com/", "s3://a.jpg", "http://base.com/b/a.jpg"),  # replacements first
]


@pytest.mark.parametrize(("repl", "base", "url", "expected"), REWRITE_CASES)
def test_url_rewriter(repl: tuple[tuple[str, str], ...], base: str, url: str, expected: str) -> None:
    assert URLRewriter(repl, base).rewrite(url) == expected


def test_url_replacements_and_base_url_from_the_environment() -> None:
    settings = Settings.from_env(
        {"IMGPROXY_URL_REPLACEMENTS": "cdn://*/=https://$1.example.com/;s3x://=s3://bucket/", "IMGPROXY_BASE_URL": ""}
    )
    parser = Parser(settings.options)
    assert parser.parse("/w:1/plain/cdn://eu/a.jpg").source_url == "https://eu.example.com/a.jpg"
    assert parser.parse("/plain/s3x://a.jpg").source_url == "s3://bucket/a.jpg"
    based = Parser(Settings.from_env({"IMGPROXY_BASE_URL": "http://img.example.com/"}).options)
    assert based.parse("/w:1/plain/photos/a.jpg").source_url == "http://img.example.com/photos/a.jpg"
    with pytest.raises(SettingsError, match="IMGPROXY_URL_REPLACEMENTS"):
        Settings.from_env({"IMGPROXY_URL_REPLACEMENTS": "no-equals-sign"})


def test_new_option_settings_from_the_environment() -> None:
    s = Settings.from_env(
        {
            "IMGPROXY_KEEP_COPYRIGHT": "false",
            "IMGPROXY_STRIP_COLOR_PROFILE": "0",
            "IMGPROXY_ENFORCE_THUMBNAIL": "true",
            "IMGPROXY_SKIP_PROCESSING_FORMATS": "svg, gif",
            "IMGPROXY_ONLY_PRESETS": "1",
            "IMGPROXY_ALLOWED_PROCESSING_OPTIONS": "rs,w, h",
            "IMGPROXY_ALLOW_SECURITY_OPTIONS": "true",
            "IMGPROXY_MAX_RESULT_DIMENSION": "2000",
            "IMGPROXY_MAX_ANIMATION_FRAME_RESOLUTION": "1.5",
        }
    )
    o = s.options
    assert (o.keep_copyright, o.strip_color_profile, o.enforce_thumbnail) == (False, False, True)
    assert o.skip_processing_formats == frozenset({F.SVG, F.GIF})
    assert o.only_presets and o.allow_security_options and s.security.allow_security_options
    assert o.allowed_processing_options == frozenset({"rs", "w", "h"})
    assert s.security.max_result_dimension == 2000
    assert s.security.max_animation_frame_resolution == 1_500_000
    defaults = Settings.from_env({})
    assert (defaults.options.keep_copyright, defaults.options.strip_color_profile) == (True, True)
    assert defaults.options.skip_processing_formats == frozenset()
    assert (defaults.security.max_result_dimension, defaults.security.max_animation_frame_resolution) == (0, 0)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"IMGPROXY_SKIP_PROCESSING_FORMATS": "png,xyz"}, "IMGPROXY_SKIP_PROCESSING_FORMATS"),
        ({"IMGPROXY_KEEP_COPYRIGHT": "maybe"}, "IMGPROXY_KEEP_COPYRIGHT"),
        ({"IMGPROXY_MAX_RESULT_DIMENSION": "-1"}, "IMGPROXY_MAX_RESULT_DIMENSION"),
        ({"IMGPROXY_MAX_ANIMATION_FRAME_RESOLUTION": "x"}, "IMGPROXY_MAX_ANIMATION_FRAME_RESOLUTION"),
        ({"IMGPROXY_WATERMARK_DATA": "not base64!"}, "IMGPROXY_WATERMARK_DATA"),
        ({"IMGPROXY_WATERMARK_PATH": "/nonexistent/wm.png"}, "IMGPROXY_WATERMARK_PATH"),
        ({"IMGPROXY_WATERMARK_URL": "ftp://x/wm.png"}, "IMGPROXY_WATERMARK_URL"),
        ({"IMGPROXY_WATERMARK_OPACITY": "1.5"}, "IMGPROXY_WATERMARK_OPACITY"),
    ],
)
def test_invalid_new_settings_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)
