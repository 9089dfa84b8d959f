"""One small function per URL option; ``APPLIERS`` maps every name and alias to it.

Each applier validates its arguments and replaces fields of the frozen options in the
parse state. Any bad argument raises InvalidOptionError: nothing is silently dropped.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from imgproxy_py.errors import ExpiredURLError, InvalidOptionError, SecurityOptionError
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.options import usage
from imgproxy_py.options.model import (
    AutoQuality,
    Color,
    Crop,
    Detections,
    Extend,
    Gravity,
    GravityType,
    Padding,
    ProcessingOptions,
    ResizingType,
    Trim,
    Watermark,
    evolve,
)
from imgproxy_py.settings import parse_bool


@dataclass(slots=True)
class ParseState:
    """What appliers read and write while one path is parsed.

    Appliers ``set`` fields; the changes are collected and the frozen options are built
    once, when ``po`` is read (at the end of the parse, or by an applier that needs a
    current value): one copy of the 50-odd fields per path instead of one per option.
    """

    base: ProcessingOptions
    presets: Mapping[str, Sequence[tuple[str, list[str]]]]
    applied_presets: list[str] = field(default_factory=list)  # every preset applied, in order
    preset_chain: list[str] = field(default_factory=list)  # presets being applied right now
    now: float = field(default_factory=time.time)
    allow_security: bool = False  # IMGPROXY_ALLOW_SECURITY_OPTIONS
    changes: dict[str, Any] = field(default_factory=dict)  # fields set since ``base`` was built

    def set(self, **changes: Any) -> None:
        """Replace option fields (applied in order: a later value wins)."""
        self.changes.update(changes)

    def current(self, name: str) -> Any:
        """One field's current value, without building the options."""
        changes = self.changes
        return changes[name] if name in changes else getattr(self.base, name)

    @property
    def po(self) -> ProcessingOptions:
        """The options as parsed so far (built here, once per batch of changes)."""
        if self.changes:
            self.base = evolve(self.base, **self.changes)
            self.changes = {}
        return self.base


Applier = Callable[[ParseState, list[str]], None]


def _fail(name: str, message: str) -> InvalidOptionError:
    return InvalidOptionError(f"{name}: {message}")


def _max_args(name: str, args: list[str], n: int) -> None:
    if len(args) > n:
        raise _fail(name, f"takes at most {n} arguments, got {len(args)}")


def _exact_args(name: str, args: list[str], n: int) -> None:
    if len(args) != n:
        raise _fail(name, f"takes {n} argument(s), got {len(args)}")


_INT = re.compile(r"[+-]?[0-9]{1,18}")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")


def parse_int(name: str, value: str, *, lo: int = 0, hi: int | None = None) -> int:
    """Go's strconv.Atoi: optional sign and digits only (Python's int() also takes spaces and _)."""
    if not _INT.fullmatch(value):
        raise _fail(name, f"invalid integer {value!r}")
    number = int(value)
    if number < lo or (hi is not None and number > hi):
        raise _fail(name, f"{number} is out of range")
    return number


