"""Path → options, as imgproxy v4 parses them: ../shared/reference/imgproxy.md (§1 URL format,
§2 options, §3 server behaviour) and the upstream parser (options/parser/*.go). The § marks
below refer to that reference's sections.

Expectations come from the spec tables, not from running the parser. Where we are
deliberately stricter or looser than imgproxy the test says so.
"""

from __future__ import annotations

import base64
import time
from dataclasses import replace
from typing import Any

import pytest

from imgproxy_py.errors import ExpiredURLError, InvalidOptionError, InvalidURLError
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.options.appliers import APPLIERS
from imgproxy_py.options.model import (
    Crop,
    Extend,
    Gravity,
    GravityType,
    ProcessingOptions,
    ResizingType,
)
from imgproxy_py.options.parser import ParsedURL, Parser, split_signature
from imgproxy_py.settings import OptionSettings

SRC = "http://example.com/images/a.jpg"
PARSER = Parser(OptionSettings())
DEFAULT = ProcessingOptions()
FUTURE = 4102444800  # 2100-01-01T00:00:00Z

G = GravityType
RT = ResizingType


def parse(path: str, parser: Parser = PARSER) -> ParsedURL:
    return parser.parse(path)


def options(opts: str, parser: Parser = PARSER) -> ProcessingOptions:
    """Options of ``/<opts>/plain/<SRC>`` (``opts`` may hold several ``/``-separated options)."""
    prefix = f"/{opts}" if opts else ""
    return parser.parse(f"{prefix}/plain/{SRC}").options


def with_(**fields: Any) -> ProcessingOptions:
    return replace(DEFAULT, **fields)


def b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# --------------------------------------------------------------------------------------------
# Every option and alias (spec §2.2)
# --------------------------------------------------------------------------------------------

