"""What an SVG costs to draw, bounded before librsvg (or a browser) ever sees it.

A few kilobytes can describe an enormous drawing: ``<use>`` instantiates an element, and
an element can hold ``<use>``s of other elements, so ten levels of ten uses each are 10¹⁰
elements from 2.6 KB (issue 16: 7 CPU-seconds in librsvg, and passed through untouched to
browsers). Blur-like filter primitives cost a pass over every pixel they cover, and librsvg
runs each in one call nothing can interrupt. This module reads the document once (expat,
configured as the sanitiser's; nothing is fetched or expanded) and refuses, with 422:

- more than ``MAX_ELEMENTS`` elements drawn, counting each element once where it stands plus
  once per ``<use>`` that instantiates it, through referenced groups, symbols and nested uses
  (a reference cycle is refused too);
- expensive filter work over ``MAX_FILTER_PIXELS``: each application of a blur, morphology,
  convolution, turbulence, lighting or displacement primitive counts the area it can cover
  (the filtered shape's own box when it is a sized rect/image/use/circle/ellipse, else the
  whole canvas), multiplied by the uses that repeat it, at the size it is drawn: the natural
  size, or the larger one a rasterising request renders it at.

The bounds are far above real drawings (icons and illustrations have hundreds to a few
thousand elements, and a handful of shadows) and far below what hurts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.parsers import expat

from imgproxy_py.errors import ImageError

MAX_ELEMENTS = 100_000
MAX_FILTER_PIXELS = 4_000_000  # pixel passes of expensive primitives: 1000² blurred costs librsvg ~0.5-1.5 s
DEFAULT_CANVAS = 100.0  # a side without width/height/viewBox (librsvg's fallback is similar)

_EXPENSIVE_PRIMITIVES = frozenset(
    {
        "fegaussianblur",
        "femorphology",
        "feconvolvematrix",
        "feturbulence",
        "fediffuselighting",
        "fespecularlighting",
        "fedisplacementmap",
        "fedropshadow",
    }
)
_SIZED = frozenset({"rect", "image", "use", "svg", "foreignobject"})
_FRAGMENT_URL = re.compile(r"url\(\s*['\"]?#([^'\")\s]+)['\"]?\s*\)")
_STYLE_FILTER = re.compile(r"(?:^|;)\s*filter\s*:\s*([^;]+)", re.IGNORECASE)
_LENGTH = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(px|pt|pc|mm|cm|in|em|ex)?\s*")
_UNITS = {None: 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0, "em": 16.0}
_UNITS["ex"] = 8.0


class SvgTooComplexError(ImageError):
    """The drawing an SVG describes is far larger than its bytes: refused before anything renders."""

    public_message = "SVG is too complex"


@dataclass(slots=True)
class _Scope:
    """An element with an id (or the document): what it draws itself, outside nested id'd elements."""

    elements: int = 0
    uses: list[str] = field(default_factory=list)  # ids instantiated by <use>s in this scope
    children: list[int] = field(default_factory=list)  # nested id'd elements (drawn where they stand)
    filters: list[tuple[str, float]] = field(default_factory=list)  # (filter id, share of the canvas)


@dataclass(frozen=True, slots=True)
class SvgCost:
    elements: int  # drawn, with every <use> expanded (capped just above MAX_ELEMENTS)
    filter_pixels: float  # expensive filter passes × pixels they can cover, at natural size


def check_svg_cost(data: bytes, scale: float = 1.0) -> SvgCost:
    """Raise SvgTooComplexError when the document, drawn at ``scale`` × its natural size, is over a
    bound; malformed XML is left to the caller (the sanitiser or librsvg says what is wrong)."""
    cost = svg_cost(data)
    if cost is None:
        return SvgCost(0, 0.0)
    if cost.elements > MAX_ELEMENTS:
        raise SvgTooComplexError(
            f"SVG draws over {MAX_ELEMENTS} elements once <use> is expanded",
            public_message=f"SVG is too complex (over {MAX_ELEMENTS} elements once <use> references are expanded)",
        )
    filter_pixels = cost.filter_pixels * scale * scale
    if filter_pixels > MAX_FILTER_PIXELS:
        raise SvgTooComplexError(
            f"SVG filters would process {filter_pixels:.3g} pixels",
            public_message="SVG is too complex (too much filter work)",
        )
    return cost


def svg_cost(data: bytes) -> SvgCost | None:
    """The cost of drawing ``data``, or None when it is not well-formed (the caller reports that)."""
    walker = _Walker()
    parser = expat.ParserCreate()
    parser.ordered_attributes = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = walker.start
    parser.EndElementHandler = walker.end
    parser.EntityDeclHandler = _refuse_entities  # the sanitiser / librsvg report these; never expand them here
    parser.ExternalEntityRefHandler = _no_external
    try:
        parser.Parse(data, True)
    except (expat.ExpatError, LookupError, UnicodeError, ValueError, _Refused):
        return None
    return walker.cost()


class _Refused(Exception):
    pass


def _refuse_entities(*args: object) -> None:
    raise _Refused


def _no_external(*args: object) -> int:
    raise _Refused