def parse_float(name: str, value: str, *, lo: float = 0.0, lo_open: bool = False) -> float:
    """A finite decimal number; NaN and infinities are refused (imgproxy lets them through)."""
    if not _FLOAT.fullmatch(value):
        raise _fail(name, f"invalid number {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < lo or (lo_open and number == lo):
        raise _fail(name, f"{value} is out of range")
    return number


def parse_flag(name: str, value: str) -> bool:
    parsed = parse_bool(value)
    if parsed is None:
        raise _fail(name, f"invalid boolean {value!r}")
    return parsed


def _dimension(name: str, value: str) -> int:
    return parse_int(name, value, lo=0, hi=1_000_000)


def parse_gravity(
    name: str,
    args: list[str],
    *,
    allow_smart: bool = True,
    allow_object: bool = False,
    previous: Gravity | None = None,
    nested: bool = False,
) -> Gravity:
    """``type[:x[:y]]``; an omitted or empty offset keeps the previous one (imgproxy), ``sm`` clears them.

    ``allow_smart`` allows ``sm`` and ``obj``/``objw``; ``allow_object`` only the object ones
    (``ex``/``exar``: the image is placed so the faces sit as near the canvas centre as it can).

    Inside another option (``c:w:h:…``, ``ex:1:…``, ``nested``) an empty type keeps the previous type
    too, as imgproxy reads an empty argument as "not given" (``c:50:50:ce::10``, ``ex:1:no::5``).
    """
    previous = previous or Gravity()
    if not args or (not args[0] and not nested):
        raise _fail(name, "gravity type is missing")
    if args[0] == "objw":
        if not (allow_smart or allow_object):
            raise _fail(name, "object gravity is not allowed here")
        return Gravity(GravityType.OBJECT, weights=class_weights(name, args[1:]))
    if not args[0]:
        gtype = previous.type
    else:
        try:
            gtype = GravityType(args[0])
        except ValueError:
            raise _fail(name, f"unknown gravity {args[0]!r}") from None
    if gtype is GravityType.REPLICATE:
        raise _fail(name, "'re' is a watermark position only")
    if gtype is GravityType.OBJECT:
        if not (allow_smart or allow_object):
            raise _fail(name, "object gravity is not allowed here")
        return Gravity(gtype, classes=detection_classes(name, args[1:]))
    if gtype is GravityType.SMART:
        if not allow_smart:
            raise _fail(name, "smart gravity is not allowed here")
        _exact_args(name, args, 1)
        return Gravity(gtype)
    if gtype is GravityType.FOCUS_POINT:
        _exact_args(name, args, 3)
        x = parse_float(name, args[1]) if args[1] else previous.x
        y = parse_float(name, args[2]) if args[2] else previous.y
        if x > 1 or y > 1:
            raise _fail(name, "focus point coordinates must be within 0..1")
        return Gravity(gtype, x, y)
    _max_args(name, args, 3)
    x = _offset(name, args[1]) if len(args) > 1 and args[1] else previous.x
    y = _offset(name, args[2]) if len(args) > 2 and args[2] else previous.y
    return Gravity(gtype, x, y)


DETECTION_CLASSES = frozenset({"face"})  # what the bundled detector finds ("all" means every one)


def detection_classes(name: str, args: list[str]) -> tuple[str, ...]:
    """Class names of ``g:obj``, ``bd`` and ``dd``; none or ``all`` means every class (stored as empty)."""
    classes = set()
    for arg in args:
        if arg == "all" or not arg:
            continue
        if arg not in DETECTION_CLASSES:
            raise _fail(name, f"unknown detection class {arg!r} (known: {', '.join(sorted(DETECTION_CLASSES))})")
        classes.add(arg)
    if classes == DETECTION_CLASSES:
        return ()
    return tuple(sorted(classes))


def class_weights(name: str, args: list[str]) -> tuple[tuple[str, float], ...]:
    """``objw``'s ``class:weight`` pairs (``all`` sets every class not named; the default weight is 1)."""
    if not args or len(args) % 2:
        raise _fail(name, "objw takes class:weight pairs")
    weights: dict[str, float] = {}
    for label, text in zip(args[::2], args[1::2], strict=True):
        if label != "all" and label not in DETECTION_CLASSES:
            raise _fail(name, f"unknown detection class {label!r} (known: all, {', '.join(sorted(DETECTION_CLASSES))})")
        weights[label] = parse_float(name, text)  # ≥ 0; 0 ignores that class
    return tuple(sorted(weights.items()))


def _offset(name: str, value: str) -> float:
    if not _FLOAT.fullmatch(value) or not math.isfinite(number := float(value)):
        raise _fail(name, f"invalid offset {value!r}")
    return number


def _extend(name: str, args: list[str], previous: Extend) -> Extend:
    _max_args(name, args, 4)
    enabled = parse_flag(name, args[0]) if args and args[0] else False
    gravity = previous.gravity
    if len(args) > 1:
        gravity = parse_gravity(name, args[1:], allow_smart=False, allow_object=True, previous=gravity, nested=True)
    return Extend(enabled, gravity)


# --- appliers -----------------------------------------------------------------------------


def apply_width(st: ParseState, args: list[str]) -> None:
    _exact_args("width", args, 1)
    st.set(width=_dimension("width", args[0]))


def apply_height(st: ParseState, args: list[str]) -> None:
    _exact_args("height", args, 1)
    st.set(height=_dimension("height", args[0]))


def apply_min_width(st: ParseState, args: list[str]) -> None:
    _exact_args("min-width", args, 1)
    st.set(min_width=_dimension("min-width", args[0]))


def apply_min_height(st: ParseState, args: list[str]) -> None:
    _exact_args("min-height", args, 1)
    st.set(min_height=_dimension("min-height", args[0]))


def apply_enlarge(st: ParseState, args: list[str]) -> None:
    _exact_args("enlarge", args, 1)
    st.set(enlarge=parse_flag("enlarge", args[0]))


def apply_extend(st: ParseState, args: list[str]) -> None:
    st.set(extend=_extend("extend", args, st.current("extend")))


def apply_extend_aspect_ratio(st: ParseState, args: list[str]) -> None:
    st.set(extend_aspect_ratio=_extend("extend_aspect_ratio", args, st.current("extend_aspect_ratio")))


def apply_resizing_type(st: ParseState, args: list[str]) -> None:
    _exact_args("resizing_type", args, 1)
    try:
        st.set(resizing_type=ResizingType(args[0]))
    except ValueError:
        raise _fail("resizing_type", f"unknown resizing type {args[0]!r}") from None


def apply_size(st: ParseState, args: list[str]) -> None:
    """``s:width:height:enlarge:extend:…``; empty arguments keep the current value."""
    _max_args("size", args, 7)
    if len(args) > 0 and args[0]:
        apply_width(st, args[0:1])
    if len(args) > 1 and args[1]:
        apply_height(st, args[1:2])
    if len(args) > 2 and args[2]:
        apply_enlarge(st, args[2:3])
    if len(args) > 3 and args[3]:
        apply_extend(st, args[3:])


def apply_resize(st: ParseState, args: list[str]) -> None:
    """``rs:type:width:height:enlarge:extend:…``; empty arguments keep the current value."""
    _max_args("resize", args, 8)
    if args and args[0]:
        apply_resizing_type(st, args[0:1])
    if len(args) > 1:
        apply_size(st, args[1:])


def apply_zoom(st: ParseState, args: list[str]) -> None:
    if len(args) not in (1, 2):
        raise _fail("zoom", "takes 1 or 2 arguments")
    zw = parse_float("zoom", args[0], lo_open=True)
    zh = parse_float("zoom", args[1], lo_open=True) if len(args) == 2 else zw
    st.set(zoom_width=zw, zoom_height=zh)


def apply_dpr(st: ParseState, args: list[str]) -> None:
    _exact_args("dpr", args, 1)
    st.set(dpr=parse_float("dpr", args[0], lo_open=True))


def apply_gravity(st: ParseState, args: list[str]) -> None:
    st.set(gravity=parse_gravity("gravity", args, previous=st.current("gravity")))


def apply_crop(st: ParseState, args: list[str]) -> None:
    """``c:width[:height[:gravity...]]``; like imgproxy, parts not given keep their current value."""
    _max_args("crop", args, 5)
    current: Crop = st.current("crop")
    width = parse_float("crop", args[0])
    height = parse_float("crop", args[1]) if len(args) > 1 and args[1] else current.height
    gravity = current.gravity
    if len(args) > 2:
        gravity = parse_gravity("crop", args[2:], previous=gravity, nested=True)
    st.set(crop=Crop(width, height, gravity))


def _bool_applier(option: str, attr: str) -> Applier:
    def apply(st: ParseState, args: list[str]) -> None:
        _exact_args(option, args, 1)
        changes: dict[str, Any] = {attr: parse_flag(option, args[0])}
        st.set(**changes)

    return apply


def apply_quality(st: ParseState, args: list[str]) -> None:
    _exact_args("quality", args, 1)
    st.set(quality=parse_int("quality", args[0], lo=0, hi=100))


def apply_format_quality(st: ParseState, args: list[str]) -> None:
    if not args or len(args) % 2:
        raise _fail("format_quality", "expects format:quality pairs")
    pairs: dict[ImageFormat, int] = dict(st.current("format_quality"))
    for fmt_name, q in zip(args[::2], args[1::2], strict=True):
        fmt = ImageFormat.from_name(fmt_name)
        if fmt is None:
            raise _fail("format_quality", f"unknown format {fmt_name!r}")
        pairs[fmt] = parse_int("format_quality", q, lo=0, hi=100)
    ordered = tuple(sorted(((f, q) for f, q in pairs.items() if q > 0), key=lambda p: p[0].value))
    st.set(format_quality=ordered)


def apply_format(st: ParseState, args: list[str]) -> None:
    _exact_args("format", args, 1)
    if args[0].lower() == "best":
        st.set(format=None, format_best=True)
        return
    fmt = ImageFormat.from_name(args[0])
    if fmt is None:
        raise _fail("format", f"unknown format {args[0]!r}")
    st.set(format=fmt, format_best=False)


def apply_cachebuster(st: ParseState, args: list[str]) -> None:
    _max_args("cachebuster", args, 1)
    st.set(cachebuster=args[0] if args else "")


def apply_expires(st: ParseState, args: list[str]) -> None:
    _exact_args("expires", args, 1)
    stamp = parse_int("expires", args[0], lo=-(2**62))
    if stamp > 0 and stamp < st.now:
        raise ExpiredURLError("the URL has expired")
    st.set(expires=max(stamp, 0))


def apply_filename(st: ParseState, args: list[str]) -> None:
    if len(args) not in (1, 2):
        raise _fail("filename", "takes a name and an optional 'encoded' flag")
    name = args[0]
    if len(args) == 2 and args[1] and parse_flag("filename", args[1]):
        name = _decode_base64url("filename", name)
    st.set(filename=name)


_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def _decode_base64url(name: str, value: str) -> str:
    """Go's RawURLEncoding after trimming ``=``: ``+``, ``/`` and stray characters are errors."""
    value = value.rstrip("=")
    if not _BASE64URL.fullmatch(value) or len(value) % 4 == 1:
        raise _fail(name, "invalid base64url value")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, ValueError):
        raise _fail(name, "invalid base64url value") from None