OPTION_CASES: list[tuple[str, ProcessingOptions]] = [
    # resize / rs: type:w:h:enlarge:extend[:gravity...]; empty args keep the current value
    ("rs:fill:300:200", with_(resizing_type=RT.FILL, width=300, height=200)),
    ("resize:fill-down:300:200:1", with_(resizing_type=RT.FILL_DOWN, width=300, height=200, enlarge=True)),
    ("rs:auto", with_(resizing_type=RT.AUTO)),
    ("rs::300", with_(width=300)),
    ("rs:::200", with_(height=200)),
    ("rs:fit:::1", with_(enlarge=True)),
    (
        "rs:force:300:200:t:1:no:5:6",
        with_(
            resizing_type=RT.FORCE,
            width=300,
            height=200,
            enlarge=True,
            extend=Extend(True, Gravity(G.NORTH, 5, 6)),
        ),
    ),
    ("rs:fit:300:200:0:1", with_(width=300, height=200, extend=Extend(True))),
    # size / s: w:h:enlarge:extend...
    ("s:300:200", with_(width=300, height=200)),
    (
        "size:300:200:1:1:so",
        with_(width=300, height=200, enlarge=True, extend=Extend(True, Gravity(G.SOUTH))),
    ),
    ("s::200", with_(height=200)),
    ("s:300", with_(width=300)),
    # (q) a3 (extend) empty: the extend arguments after it are ignored
    ("s:300:200:0::no", with_(width=300, height=200)),
    # resizing_type / rt
    ("rt:fit", with_(resizing_type=RT.FIT)),
    ("rt:fill", with_(resizing_type=RT.FILL)),
    ("rt:fill-down", with_(resizing_type=RT.FILL_DOWN)),
    ("rt:force", with_(resizing_type=RT.FORCE)),
    ("resizing_type:auto", with_(resizing_type=RT.AUTO)),
    # width / height: Go Atoi, sign and leading zeros allowed
    ("w:300", with_(width=300)),
    ("width:300", with_(width=300)),
    ("w:+300", with_(width=300)),
    ("w:0300", with_(width=300)),
    ("w:0", DEFAULT),
    ("h:200", with_(height=200)),
    ("height:200", with_(height=200)),
    # min-width / min-height
    ("mw:50", with_(min_width=50)),
    ("min-width:50", with_(min_width=50)),
    ("mh:60", with_(min_height=60)),
    ("min-height:60", with_(min_height=60)),
    # zoom / z: one arg sets both
    ("z:2", with_(zoom_width=2.0, zoom_height=2.0)),
    ("zoom:1.5:0.5", with_(zoom_width=1.5, zoom_height=0.5)),
    ("z:.5", with_(zoom_width=0.5, zoom_height=0.5)),
    ("z:5.", with_(zoom_width=5.0, zoom_height=5.0)),
    # dpr
    ("dpr:2", with_(dpr=2.0)),
    ("dpr:1.5", with_(dpr=1.5)),
    ("dpr:3e0", with_(dpr=3.0)),
    # enlarge / el
    ("el:1", with_(enlarge=True)),
    ("enlarge:true", with_(enlarge=True)),
    ("el:0", DEFAULT),
    # extend / ex: bool[:gravity[:x:y]], gravity without sm
    ("ex:1", with_(extend=Extend(True))),
    ("extend:1:so", with_(extend=Extend(True, Gravity(G.SOUTH)))),
    ("ex:1:nowe:10:20", with_(extend=Extend(True, Gravity(G.NORTH_WEST, 10, 20)))),
    ("ex:1:fp:0.25:0.75", with_(extend=Extend(True, Gravity(G.FOCUS_POINT, 0.25, 0.75)))),
    ("ex:0", DEFAULT),
    ("ex:", DEFAULT),  # a0 is always parsed; empty → false
    # extend_aspect_ratio / extend_ar / exar
    ("exar:1", with_(extend_aspect_ratio=Extend(True))),
    ("extend_aspect_ratio:1:ea:-5", with_(extend_aspect_ratio=Extend(True, Gravity(G.EAST, -5)))),
    ("extend_ar:t:we", with_(extend_aspect_ratio=Extend(True, Gravity(G.WEST)))),
    # gravity / g: compass types, offsets (≥1 px, <1 relative, any sign), sm, fp
    ("g:ce", DEFAULT),
    ("g:no", with_(gravity=Gravity(G.NORTH))),
    ("g:so", with_(gravity=Gravity(G.SOUTH))),
    ("g:ea", with_(gravity=Gravity(G.EAST))),
    ("g:we", with_(gravity=Gravity(G.WEST))),
    ("g:noea", with_(gravity=Gravity(G.NORTH_EAST))),
    ("g:nowe", with_(gravity=Gravity(G.NORTH_WEST))),
    ("g:soea", with_(gravity=Gravity(G.SOUTH_EAST))),
    ("gravity:sowe", with_(gravity=Gravity(G.SOUTH_WEST))),
    ("g:noea:10:20", with_(gravity=Gravity(G.NORTH_EAST, 10, 20))),
    ("g:so:0.5:-0.25", with_(gravity=Gravity(G.SOUTH, 0.5, -0.25))),
    ("g:ea:-3:+4", with_(gravity=Gravity(G.EAST, -3, 4))),
    ("g:we:10", with_(gravity=Gravity(G.WEST, 10, 0))),
    ("g:sm", with_(gravity=Gravity(G.SMART))),
    ("gravity:sm", with_(gravity=Gravity(G.SMART))),
    ("g:fp:0.5:0.25", with_(gravity=Gravity(G.FOCUS_POINT, 0.5, 0.25))),
    ("g:fp:0:1", with_(gravity=Gravity(G.FOCUS_POINT, 0, 1))),  # bounds are inclusive
    # crop / c: w:h[:gravity], floats ≥0; the gravity falls back to g when absent
    ("c:100:200", with_(crop=Crop(100, 200))),
    ("crop:0.5:0.25", with_(crop=Crop(0.5, 0.25))),
    ("c:100:100:sm", with_(crop=Crop(100, 100, Gravity(G.SMART)))),
    ("c:100:100:fp:0.1:0.9", with_(crop=Crop(100, 100, Gravity(G.FOCUS_POINT, 0.1, 0.9)))),
    ("c:100:100:nowe:5:6", with_(crop=Crop(100, 100, Gravity(G.NORTH_WEST, 5, 6)))),
    ("c:0:0", DEFAULT),
    # boolean flags
    ("ar:0", with_(auto_rotate=False)),
    ("auto_rotate:false", with_(auto_rotate=False)),
    ("ar:1", DEFAULT),
    ("sm:0", with_(strip_metadata=False)),
    ("strip_metadata:f", with_(strip_metadata=False)),
    ("kcr:0", with_(keep_copyright=False)),
    ("keep_copyright:FALSE", with_(keep_copyright=False)),
    ("scp:0", with_(strip_color_profile=False)),
    ("strip_color_profile:False", with_(strip_color_profile=False)),
    ("att:1", with_(return_attachment=True)),
    ("return_attachment:T", with_(return_attachment=True)),
    # quality / q: 0 is accepted and means "default" (deliberate; imgproxy v4 wants 1..100)
    ("q:80", with_(quality=80)),
    ("quality:1", with_(quality=1)),
    ("q:100", with_(quality=100)),
    ("q:0", DEFAULT),
    # format_quality / fq: pairs accumulate; kept in a canonical order
    ("fq:webp:70", with_(format_quality=((ImageFormat.WEBP, 70),))),
    (
        "format_quality:webp:50:jpeg:90",
        with_(format_quality=((ImageFormat.JPEG, 90), (ImageFormat.WEBP, 50))),
    ),
    ("fq:jpg:90", with_(format_quality=((ImageFormat.JPEG, 90),))),
    (
        "fq:webp:70/fq:avif:40",
        with_(format_quality=((ImageFormat.AVIF, 40), (ImageFormat.WEBP, 70))),
    ),
    ("fq:webp:70/fq:webp:60", with_(format_quality=((ImageFormat.WEBP, 60),))),
    ("fq:webp:70/fq:webp:0", DEFAULT),  # 0 = back to the default, like q:0
    # format / f / ext (names case-insensitive, tif and jpe accepted: deliberate)
    ("f:png", with_(format=ImageFormat.PNG)),
    ("format:webp", with_(format=ImageFormat.WEBP)),
    ("ext:avif", with_(format=ImageFormat.AVIF)),
    ("f:jpg", with_(format=ImageFormat.JPEG)),
    ("f:jpeg", with_(format=ImageFormat.JPEG)),
    ("f:gif", with_(format=ImageFormat.GIF)),
    ("f:ico", with_(format=ImageFormat.ICO)),
    ("f:heic", with_(format=ImageFormat.HEIC)),
    ("f:bmp", with_(format=ImageFormat.BMP)),
    ("f:tiff", with_(format=ImageFormat.TIFF)),
    ("f:jxl", with_(format=ImageFormat.JXL)),
    ("f:svg", with_(format=ImageFormat.SVG)),
    ("f:JPG", with_(format=ImageFormat.JPEG)),
    ("f:tif", with_(format=ImageFormat.TIFF)),
    ("f:jpe", with_(format=ImageFormat.JPEG)),
    # cachebuster / cb: any raw string; empty removes it
    ("cb:abc", with_(cachebuster="abc")),
    ("cachebuster:v2", with_(cachebuster="v2")),
    ("cb:abc/cb:", DEFAULT),
    # expires / exp: 0 and negative mean "never"
    (f"exp:{FUTURE}", with_(expires=FUTURE)),
    (f"expires:{FUTURE}", with_(expires=FUTURE)),
    ("exp:0", DEFAULT),
    ("exp:-5", DEFAULT),
    # filename / fn: raw (never percent-decoded) or base64url when a1 is true
    ("fn:my_file", with_(filename="my_file")),
    ("filename:photo.jpg", with_(filename="photo.jpg")),
    ("fn:my%20file", with_(filename="my%20file")),
    ("fn:", DEFAULT),
    (f"fn:{b64url('my file.png')}:1", with_(filename="my file.png")),
    (f"fn:{b64url('ab')}==:true", with_(filename="ab")),  # v4 strips the padding first
    ("fn:plain:0", with_(filename="plain")),
    ("fn:abc:", with_(filename="abc")),  # an empty a1 is skipped, not parsed as a boolean
    # later options overwrite earlier ones
    ("w:100/w:200", with_(width=200)),
    ("rs:fill:300:200/rt:fit", with_(width=300, height=200)),
    ("g:sm/g:no", with_(gravity=Gravity(G.NORTH))),
]


