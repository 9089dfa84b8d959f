"""The parsed processing options: one frozen, typed object with a canonical form.

``canonical()`` lists every field that differs from its default in a fixed order, so two
URLs that mean the same thing (aliases, option order, overridden values, presets) give
the same string. It is the options part of cache keys and ETags.
"""

from __future__ import annotations

import enum
import operator
from dataclasses import dataclass, field, fields
from typing import Any

from imgproxy_py.imagetype import ImageFormat


class ResizingType(enum.Enum):
    FIT = "fit"
    FILL = "fill"
    FILL_DOWN = "fill-down"
    FORCE = "force"
    AUTO = "auto"


class GravityType(enum.Enum):
    CENTER = "ce"
    NORTH = "no"
    SOUTH = "so"
    EAST = "ea"
    WEST = "we"
    NORTH_EAST = "noea"
    NORTH_WEST = "nowe"
    SOUTH_EAST = "soea"
    SOUTH_WEST = "sowe"
    SMART = "sm"
    FOCUS_POINT = "fp"
    OBJECT = "obj"  # detected objects (faces); centre when none (imgproxy Pro's object-oriented crop)
    REPLICATE = "re"  # watermark position only: tile the watermark over the image


@dataclass(frozen=True, slots=True)
class Gravity:
    """Where to anchor a crop; offsets ≥1 are pixels, <1 fractions; for ``fp`` x,y are 0..1."""

    type: GravityType = GravityType.CENTER
    x: float = 0.0
    y: float = 0.0
    classes: tuple[str, ...] = ()  # ``obj``: the detection classes to keep (empty: all)
    weights: tuple[tuple[str, float], ...] = ()  # ``objw``: (class or "all", weight), sorted; default weight 1

    def canonical(self) -> str:
        text = f"{self.type.value}:{_num(self.x)}:{_num(self.y)}"
        if self.classes:
            text = f"{text}:{','.join(self.classes)}"
        if self.weights:
            text = f"{text}:w={','.join(f'{name}={_num(weight)}' for name, weight in self.weights)}"
        return text

    def class_weights(self) -> dict[str, float] | None:
        """Weight per class for ``objw`` (``"all"``: every class not named); None: every class weighs 1."""
        return dict(self.weights) if self.weights else None


@dataclass(frozen=True, slots=True)
class Crop:
    """Crop before resizing; sizes ≥1 are pixels, <1 fractions of the source, 0 the full side."""

    width: float = 0.0
    height: float = 0.0
    gravity: Gravity | None = None  # None: use the main gravity

    def canonical(self) -> str:
        g = self.gravity.canonical() if self.gravity else "-"
        return f"{_num(self.width)}:{_num(self.height)}:{g}"


@dataclass(frozen=True, slots=True)
class Extend:
    enabled: bool = False
    gravity: Gravity = field(default_factory=Gravity)

    def canonical(self) -> str:
        return f"{int(self.enabled)}:{self.gravity.canonical()}"


@dataclass(frozen=True, slots=True)
class Color:
    r: int
    g: int
    b: int

    @property
    def rgb(self) -> list[int]:
        return [self.r, self.g, self.b]

    @property
    def is_grey(self) -> bool:
        return self.r == self.g == self.b

    def canonical(self) -> str:
        return f"{self.r:02x}{self.g:02x}{self.b:02x}"


WHITE = Color(255, 255, 255)


@dataclass(frozen=True, slots=True)
class Trim:
    """``t:``: on iff a threshold is set (imgproxy); without a colour the top-left pixel is the background."""

    threshold: float | None = None
    color: Color | None = None
    equal_hor: bool = False
    equal_ver: bool = False

    @property
    def enabled(self) -> bool:
        return self.threshold is not None

    def canonical(self) -> str:
        color = self.color.canonical() if self.color else "-"
        return f"{_num(self.threshold or 0.0)}:{color}:{int(self.equal_hor)}:{int(self.equal_ver)}"


@dataclass(frozen=True, slots=True)
class Padding:
    """``pd:`` in CSS order, in CSS pixels (scaled by the dpr at processing time)."""

    top: int = 0
    right: int = 0
    bottom: int = 0
    left: int = 0

    @property
    def enabled(self) -> bool:
        return bool(self.top or self.right or self.bottom or self.left)

    def canonical(self) -> str:
        return f"{self.top}:{self.right}:{self.bottom}:{self.left}"