def apply_preset(st: ParseState, args: list[str]) -> None:
    if not args:
        raise _fail("preset", "at least one preset name is required")
    for name in args:
        if name not in st.presets:
            raise _fail("preset", f"unknown preset {name!r}")
        if name in st.preset_chain:  # recursion: skip, as imgproxy does (a repeat outside the chain applies)
            continue
        st.applied_presets.append(name)
        st.preset_chain.append(name)
        try:
            for option, option_args in st.presets[name]:
                apply_option(st, option, option_args)
        finally:
            st.preset_chain.pop()


# --- trim, padding, rotation, colour and filters -----------------------------------------

_HEX_COLOR = re.compile(r"[0-9a-fA-F]{3}|[0-9a-fA-F]{6}")
_UINT8 = re.compile(r"[0-9]+")


def parse_hex_color(name: str, value: str) -> Color:
    """``rgb`` or ``rrggbb`` without ``#``; a 3-digit channel ``f`` means ``ff`` (imgproxy RGBFromHex)."""
    if not _HEX_COLOR.fullmatch(value):
        raise _fail(name, f"invalid hex colour {value!r}")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    return Color(int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16))


def _channel(name: str, value: str) -> int:
    if not _UINT8.fullmatch(value) or int(value) > 255:
        raise _fail(name, f"colour channel {value!r} is not 0..255")
    return int(value)