@pytest.mark.parametrize(("opts", "expected"), OPTION_CASES, ids=[c[0] for c in OPTION_CASES])
def test_option_parses(opts: str, expected: ProcessingOptions) -> None:
    assert options(opts) == expected


BOOL_TRUE = ["1", "t", "T", "TRUE", "true", "True"]
BOOL_FALSE = ["0", "f", "F", "FALSE", "false", "False"]


@pytest.mark.parametrize("text", BOOL_TRUE)
def test_go_parsebool_true_values(text: str) -> None:
    assert options(f"el:{text}").enlarge is True
    assert options(f"att:{text}").return_attachment is True


@pytest.mark.parametrize("text", BOOL_FALSE)
def test_go_parsebool_false_values(text: str) -> None:
    assert options(f"el:1/el:{text}").enlarge is False
    assert options(f"ar:{text}").auto_rotate is False


def test_registered_names_are_the_documented_names_and_aliases() -> None:
    documented = {
        "resize", "rs", "size", "s", "resizing_type", "rt", "width", "w", "height", "h",
        "min-width", "mw", "min-height", "mh", "zoom", "z", "dpr", "enlarge", "el",
        "extend", "ex", "extend_aspect_ratio", "extend_ar", "exar", "gravity", "g", "crop", "c",
        "auto_rotate", "ar", "strip_metadata", "sm", "keep_copyright", "kcr",
        "strip_color_profile", "scp", "return_attachment", "att", "quality", "q",
        "format_quality", "fq", "format", "f", "ext", "cachebuster", "cb", "expires", "exp",
        "filename", "fn", "preset", "pr",
        "trim", "t", "padding", "pd", "rotate", "rot", "flip", "fl", "background", "bg",
        "blur", "bl", "sharpen", "sh", "pixelate", "pix", "watermark", "wm",
        "enforce_thumbnail", "eth", "max_bytes", "mb", "skip_processing", "skp",
        "max_src_resolution", "msr", "max_src_file_size", "msfs", "max_animation_frames", "maf",
        "max_animation_frame_resolution", "mafr", "max_result_dimension", "mrd", "raw", "preserve_hdr", "ph",
    }  # fmt: skip
    # min_width/min_height are our own extra spellings (imgproxy only knows min-width, mw);
    # video_thumbnail_second/vts is imgproxy Pro's option for video stills.
    extra = {"min_width", "min_height", "video_thumbnail_second", "vts"}
    assert set(APPLIERS) == documented | extra


def test_video_thumbnail_second() -> None:
    assert options("vts:1.5").video_thumbnail_second == 1.5
    assert options("video_thumbnail_second:0").video_thumbnail_second == 0
    assert options("vts:2").canonical() == "vts=2"
    for bad in ("vts:-1", "vts:", "vts:x", "vts:1:2"):
        with pytest.raises(InvalidOptionError):
            options(bad)