@dataclass(frozen=True, slots=True)
class Watermark:
    """``wm:``: on iff opacity > 0; offsets ≥1 are pixels, <1 fractions; scale is relative to the result."""

    opacity: float = 0.0
    position: GravityType = GravityType.CENTER
    x: float = 0.0
    y: float = 0.0
    scale: float = 0.0  # 0: the watermark's own size

    @property
    def enabled(self) -> bool:
        return self.opacity > 0

    def canonical(self) -> str:
        return f"{_num(self.opacity)}:{self.position.value}:{_num(self.x)}:{_num(self.y)}:{_num(self.scale)}"


@dataclass(frozen=True, slots=True)
class Detections:
    """``blur_detections``/``draw_detections``: on iff enabled; ``sigma`` only blurs; classes empty: all."""

    enabled: bool = False
    sigma: float = 0.0
    classes: tuple[str, ...] = ()

    def canonical(self) -> str:
        return f"{int(self.enabled)}:{_num(self.sigma)}:{','.join(self.classes)}"


@dataclass(frozen=True, slots=True)
class AutoQuality:
    """``autoquality``: method ``""`` takes IMGPROXY_AUTOQUALITY_*; zeros take the configured bounds."""

    method: str = ""  # "", "none", "dssim" or "ml"
    target: float = 0.0
    min_quality: int = 0
    max_quality: int = 0
    allowed_error: float = 0.0

    def canonical(self) -> str:
        return (
            f"{self.method or '-'}:{_num(self.target)}:{self.min_quality}:{self.max_quality}:{_num(self.allowed_error)}"
        )


@dataclass(frozen=True, slots=True)
class ProcessingOptions:
    resizing_type: ResizingType = ResizingType.FIT
    width: int = 0
    height: int = 0
    min_width: int = 0
    min_height: int = 0
    zoom_width: float = 1.0
    zoom_height: float = 1.0
    dpr: float = 1.0
    enlarge: bool = False
    extend: Extend = field(default_factory=Extend)
    extend_aspect_ratio: Extend = field(default_factory=Extend)
    gravity: Gravity = field(default_factory=Gravity)
    crop: Crop = field(default_factory=Crop)
    auto_rotate: bool = True
    strip_metadata: bool = True
    keep_copyright: bool = True
    strip_color_profile: bool = True
    quality: int = 0  # 0: the format's configured default
    format_quality: tuple[tuple[ImageFormat, int], ...] = ()
    format: ImageFormat | None = None
    cachebuster: str = ""
    expires: int = 0  # unix time; 0: never
    filename: str = ""
    return_attachment: bool = False
    raw: bool = False  # stream the source through untouched (no processing, no workers)
    preserve_hdr: bool = False  # keep 16-bit sources 16-bit where the output format can store it
    trim: Trim = field(default_factory=Trim)
    padding: Padding = field(default_factory=Padding)
    rotate: int = 0  # clockwise, a multiple of 90 in 0..270
    flip_horizontal: bool = False
    flip_vertical: bool = False
    background: Color | None = None  # set: flatten onto it, even for formats with alpha
    blur: float = 0.0  # gaussian sigma; 0: off
    sharpen: float = 0.0  # sigma; 0: off
    pixelate: int = 0  # block size; 0: off (1 is stored as 0: the same no-op)
    watermark: Watermark = field(default_factory=Watermark)
    enforce_thumbnail: bool = False
    max_bytes: int = 0  # 0: no limit
    skip_processing: frozenset[ImageFormat] = frozenset()
    # Security options (sm/msfs/…): None means "the configured limit" (see processing.limits).
    max_src_resolution: int | None = None  # pixels
    max_src_file_size: int | None = None  # bytes; ≤0: no limit
    max_animation_frames: int | None = None
    max_animation_frame_resolution: int | None = None  # pixels; 0: frames are summed instead
    max_result_dimension: int | None = None  # pixels; ≤0: no limit
    # Image intelligence (imgproxy Pro's syntax): overlays on detected faces, perceptual quality, best format.
    blur_detections: Detections = field(default_factory=Detections)
    draw_detections: Detections = field(default_factory=Detections)
    autoquality: AutoQuality = field(default_factory=AutoQuality)
    format_best: bool = False  # ``f:best``: the smallest of the candidate formats (``format`` stays None)
    video_thumbnail_second: float | None = None  # vts: the still's time; None: the first keyframe

    def canonical(self) -> str:
        """A stable text of every non-default field, e.g. ``rt=fill;w=300;h=200;g=sm:0:0``."""
        parts = []
        # Untouched fields are the very default objects (the parser starts from DEFAULT_OPTIONS):
        # ``is`` settles most of them without comparing nested options field by field.
        for (name, short, default), value in zip(_CANONICAL_ORDER, _GET_ALL(self), strict=True):
            if value is default or value == default or (name in _SWITCHED and _effective(value) == default):
                continue
            parts.append(f"{short}={_text(value)}")
        return ";".join(parts)