class _Walker:
    def __init__(self) -> None:
        self.scopes: list[_Scope] = [_Scope()]
        self.ids: dict[str, int] = {}
        self.stack: list[int | None] = []  # per open element: the scope it opened, if any
        self.current: list[int] = [0]  # innermost open scope
        self.filter_primitives: dict[str, int] = {}
        self.in_filter: str | None = None
        self.canvas: tuple[float, float] | None = None  # natural size in pixels
        self.user_area = 0.0  # the root's user-space area (viewBox, else its size)

    def start(self, name: str, attrs: list[str]) -> None:
        local = name.rpartition(":")[2].lower()
        pairs = dict(zip(attrs[::2], attrs[1::2], strict=True))
        if self.canvas is None:
            self._root(pairs)
        element_id = pairs.get("id")
        opened: int | None = None
        if element_id and element_id not in self.ids:
            opened = len(self.scopes)
            self.scopes.append(_Scope())
            self.scopes[self.current[-1]].children.append(opened)
            self.ids[element_id] = opened
        self.stack.append(opened)
        if opened is not None:
            self.current.append(opened)
        scope = self.scopes[self.current[-1]]
        scope.elements += 1
        if local == "use":
            href = next((v for k, v in pairs.items() if k == "href" or k.endswith(":href")), "").strip()
            if href.startswith("#") and len(href) > 1:
                scope.uses.append(href[1:])
        if local == "filter" and element_id:
            self.in_filter = element_id
            self.filter_primitives.setdefault(element_id, 0)
        elif self.in_filter is not None and local in _EXPENSIVE_PRIMITIVES:
            self.filter_primitives[self.in_filter] += 1
        target = _filter_reference(pairs)
        if target is not None:
            scope.filters.append((target, self._share(local, pairs)))

    def end(self, name: str) -> None:
        if name.rpartition(":")[2].lower() == "filter":
            self.in_filter = None
        if self.stack.pop() is not None:
            self.current.pop()

    def _root(self, pairs: dict[str, str]) -> None:
        box = _view_box(pairs.get("viewBox"))
        width, height = _length(pairs.get("width")), _length(pairs.get("height"))
        if width is None or height is None:
            width, height = (box[0], box[1]) if box else (DEFAULT_CANVAS, DEFAULT_CANVAS)
        self.canvas = (width, height)
        self.user_area = box[0] * box[1] if box else width * height

    def _share(self, local: str, pairs: dict[str, str]) -> float:
        """How much of the canvas a filtered element can cover: 1 unless its own size says less."""
        area: float | None = None
        if local in _SIZED:
            width, height = _length(pairs.get("width")), _length(pairs.get("height"))
            if width is not None and height is not None:
                area = width * height
        elif local == "circle":
            r = _length(pairs.get("r"))
            area = None if r is None else 4 * r * r
        elif local == "ellipse":
            rx, ry = _length(pairs.get("rx")), _length(pairs.get("ry"))
            area = None if rx is None or ry is None else 4 * rx * ry
        if area is None or self.user_area <= 0:
            return 1.0
        return min(1.0, area * 1.44 / self.user_area)  # the default filter region adds 10% per side

    def cost(self) -> SvgCost:
        elements, filter_load = _totals(self.scopes, self.ids, self.filter_primitives)
        width, height = self.canvas or (DEFAULT_CANVAS, DEFAULT_CANVAS)
        return SvgCost(elements, filter_load * width * height)


def _totals(scopes: list[_Scope], ids: dict[str, int], primitives: dict[str, int]) -> tuple[int, float]:
    """Elements and filter load of the document (scope 0), every <use> expanded; iterative, memoised."""
    cap = MAX_ELEMENTS + 1
    elements: list[int] = [0] * len(scopes)
    filters: list[float] = [0.0] * len(scopes)
    state = [0] * len(scopes)  # 0 new, 1 on the stack, 2 done
    stack = [0]
    while stack:
        index = stack[-1]
        scope = scopes[index]
        refs = scope.children + [ids[u] for u in scope.uses if u in ids]
        if state[index] == 0:
            state[index] = 1
            for ref in refs:
                if state[ref] == 1:
                    raise SvgTooComplexError(
                        "SVG <use> references form a cycle", public_message="SVG is too complex (a <use> cycle)"
                    )
                if state[ref] == 0:
                    stack.append(ref)
            continue
        stack.pop()
        if state[index] == 2:
            continue
        state[index] = 2
        total = scope.elements + sum(elements[r] for r in refs)
        elements[index] = min(total, cap)
        load = sum(primitives.get(f, 0) * share for f, share in scope.filters) + sum(filters[r] for r in refs)
        filters[index] = load  # in canvas shares; a float: 10^10 uses do not overflow it
    return elements[0], filters[0]


def _filter_reference(pairs: dict[str, str]) -> str | None:
    value = pairs.get("filter")
    if value is None and "style" in pairs:
        match = _STYLE_FILTER.search(pairs["style"])
        value = match.group(1) if match else None
    if not value:
        return None
    match = _FRAGMENT_URL.search(value)
    return match.group(1) if match else None


def _length(value: str | None) -> float | None:
    if not value:
        return None
    match = _LENGTH.fullmatch(value)
    if match is None:
        return None  # percentages and the like: unknown
    number = float(match.group(1)) * _UNITS[match.group(2)]
    return number if 0 < number < 1e9 else None


def _view_box(value: str | None) -> tuple[float, float] | None:
    if not value:
        return None
    parts = value.replace(",", " ").split()
    if len(parts) != 4:
        return None
    try:
        width, height = float(parts[2]), float(parts[3])
    except ValueError:
        return None
    return (width, height) if 0 < width < 1e9 and 0 < height < 1e9 else None