def test_gravity_offsets_persist_when_omitted() -> None:
    """Spec §2.3: without x/y the previous offsets are kept; sm clears them."""
    assert options("g:no:5:6/g:so").gravity == Gravity(G.SOUTH, 5, 6)
    assert options("g:no:5:6/g:so:7").gravity == Gravity(G.SOUTH, 7, 6)
    assert options("g:no:5:6/g:sm/g:so").gravity == Gravity(G.SOUTH)
    assert options("ex:1:no:5:6/ex:1:so").extend == Extend(True, Gravity(G.SOUTH, 5, 6))


def test_crop_keeps_unspecified_parts() -> None:
    """imgproxy's crop sets only the values it is given: ``c:W`` is valid and keeps height and gravity."""
    assert options("c:100").crop == Crop(100, 0)
    assert options("c:100:50:no/c:200").crop == Crop(200, 50, Gravity(G.NORTH))
    assert options("c:100:50:no:5:5/c:10:20:so").crop == Crop(10, 20, Gravity(G.SOUTH, 5, 5))


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        ("g:no::5", with_(gravity=Gravity(G.NORTH, 0, 5))),
        ("g:no:3:4/g:so::5", with_(gravity=Gravity(G.SOUTH, 3, 5))),
        ("g:no:3:", with_(gravity=Gravity(G.NORTH, 3, 0))),
        ("c:50:50:ce::10", with_(crop=Crop(50, 50, Gravity(G.CENTER, 0, 10)))),
        ("c:50::no", with_(crop=Crop(50, 0, Gravity(G.NORTH)))),
        ("c:50:50:", with_(crop=Crop(50, 50, Gravity()))),
        ("c:50:50:no/c:50:50::1", with_(crop=Crop(50, 50, Gravity(G.NORTH, 1, 0)))),
        ("ex:1:no::5", with_(extend=Extend(True, Gravity(G.NORTH, 0, 5)))),
        ("ex:1:", with_(extend=Extend(True))),
        ("ex:1:no/ex:1::2", with_(extend=Extend(True, Gravity(G.NORTH, 2, 0)))),
        ("exar:1:no::0.1", with_(extend_aspect_ratio=Extend(True, Gravity(G.NORTH, 0, 0.1)))),
        ("bl:0", DEFAULT),
        ("bl:2/bl:0", DEFAULT),
        ("sh:0", DEFAULT),
        ("sharpen:0.5/sh:0", DEFAULT),
        ("pix:0", DEFAULT),
        ("pix:5/pix:0", DEFAULT),
    ],
)
def test_empty_arguments_and_zero_filters(opts: str, expected: ProcessingOptions) -> None:
    """imgproxy reads an empty optional argument as "not given" and a zero filter as "off"."""
    assert options(opts) == expected


def test_extend_without_gravity_keeps_the_previous_gravity() -> None:
    assert options("ex:1:no/ex:0/ex:1").extend == Extend(True, Gravity(G.NORTH))


# --------------------------------------------------------------------------------------------
# Bad options and arguments: never silently dropped
# --------------------------------------------------------------------------------------------

BAD_OPTIONS = [
    # unknown names (case-sensitive; an empty name is unknown too)
    "nope:1",
    ":1",
    "W:100",
    "Rs:fit:1:1",
    "trim:10:xyz",  # a bad argument of a real option must not be silently ignored
    # width / height / min sizes: Go Atoi, ≥0
    "w:-1",
    "w:1.5",
    "w: 5",
    "w:1_0",
    "w:",
    "w:0x10",
    "w:1e3",
    "w:abc",
    "w:1:2",
    "h:-1",
    "height:1.0",
    "mw:-1",
    "mh:x",
    # resizing type
    "rt:stretch",
    "rt:",
    "rt:FIT",
    "rt:fit:fill",
    "rs:stretch:100:100",
    "rs:fit:-1",
    "rs:fit:1:2:3:4:5:6:7:8",  # 9 args, at most 8
    "s:1:2:0:1:ce:0:0:9",  # 8 args, at most 7
    "s:x",
    "s:1:1:maybe",
    # zoom / dpr: floats > 0, finite (NaN and inf refused: deliberate)
    "z:0",
    "z:-1",
    "z:1:0",
    "z:1:",
    "z:1:2:3",
    "z:",
    "z:nan",
    "z:inf",
    "dpr:0",
    "dpr:-1",
    "dpr:",
    "dpr:nan",
    "dpr:inf",
    "dpr:1e400",  # overflow is an error in Go too
    "dpr:1:2",
    # gravity
    "g:xx",
    "g:",
    "g:NO",
    "g:re",  # watermark-only type
    "g:sm:1",
    "g:fp:2:0",
    "g:fp:0.5",
    "g:fp:0.5:0.5:0.5",
    "g:fp:-0.1:0.5",
    "g:fp:0.5:1.01",
    "g:fp:nan:0.5",
    "g:ce:1:2:3",
    "g:no:x",
    "g:no:inf",
    # crop
    "c::",
    "c:",
    "c:-1:10",
    "c:10:-1",
    "c:x:10",
    "c:10:10:xx",
    "c:10:10:fp:2:2",
    "c:10:10:no:1:1:1",
    # extend / extend_aspect_ratio
    "ex:1:sm",
    "ex:1:xx",
    "ex:1:no:1:2:3",
    "ex:maybe",
    "exar:1:sm",
    "exar:2",
    # booleans: invalid values are errors (deliberate; imgproxy treats them as false)
    "el:yes",
    "el:2",
    "el:",
    "el:1:1",
    "ar:on",
    "sm:x",
    "kcr:x",
    "scp:x",
    "att:x",
    # quality / format_quality
    "q:101",
    "q:-1",
    "q:1.5",
    "q:",
    "q:80:90",
    "fq:webp",
    "fq:",
    "fq:webp:101",
    "fq:xyz:50",
    "fq:webp:x",
    "fq:webp:50:avif",
    # format
    "f:xyz",
    "f:",
    "f:png:jpeg",
    "ext:xyz",
    "format:jpg2000",
    # cachebuster: exactly one argument
    "cb:a:b",
    # expires
    "exp:abc",
    "exp:1.5",
    "exp:",
    "exp:1:2",
    # filename
    "fn:a:1:c",
    "fn:!!!!:1",  # not base64url
    "fn:YWI+:1",  # standard-alphabet characters are invalid in base64url ("YWI-" is "ab>")
    "fn:a:1",  # one base64 character can not encode a byte
    "fn:x:maybe",  # invalid boolean (deliberate error)
    # preset
    "pr:missing",
    "pr:",
]