def apply_trim(st: ParseState, args: list[str]) -> None:
    """``t:threshold:colour:equal_hor:equal_ver``; an empty threshold switches trim off (v4)."""
    _max_args("trim", args, 4)
    current: Trim = st.current("trim")
    threshold = parse_float("trim", args[0], lo=-math.inf) if args[0] else None
    color = parse_hex_color("trim", args[1]) if len(args) > 1 and args[1] else None
    equal_hor = parse_flag("trim", args[2]) if len(args) > 2 and args[2] else current.equal_hor
    equal_ver = parse_flag("trim", args[3]) if len(args) > 3 and args[3] else current.equal_ver
    st.set(trim=Trim(threshold, color, equal_hor, equal_ver))


def apply_padding(st: ParseState, args: list[str]) -> None:
    """CSS order; a missing right/bottom copies top, a missing left copies right; empty top keeps it."""
    _max_args("padding", args, 4)
    top = _dimension("padding", args[0]) if args[0] else st.current("padding").top
    right = _dimension("padding", args[1]) if len(args) > 1 and args[1] else top
    bottom = _dimension("padding", args[2]) if len(args) > 2 and args[2] else top
    left = _dimension("padding", args[3]) if len(args) > 3 and args[3] else right
    st.set(padding=Padding(top, right, bottom, left))