def _num(value: float) -> str:
    return repr(float(value)).removesuffix(".0") if float(value).is_integer() else repr(float(value))


def _effective(value: object) -> object:
    """What an option does: a switched-off trim or watermark equals the default whatever its other parts."""
    if isinstance(value, Trim) and not value.enabled:
        return Trim()
    if isinstance(value, Watermark) and not value.enabled:
        return Watermark()
    if isinstance(value, Detections) and not value.enabled:
        return Detections()
    return value


def _text(value: object) -> str:
    if isinstance(value, (Gravity, Crop, Extend, Color, Trim, Padding, Watermark, Detections, AutoQuality)):
        return value.canonical()
    if isinstance(value, frozenset):
        return ",".join(sorted(fmt.value for fmt in value))
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, tuple):
        return ",".join(f"{fmt.value}:{q}" for fmt, q in value)
    return str(value).replace("%", "%25").replace(";", "%3B")  # escape % first: stays injective


DEFAULT_OPTIONS = ProcessingOptions()  # frozen: its field values are shared by every options object built from it
_DEFAULTS = {f.name: getattr(DEFAULT_OPTIONS, f.name) for f in fields(ProcessingOptions)}
_FIELD_NAMES = tuple(f.name for f in fields(ProcessingOptions))
_FIELD_SET = frozenset(_FIELD_NAMES)
_GET_ALL = operator.attrgetter(*_FIELD_NAMES)
_SETTERS = tuple(getattr(ProcessingOptions, name).__set__ for name in _FIELD_NAMES)


def evolve(po: ProcessingOptions, **changes: Any) -> ProcessingOptions:
    """``dataclasses.replace`` for the options, a few times faster (it runs for every option parsed).

    Copies the slots directly instead of calling ``__init__`` with 40-odd keywords; the
    options have no ``__post_init__``, so nothing is skipped.
    """
    unknown = changes.keys() - _FIELD_SET
    if unknown:
        raise TypeError(f"unknown options field(s): {', '.join(sorted(unknown))}")
    new = object.__new__(ProcessingOptions)
    for name, setter, value in zip(_FIELD_NAMES, _SETTERS, _GET_ALL(po), strict=True):
        setter(new, changes.get(name, value))
    return new


_SHORT = {
    "resizing_type": "rt",
    "width": "w",
    "height": "h",
    "min_width": "mw",
    "min_height": "mh",
    "zoom_width": "zw",
    "zoom_height": "zh",
    "dpr": "dpr",
    "enlarge": "el",
    "extend": "ex",
    "extend_aspect_ratio": "exar",
    "gravity": "g",
    "crop": "c",
    "auto_rotate": "ar",
    "strip_metadata": "sm",
    "keep_copyright": "kcr",
    "strip_color_profile": "scp",
    "quality": "q",
    "format_quality": "fq",
    "format": "f",
    "cachebuster": "cb",
    "expires": "exp",
    "filename": "fn",
    "return_attachment": "att",
    "raw": "raw",
    "preserve_hdr": "ph",
    "trim": "t",
    "padding": "pd",
    "rotate": "rot",
    "flip_horizontal": "flh",
    "flip_vertical": "flv",
    "background": "bg",
    "blur": "bl",
    "sharpen": "sh",
    "pixelate": "pix",
    "watermark": "wm",
    "enforce_thumbnail": "eth",
    "max_bytes": "mb",
    "skip_processing": "skp",
    "max_src_resolution": "msr",
    "max_src_file_size": "msfs",
    "max_animation_frames": "maf",
    "max_animation_frame_resolution": "mafr",
    "max_result_dimension": "mrd",
    "blur_detections": "bd",
    "draw_detections": "dd",
    "autoquality": "aq",
    "format_best": "fbest",
    "video_thumbnail_second": "vts",
}
assert set(_SHORT) == set(_DEFAULTS), "every option field needs a canonical short name"
_CANONICAL_ORDER = tuple((f.name, _SHORT[f.name], _DEFAULTS[f.name]) for f in fields(ProcessingOptions))
_SWITCHED = frozenset(
    {"trim", "watermark", "blur_detections", "draw_detections"}
)  # options whose parts do nothing while switched off