@pytest.mark.parametrize("opts", BAD_OPTIONS)
def test_bad_option_raises(opts: str) -> None:
    with pytest.raises(InvalidOptionError):
        options(opts)


def test_option_errors_are_invalid_url_errors() -> None:
    with pytest.raises(InvalidURLError) as info:
        options("w:-1")
    assert info.value.status_code == 404
    assert info.value.public_message == "Invalid URL"


def test_bad_option_after_good_ones_still_fails() -> None:
    with pytest.raises(InvalidOptionError):
        options("rs:fill:300:200/g:sm/nope:1/q:80")


def test_percent_3a_inside_a_cachebuster_becomes_an_extra_argument() -> None:
    """(q, v4) %3A is replaced before options are split, so ``cb:a%3Ab`` has two args: an error."""
    _, path = split_signature(f"/sig/cb:a%3Ab/plain/{SRC}")
    with pytest.raises(InvalidOptionError):
        PARSER.parse(path)


# --------------------------------------------------------------------------------------------
# expires
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stamp", [1, 1_000_000_000, int(time.time()) - 60])
def test_expires_in_the_past_is_rejected(stamp: int) -> None:
    with pytest.raises(ExpiredURLError) as info:
        options(f"exp:{stamp}")
    assert info.value.status_code == 404
    assert isinstance(info.value, InvalidURLError)


def test_expires_in_the_near_future_is_kept() -> None:
    stamp = int(time.time()) + 3600
    assert options(f"exp:{stamp}").expires == stamp


# --------------------------------------------------------------------------------------------
# Presets (§4)
# --------------------------------------------------------------------------------------------

PRESETS = (
    "default=q:70/ar:0",
    "small=rs:fit:100:100",
    "sharp=q:95",
    "wide=w:50",
    "loop=pr:loop/w:10",
    "a=pr:b/h:5",
    "b=pr:a/w:7",
    "# a comment line",
    "",
)
PRESET_PARSER = Parser(OptionSettings(presets=PRESETS))


def test_default_preset_applies_to_every_request() -> None:
    po = options("", PRESET_PARSER)
    assert po == with_(quality=70, auto_rotate=False)


def test_url_options_override_the_default_preset() -> None:
    assert options("q:50", PRESET_PARSER).quality == 50
    assert options("ar:1", PRESET_PARSER).auto_rotate is True


@pytest.mark.parametrize("opts", ["pr:small", "preset:small"])
def test_preset_alias(opts: str) -> None:
    po = options(opts, PRESET_PARSER)
    assert (po.resizing_type, po.width, po.height) == (RT.FIT, 100, 100)


def test_several_presets_in_one_option_apply_in_order() -> None:
    po = options("pr:small:sharp", PRESET_PARSER)
    assert (po.width, po.height, po.quality) == (100, 100, 95)


def test_preset_applies_in_place() -> None:
    assert options("pr:small/w:300", PRESET_PARSER).width == 300
    assert options("w:300/pr:small", PRESET_PARSER).width == 100


def test_recursive_presets_are_skipped_without_error() -> None:
    assert options("pr:loop", PRESET_PARSER).width == 10
    po = options("pr:a", PRESET_PARSER)  # a → b → (a skipped) w:7, then a's h:5
    assert (po.width, po.height) == (7, 5)


def test_a_preset_used_twice_in_the_url_applies_twice() -> None:
    """Only the current chain counts as recursion (imgproxy's usedPresets), not every earlier use."""
    assert options("pr:wide/w:100/pr:wide", PRESET_PARSER).width == 50
    assert options("q:50/pr:default", PRESET_PARSER).quality == 70