def apply_rotate(st: ParseState, args: list[str]) -> None:
    _exact_args("rotate", args, 1)
    angle = parse_int("rotate", args[0], lo=-(2**62))
    if angle % 90:
        raise _fail("rotate", "the angle must be a multiple of 90")
    st.set(rotate=angle % 360)  # -90 and 270 are the same rotation: one canonical form


def apply_flip(st: ParseState, args: list[str]) -> None:
    _max_args("flip", args, 2)
    horizontal = parse_flag("flip", args[0]) if args[0] else st.current("flip_horizontal")
    vertical = parse_flag("flip", args[1]) if len(args) > 1 and args[1] else st.current("flip_vertical")
    st.set(flip_horizontal=horizontal, flip_vertical=vertical)


def apply_background(st: ParseState, args: list[str]) -> None:
    """``bg:R:G:B`` or ``bg:hex``; ``bg:`` (one empty argument) switches flattening off again."""
    if len(args) == 1:
        color = parse_hex_color("background", args[0]) if args[0] else None
    elif len(args) == 3:
        color = Color(*(_channel("background", a) for a in args))
    else:
        raise _fail("background", "takes R:G:B or one hex colour")
    st.set(background=color)


def apply_blur(st: ParseState, args: list[str]) -> None:
    _exact_args("blur", args, 1)
    st.set(blur=parse_float("blur", args[0]))  # 0: off (imgproxy accepts it)


def apply_sharpen(st: ParseState, args: list[str]) -> None:
    _exact_args("sharpen", args, 1)
    st.set(sharpen=parse_float("sharpen", args[0]))  # 0: off (imgproxy accepts it)


def apply_pixelate(st: ParseState, args: list[str]) -> None:
    _exact_args("pixelate", args, 1)
    size = parse_int("pixelate", args[0])
    st.set(pixelate=size if size > 1 else 0)


_WATERMARK_POSITIONS = {g.value: g for g in GravityType if g not in (GravityType.SMART, GravityType.FOCUS_POINT)}


def apply_watermark(st: ParseState, args: list[str]) -> None:
    """``wm:opacity:position:x:y:scale``; empty parts keep their value, two more (Pro) are ignored."""
    _max_args("watermark", args, 7)
    current: Watermark = st.current("watermark")
    opacity = parse_float("watermark", args[0])
    if opacity > 1:
        raise _fail("watermark", "opacity must be within 0..1")
    position = current.position
    if len(args) > 1 and args[1]:
        if args[1] not in _WATERMARK_POSITIONS:
            raise _fail("watermark", f"unknown position {args[1]!r}")
        position = _WATERMARK_POSITIONS[args[1]]
    x = _offset("watermark", args[2]) if len(args) > 2 and args[2] else current.x
    y = _offset("watermark", args[3]) if len(args) > 3 and args[3] else current.y
    scale = parse_float("watermark", args[4], lo_open=True) if len(args) > 4 and args[4] else current.scale
    st.set(watermark=Watermark(opacity, position, x, y, scale))


# --- detections and perceptual quality (imgproxy Pro's syntax) -----------------------------


def apply_blur_detections(st: ParseState, args: list[str]) -> None:
    """``bd:sigma[:class…]``; a zero sigma switches it off."""
    if not args:
        raise _fail("blur_detections", "the sigma is missing")
    sigma = parse_float("blur_detections", args[0])
    classes = detection_classes("blur_detections", args[1:])
    st.set(blur_detections=Detections(sigma > 0, sigma, classes))


def apply_draw_detections(st: ParseState, args: list[str]) -> None:
    """``dd:draw[:class…]``: outline detected objects (debugging)."""
    if not args:
        raise _fail("draw_detections", "the flag is missing")
    enabled = parse_flag("draw_detections", args[0])
    classes = detection_classes("draw_detections", args[1:])
    st.set(draw_detections=Detections(enabled, 0.0, classes))


