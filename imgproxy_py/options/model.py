"""The parsed processing options: one frozen, typed object with a canonical form.

``canonical()`` lists every field that differs from its default in a fixed order, so two
URLs that mean the same thing (aliases, option order, overridden values, presets) give
the same string. It is the options part of cache keys and ETags.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields

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


@dataclass(frozen=True, slots=True)
class Gravity:
    """Where to anchor a crop; offsets ≥1 are pixels, <1 fractions; for ``fp`` x,y are 0..1."""

    type: GravityType = GravityType.CENTER
    x: float = 0.0
    y: float = 0.0

    def canonical(self) -> str:
        return f"{self.type.value}:{_num(self.x)}:{_num(self.y)}"


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

    def canonical(self) -> str:
        """A stable text of every non-default field, e.g. ``rt=fill;w=300;h=200;g=sm:0:0``."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value == _DEFAULTS[f.name]:
                continue
            parts.append(f"{_SHORT[f.name]}={_text(value)}")
        return ";".join(parts)


def _num(value: float) -> str:
    return repr(float(value)).removesuffix(".0") if float(value).is_integer() else repr(float(value))


def _text(value: object) -> str:
    if isinstance(value, (Gravity, Crop, Extend)):
        return value.canonical()
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, tuple):
        return ",".join(f"{fmt.value}:{q}" for fmt, q in value)
    return str(value).replace("%", "%25").replace(";", "%3B")  # escape % first: stays injective


_DEFAULTS = {f.name: getattr(ProcessingOptions(), f.name) for f in fields(ProcessingOptions)}
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
}
assert set(_SHORT) == set(_DEFAULTS), "every option field needs a canonical short name"