def test_later_preset_definition_wins_and_names_are_listed() -> None:
    parser = Parser(OptionSettings(presets=("p=w:1", "p=w:2", "  spaced  =  h:3  ")))
    assert options("pr:p", parser).width == 2
    assert options("pr:spaced", parser).height == 3
    assert parser.preset_names == frozenset({"p", "spaced"})


def test_preset_canonical_equals_its_expansion() -> None:
    expanded = options("rs:fit:100:100", PRESET_PARSER)
    assert options("pr:small", PRESET_PARSER).canonical() == expanded.canonical()


def test_unknown_preset_is_an_error() -> None:
    with pytest.raises(InvalidOptionError):
        options("pr:small:nope", PRESET_PARSER)


def test_settings_defaults_are_the_base_options() -> None:
    parser = Parser(OptionSettings(auto_rotate=False, strip_metadata=False))
    assert options("", parser) == with_(auto_rotate=False, strip_metadata=False)
    assert options("ar:1/sm:1", parser) == DEFAULT


# --------------------------------------------------------------------------------------------
# Source URLs (§3)
# --------------------------------------------------------------------------------------------

PLAIN_CASES: list[tuple[str, str, ImageFormat | None]] = [
    ("plain/http://example.com/images/a.jpg", "http://example.com/images/a.jpg", None),
    ("plain/http://example.com/a.jpg@png", "http://example.com/a.jpg", ImageFormat.PNG),
    ("plain/http://example.com/a.jpg@jpg", "http://example.com/a.jpg", ImageFormat.JPEG),
    ("plain/http://example.com/a.jpg@JPG", "http://example.com/a.jpg", ImageFormat.JPEG),  # deliberate
    ("plain/local:///dir/a.png@webp", "local:///dir/a.png", ImageFormat.WEBP),
    # percent-decoding (url.PathUnescape): %XX decoded, + kept
    ("plain/http://example.com/a%20b.jpg", "http://example.com/a b.jpg", None),
    ("plain/http://example.com/a+b.jpg", "http://example.com/a+b.jpg", None),
    ("plain/http://u%40example.com/a.jpg@png", "http://u@example.com/a.jpg", ImageFormat.PNG),
    ("plain/http://example.com/a.jpg%3Fv=1%26w=2", "http://example.com/a.jpg?v=1&w=2", None),
    ("plain/http://example.com/100%25.jpg", "http://example.com/100%.jpg", None),
    ("plain/http://example.com/a%2Fb.jpg", "http://example.com/a/b.jpg", None),
    ("plain/http://example.com/caf%C3%A9.jpg", "http://example.com/café.jpg", None),
    ("plain/http%3A%2F%2Fexample.com%2Fa.jpg", "http://example.com/a.jpg", None),
    # an empty extension after @ means "no extension"
    ("plain/http://example.com/a.jpg@", "http://example.com/a.jpg", None),
]


@pytest.mark.parametrize(("path", "url", "fmt"), PLAIN_CASES, ids=[c[0] for c in PLAIN_CASES])
def test_plain_source(path: str, url: str, fmt: ImageFormat | None) -> None:
    parsed = parse("/" + path)
    assert parsed.source_url == url
    assert parsed.options == with_(format=fmt)


def test_source_extension_overrides_the_format_option() -> None:
    assert parse(f"/f:png/plain/{SRC}@webp").options.format is ImageFormat.WEBP
    assert parse(f"/f:png/plain/{SRC}").options.format is ImageFormat.PNG


CURIOSITY = "http://example.com/images/curiosity.jpg"
CURIOSITY_B64 = "aHR0cDovL2V4YW1wbGUuY29tL2ltYWdlcy9jdXJpb3NpdHkuanBn"


def test_reference_example_a_base64_chunks() -> None:
    parsed = parse("/rs:fill:300:400:0/g:sm/aHR0cDovL2V4YW1w/bGUuY29tL2ltYWdl/cy9jdXJpb3NpdHku/anBn.png")
    assert parsed.source_url == CURIOSITY
    assert parsed.options == with_(
        resizing_type=RT.FILL, width=300, height=400, gravity=Gravity(G.SMART), format=ImageFormat.PNG
    )