AUTOQUALITY_METHODS = frozenset({"none", "dssim", "ml"})


def apply_autoquality(st: ParseState, args: list[str]) -> None:
    """``aq:method[:target[:min_q[:max_q[:allowed_error]]]]``; empty parts take the configured values."""
    _max_args("autoquality", args, 5)
    method = args[0] if args else ""
    if method not in AUTOQUALITY_METHODS:
        raise _fail("autoquality", f"unsupported method {method!r} (supported: dssim, ml, none)")
    target = parse_float("autoquality", args[1], lo_open=True) if len(args) > 1 and args[1] else 0.0
    if target >= 1:
        raise _fail("autoquality", "the DSSIM target must be below 1")
    min_q = parse_int("autoquality", args[2], lo=1, hi=100) if len(args) > 2 and args[2] else 0
    max_q = parse_int("autoquality", args[3], lo=1, hi=100) if len(args) > 3 and args[3] else 0
    if min_q and max_q and min_q > max_q:
        raise _fail("autoquality", "min quality is above max quality")
    error = parse_float("autoquality", args[4]) if len(args) > 4 and args[4] else 0.0
    st.set(autoquality=AutoQuality(method, target, min_q, max_q, error))


# --- output and handling ------------------------------------------------------------------


def apply_max_bytes(st: ParseState, args: list[str]) -> None:
    _exact_args("max_bytes", args, 1)
    st.set(max_bytes=parse_int("max_bytes", args[0]))


def apply_skip_processing(st: ParseState, args: list[str]) -> None:
    """Formats to return untouched; they add to IMGPROXY_SKIP_PROCESSING_FORMATS (and earlier ``skp``)."""
    formats: set[ImageFormat] = set(st.current("skip_processing"))
    for fmt_name in args:
        fmt = ImageFormat.from_name(fmt_name) if fmt_name else None
        if fmt is None:
            raise _fail("skip_processing", f"unknown format {fmt_name!r}")
        formats.add(fmt)
    st.set(skip_processing=frozenset(formats))


# --- security options (only with IMGPROXY_ALLOW_SECURITY_OPTIONS) --------------------------


def _security_gate(st: ParseState, name: str, args: list[str]) -> str:
    if not st.allow_security:
        raise SecurityOptionError(f"{name}: security options are not allowed (IMGPROXY_ALLOW_SECURITY_OPTIONS)")
    _exact_args(name, args, 1)
    return args[0]


def _megapixels(name: str, value: str) -> int:
    return int(parse_float(name, value) * 1_000_000)


def apply_max_src_resolution(st: ParseState, args: list[str]) -> None:
    value = _security_gate(st, "max_src_resolution", args)
    st.set(max_src_resolution=_megapixels("max_src_resolution", value))


def apply_max_src_file_size(st: ParseState, args: list[str]) -> None:
    value = _security_gate(st, "max_src_file_size", args)
    st.set(max_src_file_size=parse_int("max_src_file_size", value, lo=-(2**62)))


def apply_max_animation_frames(st: ParseState, args: list[str]) -> None:
    value = _security_gate(st, "max_animation_frames", args)
    st.set(max_animation_frames=parse_int("max_animation_frames", value, lo=1))


def apply_max_animation_frame_resolution(st: ParseState, args: list[str]) -> None:
    value = _security_gate(st, "max_animation_frame_resolution", args)
    st.set(max_animation_frame_resolution=_megapixels("max_animation_frame_resolution", value))


def apply_max_result_dimension(st: ParseState, args: list[str]) -> None:
    value = _security_gate(st, "max_result_dimension", args)
    st.set(max_result_dimension=parse_int("max_result_dimension", value, lo=-(2**62)))


def apply_video_thumbnail_second(st: ParseState, args: list[str]) -> None:
    """``vts:<seconds>`` (imgproxy Pro's option): the time of the still taken from a video source."""
    _exact_args("video_thumbnail_second", args, 1)
    st.set(video_thumbnail_second=parse_float("video_thumbnail_second", args[0]))