@pytest.mark.parametrize("cuts", [(), (1,), (4, 5, 6), (10, 20, 30, 40), tuple(range(1, len(CURIOSITY_B64)))])
def test_base64_source_may_be_split_anywhere(cuts: tuple[int, ...]) -> None:
    bounds = (0, *cuts, len(CURIOSITY_B64))
    chunks = [CURIOSITY_B64[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    parsed = parse("/" + "/".join(chunks) + ".webp")
    assert parsed.source_url == CURIOSITY
    assert parsed.options.format is ImageFormat.WEBP


def test_base64_source_without_extension_and_with_padding() -> None:
    url = "http://example.com/a.png"  # 24 bytes: no padding
    assert parse("/" + b64url(url)).source_url == url
    padded_url = "http://example.com/ab.png"  # 25 bytes: "==" padding
    padded = base64.urlsafe_b64encode(padded_url.encode()).decode()
    assert padded.endswith("==")
    assert parse("/" + padded).source_url == padded_url
    assert parse(f"/{b64url(url)}.").options.format is None  # empty extension: none


def test_base64_source_is_not_percent_decoded() -> None:
    url = "http://example.com/a%20b.jpg"
    assert parse("/" + b64url(url)).source_url == url


def _b64_with_dash() -> tuple[str, str]:
    url = "http://example.co/>>>"  # 18 bytes before '>>>', so it encodes to 'Pj4-'
    encoded = b64url(url)
    assert encoded.endswith("Pj4-")
    return url, encoded


def test_base64_source_uses_the_url_safe_alphabet() -> None:
    url, encoded = _b64_with_dash()
    assert parse("/" + encoded).source_url == url
    with pytest.raises(InvalidURLError):
        parse("/" + encoded.replace("-", "+"))


BAD_SOURCES = [
    "",
    "/",
    "/rs:fit:1:1",
    "/rs:fit:1:1/",
    "/w:1//plain/" + SRC,
    "/plain",
    "/plain/",
    "/plain/@png",
    f"/plain/{SRC}@png@jpg",
    f"/plain/{SRC}@xyz",
    "/plain/http://example.com/%zz.jpg",  # invalid escape
    "/plain/http://example.com/100%.jpg",  # lone %
    "/plain/http://example.com/%ff.jpg",  # not UTF-8 once decoded
    f"/{CURIOSITY_B64}.png.jpg",
    f"/{CURIOSITY_B64}.xyz",
    "/.png",
    "/aHR0c",  # length ≡ 1 (mod 4)
    "/aHR0c!!",
    "/_w",  # decodes to 0xFF: not UTF-8
    "/aH=R0",
    "/enc/abcdef",  # encrypted source URLs are Pro only
]


@pytest.mark.parametrize("path", BAD_SOURCES)
def test_bad_source_raises(path: str) -> None:
    with pytest.raises(InvalidURLError):
        parse(path)


@pytest.mark.parametrize("rt", ["fit", "fill", "fill-down", "force", "auto"])
def test_deprecated_basic_format_is_rejected(rt: str) -> None:
    with pytest.raises(InvalidURLError):
        parse(f"/{rt}/300/300/no/0/{CURIOSITY_B64}.png")
    with pytest.raises(InvalidURLError):
        parse(f"/{rt}/300/300/no/0/plain/{SRC}")


def test_segments_after_the_source_start_are_source_even_with_colons() -> None:
    parsed = parse("/w:10/plain/http://example.com:8080/a:b.jpg")
    assert parsed.source_url == "http://example.com:8080/a:b.jpg"
    assert parsed.options == with_(width=10)


# --------------------------------------------------------------------------------------------
# split_signature: re-normalisation (§1.2)
# --------------------------------------------------------------------------------------------

SPLIT_CASES: list[tuple[str, str, str]] = [
    ("/sig/rs:fit:1:1/plain/http://x.com/a.jpg", "sig", "/rs:fit:1:1/plain/http://x.com/a.jpg"),
    ("sig/w:1/plain/http://x.com/a.jpg", "sig", "/w:1/plain/http://x.com/a.jpg"),
    # %3A (uppercase only) in the options part becomes ':'
    ("/sig/rs%3Afit%3A300%3A300/plain/http://x.com/a.jpg", "sig", "/rs:fit:300:300/plain/http://x.com/a.jpg"),
    ("/sig/rs%3afit%3a300/plain/http://x.com/a.jpg", "sig", "/rs%3afit%3a300/plain/http://x.com/a.jpg"),
    # ... but not inside the plain URL
    ("/sig/w%3A1/plain/http://x.com/a%3Ab.jpg", "sig", "/w:1/plain/http://x.com/a%3Ab.jpg"),
    # and in a base64 path everything is "options part"
    (f"/sig/w%3A1/{CURIOSITY_B64}.png", "sig", f"/w:1/{CURIOSITY_B64}.png"),
    # scheme:/x → scheme://x, local:/x → local:///x
    ("/sig/w:1/plain/https:/x.com/a.jpg", "sig", "/w:1/plain/https://x.com/a.jpg"),
    ("/sig/w:1/plain/http:/x.com/a.jpg@png", "sig", "/w:1/plain/http://x.com/a.jpg@png"),
    ("/sig/w:1/plain/local:/dir/a.jpg", "sig", "/w:1/plain/local:///dir/a.jpg"),
    ("/sig/w:1/plain/https://x.com/a.jpg", "sig", "/w:1/plain/https://x.com/a.jpg"),
    ("/sig/w:1/plain/local:///dir/a.jpg", "sig", "/w:1/plain/local:///dir/a.jpg"),
    # Our addition: also repaired without options (imgproxy v4 only repairs after "/plain/").
    ("/sig/plain/https:/x.com/a.jpg", "sig", "/plain/https://x.com/a.jpg"),
]


@pytest.mark.parametrize(("raw", "sig", "rest"), SPLIT_CASES, ids=[c[0] for c in SPLIT_CASES])
def test_split_signature(raw: str, sig: str, rest: str) -> None:
    assert split_signature(raw) == (sig, rest)


def test_split_signature_with_prefix() -> None:
    assert split_signature("/img/sig/w:1/plain/http://x.com/a.jpg", "/img") == (
        "sig",
        "/w:1/plain/http://x.com/a.jpg",
    )
    for raw in ("/imgsig/w:1/plain/x", "/other/sig/w:1/plain/x", "/img"):
        with pytest.raises(InvalidURLError):
            split_signature(raw, "/img")


@pytest.mark.parametrize("raw", ["", "/", "/abc", "//x", "/sig/", "//sig/w:1/plain/http://x.com/a.jpg"])
def test_split_signature_rejects_missing_parts(raw: str) -> None:
    with pytest.raises(InvalidURLError):
        split_signature(raw)


def test_mangled_url_parses_like_the_original() -> None:
    _, path = split_signature("/insecure/rs%3Afill%3A300%3A200/plain/https:/example.com/a.jpg@png")
    parsed = PARSER.parse(path)
    assert parsed.source_url == "https://example.com/a.jpg"
    assert parsed.options == with_(resizing_type=RT.FILL, width=300, height=200, format=ImageFormat.PNG)


# --------------------------------------------------------------------------------------------
# canonical(): equal for equivalent URLs, different otherwise
# --------------------------------------------------------------------------------------------

EQUIVALENT: list[list[str]] = [
    [
        "rs:fill:300:200",
        "resize:fill:300:200",
        "rt:fill/w:300/h:200",
        "h:200/w:300/rt:fill",
        "s:300:200/rt:fill",
        "rt:fill/size:300:200",
        "w:100/rs:fill:300:200",
        "resizing_type:fill/width:300/height:200",
    ],
    ["", "g:ce", "g:ce:0:0", "dpr:1", "z:1", "ex:0", "exar:0", "cb:", "exp:0", "q:0", "el:0", "c:0:0"],
    ["", "ar:1", "sm:1", "kcr:1", "scp:1", "att:0", "fq:webp:0", "mw:0", "s:0:0"],
    ["g:sm", "gravity:sm", "g:no/g:sm", "g:no:5:5/g:sm"],
    ["q:90", "q:80/q:90", "quality:90"],
    ["f:jpg", "f:jpeg", "format:jpeg", "ext:jpg", "f:png/f:JPG"],
    ["z:2", "z:2:2", "zoom:2.0", "z:2e0"],
    ["el:1", "el:t", "el:true", "enlarge:True", "s:::1"],
    ["fq:webp:70:avif:50", "fq:avif:50/fq:webp:70", "fq:avif:50:webp:10/fq:webp:70"],
    ["ex:1:so", "extend:t:so:0:0", "s:::0:1:so"],
    ["mw:10", "min-width:10"],
    ["g:no:0.5:10", "g:no:.5:10.0", "gravity:no:5e-1:1e1"],
]


@pytest.mark.parametrize("group", EQUIVALENT, ids=[g[0] or "defaults" for g in EQUIVALENT])
def test_canonical_equal_for_equivalent_urls(group: list[str]) -> None:
    canon = {options(opts).canonical() for opts in group}
    assert len(canon) == 1, canon


def test_canonical_of_defaults_is_empty_and_extension_counts_as_format() -> None:
    assert DEFAULT.canonical() == ""
    assert parse(f"/plain/{SRC}@jpg").options.canonical() == options("f:jpeg").canonical()


DISTINCT = [
    "",
    "w:300",
    "h:300",
    "mw:300",
    "mh:300",
    "rs:fit:300:200",
    "rs:fill:300:200",
    "rs:fill-down:300:200",
    "rs:force:300:200",
    "rs:auto:300:200",
    "z:2",
    "z:2:1",
    "z:1:2",
    "dpr:2",
    "el:1",
    "ex:1",
    "exar:1",
    "ex:1:no",
    "ex:1:no:1:0",
    "g:no",
    "g:no:1:0",
    "g:no:0:1",
    "g:sm",
    "g:fp:0.5:0.5",
    "c:100:100",
    "c:100:100:no",
    "c:100:50",
    "c:0.5:0.5",
    "ar:0",
    "sm:0",
    "kcr:0",
    "scp:0",
    "att:1",
    "q:1",
    "q:2",
    "fq:webp:70",
    "fq:avif:70",
    "fq:webp:71",
    "f:png",
    "f:webp",
    "cb:a",
    "cb:b",
    "cb:a;w=5",
    "cb:a%3Bw=5",
    "fn:a",
    "fn:a;b",
    "fn:a%3Bb",
    "fn:a%253Bb",
    f"exp:{FUTURE}",
    f"exp:{FUTURE + 1}",
]


def test_canonical_differs_for_different_options() -> None:
    canon = [options(opts).canonical() for opts in DISTINCT]
    seen: dict[str, str] = {}
    for opts, c in zip(DISTINCT, canon, strict=True):
        assert c not in seen, f"{opts!r} and {seen.get(c)!r} share the canonical form {c!r}"
        seen[c] = opts