def apply_option(st: ParseState, name: str, args: list[str]) -> None:
    applier = APPLIERS.get(name)
    if applier is None:
        raise InvalidOptionError(f"unknown option {name!r}", hint=unknown_option_hint(name))
    try:
        applier(st, args)
    except InvalidOptionError as exc:
        if not exc.hint:
            exc.hint = option_hint(name)
        raise


def unknown_option_hint(name: str) -> str:
    """For development error bodies: the nearest option name (``rz`` → ``rs``)."""
    near = usage.nearest(name, APPLIERS)
    if near is None:
        return "see the option list in the README"
    return f"did you mean {near!r} ({FULL_NAMES[near]}: {usage.SYNTAX.get(FULL_NAMES[near], '')})?"


def option_hint(name: str) -> str:
    """For development error bodies: what the option expects."""
    full = FULL_NAMES.get(name, name)
    syntax = usage.SYNTAX.get(full)
    return f"expected {syntax}" if syntax else ""


APPLIERS: dict[str, Applier] = {}
FULL_NAMES: dict[str, str] = {}  # every name and alias → the option's full name


def _register(applier: Applier, *names: str) -> None:
    for name in names:
        APPLIERS[name] = applier
        FULL_NAMES[name] = names[0]


_register(apply_resize, "resize", "rs")
_register(apply_size, "size", "s")
_register(apply_resizing_type, "resizing_type", "rt")
_register(apply_width, "width", "w")
_register(apply_height, "height", "h")
_register(apply_min_width, "min-width", "min_width", "mw")
_register(apply_min_height, "min-height", "min_height", "mh")
_register(apply_zoom, "zoom", "z")
_register(apply_dpr, "dpr")
_register(apply_enlarge, "enlarge", "el")
_register(apply_extend, "extend", "ex")
_register(apply_extend_aspect_ratio, "extend_aspect_ratio", "extend_ar", "exar")
_register(apply_gravity, "gravity", "g")
_register(apply_crop, "crop", "c")
_register(_bool_applier("auto_rotate", "auto_rotate"), "auto_rotate", "ar")
_register(_bool_applier("strip_metadata", "strip_metadata"), "strip_metadata", "sm")
_register(_bool_applier("keep_copyright", "keep_copyright"), "keep_copyright", "kcr")
_register(_bool_applier("strip_color_profile", "strip_color_profile"), "strip_color_profile", "scp")
_register(_bool_applier("return_attachment", "return_attachment"), "return_attachment", "att")
_register(_bool_applier("raw", "raw"), "raw")
_register(_bool_applier("preserve_hdr", "preserve_hdr"), "preserve_hdr", "ph")
_register(apply_quality, "quality", "q")
_register(apply_format_quality, "format_quality", "fq")
_register(apply_format, "format", "f", "ext")
_register(apply_cachebuster, "cachebuster", "cb")
_register(apply_expires, "expires", "exp")
_register(apply_filename, "filename", "fn")
_register(apply_preset, "preset", "pr")
_register(apply_trim, "trim", "t")
_register(apply_padding, "padding", "pd")
_register(apply_rotate, "rotate", "rot")
_register(apply_flip, "flip", "fl")
_register(apply_background, "background", "bg")
_register(apply_blur, "blur", "bl")
_register(apply_sharpen, "sharpen", "sh")
_register(apply_pixelate, "pixelate", "pix")
_register(apply_watermark, "watermark", "wm")
_register(_bool_applier("enforce_thumbnail", "enforce_thumbnail"), "enforce_thumbnail", "eth")
_register(apply_max_bytes, "max_bytes", "mb")
_register(apply_skip_processing, "skip_processing", "skp")
_register(apply_max_src_resolution, "max_src_resolution", "msr")
_register(apply_max_src_file_size, "max_src_file_size", "msfs")
_register(apply_max_animation_frames, "max_animation_frames", "maf")
_register(apply_max_animation_frame_resolution, "max_animation_frame_resolution", "mafr")
_register(apply_max_result_dimension, "max_result_dimension", "mrd")
_register(apply_blur_detections, "blur_detections", "bd")
_register(apply_draw_detections, "draw_detections", "dd")
_register(apply_autoquality, "autoquality", "aq")
_register(apply_video_thumbnail_second, "video_thumbnail_second", "vts")
