"""Pure geometry: scales, crop sizes, target sizes and positions, as imgproxy computes them.

No pyvips here, so every formula is unit-testable. Two rounding modes matter and are
not interchangeable: most sizes round half away from zero (Go's ``math.Round``), while
positions and padding round half to even.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from imgproxy_py.options.model import Gravity, GravityType, ProcessingOptions, ResizingType


def round_half_away(x: float) -> int:
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def round_even(x: float) -> int:
    return round(x)


def scale_int(a: int, s: float) -> int:
    return 0 if a == 0 else round_half_away(a * s)


def scale_even(a: int, s: float) -> int:
    return 0 if a == 0 else round_even(a * s)


def shrink_int(a: int, k: float) -> int:
    return 0 if a == 0 else round_half_away(a / k)


def min_non_zero(a: int, b: int) -> int:
    if a == 0:
        return b
    if b == 0:
        return a
    return min(a, b)


def orientation_to_angle_flip(orientation: int) -> tuple[int, bool]:
    """EXIF orientation → clockwise angle to apply and whether to mirror horizontally."""
    angle = {3: 180, 4: 180, 5: 90, 6: 90, 7: 270, 8: 270}.get(orientation, 0)
    return angle, orientation in (2, 4, 5, 7)


def crop_size(orig: int, value: float) -> int:
    """``c:`` argument → pixels: 0 none, ≥1 absolute (truncated), <1 a fraction (at least 1)."""
    if value == 0:
        return 0
    if value >= 1:
        return int(value)
    return max(1, scale_int(orig, value))


@dataclass(frozen=True, slots=True)
class Scales:
    wscale: float
    hscale: float
    dpr_scale: float


def calc_scale(width: int, height: int, po: ProcessingOptions, *, is_vector: bool) -> Scales:
    """How much to scale a ``width``×``height`` (oriented, cropped) image for these options."""
    src_w, src_h = float(width), float(height)
    dst_w = float(po.width) if po.width else src_w
    dst_h = float(po.height) if po.height else src_h
    wshrink = 1.0 if dst_w == src_w else src_w / dst_w
    hshrink = 1.0 if dst_h == src_h else src_h / dst_h

    if wshrink != 1 or hshrink != 1:
        rt = po.resizing_type
        if rt is ResizingType.AUTO:
            same = (src_w - src_h >= 0) == (dst_w - dst_h >= 0)
            rt = ResizingType.FILL if same else ResizingType.FIT
        if po.width == 0 and rt is not ResizingType.FORCE:
            wshrink = hshrink
        elif po.height == 0 and rt is not ResizingType.FORCE:
            hshrink = wshrink
        elif rt is ResizingType.FIT:
            wshrink = hshrink = max(wshrink, hshrink)
        elif rt in (ResizingType.FILL, ResizingType.FILL_DOWN):
            wshrink = hshrink = min(wshrink, hshrink)

    wshrink /= po.zoom_width
    hshrink /= po.zoom_height

    dpr_scale = po.dpr
    if not po.enlarge and not is_vector:
        smallest = min(wshrink, hshrink)
        if smallest < 1:
            wshrink /= smallest
            hshrink /= smallest
            if not po.extend.enabled:
                dpr_scale /= smallest
        dpr_scale = min(dpr_scale, min(wshrink, hshrink))

    if po.min_width > 0:
        limit = src_w / po.min_width
        if limit < wshrink:
            hshrink /= wshrink / limit
            wshrink = limit
    if po.min_height > 0:
        limit = src_h / po.min_height
        if limit < hshrink:
            wshrink /= hshrink / limit
            hshrink = limit

    wshrink /= dpr_scale
    hshrink /= dpr_scale
    wshrink = min(wshrink, src_w)
    hshrink = min(hshrink, src_h)
    return Scales(1.0 / wshrink, 1.0 / hshrink, dpr_scale)


@dataclass(frozen=True, slots=True)
class Sizes:
    target_width: int
    target_height: int
    scaled_width: int
    scaled_height: int
    result_crop_width: int
    result_crop_height: int
    ear_width: int  # extend_aspect_ratio canvas (0: none)
    ear_height: int


def calc_sizes(width_to_scale: int, height_to_scale: int, scales: Scales, po: ProcessingOptions) -> Sizes:
    tw = scale_int(po.width, scales.dpr_scale * po.zoom_width)
    th = scale_int(po.height, scales.dpr_scale * po.zoom_height)
    sw = scale_int(width_to_scale, scales.wscale)
    sh = scale_int(height_to_scale, scales.hscale)
    rw, rh = tw, th
    if po.resizing_type is ResizingType.FILL_DOWN and not po.enlarge and sw and sh:
        dw = tw / sw
        dh = th / sh
        if dw > dh and dw > 1:
            rw, rh = sw, scale_int(sw, th / tw)
        elif dh > dw and dh > 1:
            rw, rh = scale_int(sh, tw / th), sh
    ew = eh = 0
    if po.extend_aspect_ratio.enabled and tw > 0 and th > 0:
        ow = min_non_zero(sw, rw)
        oh = min_non_zero(sh, rh)
        dw = tw / ow
        dh = th / oh
        if dh > dw:
            ew, eh = ow, scale_int(ow, th / tw)
        elif dw > dh:
            ew, eh = scale_int(oh, tw / th), oh
    return Sizes(tw, th, sw, sh, rw, rh, ew, eh)


def calc_position(
    outer_w: int, outer_h: int, inner_w: int, inner_h: int, gravity: Gravity, off_scale: float, overflow: bool = False
) -> tuple[int, int]:
    """Top-left of an inner box placed in an outer box by gravity (imgproxy calcPosition)."""
    g = gravity.type
    if g is GravityType.FOCUS_POINT:
        left = round_even(outer_w * gravity.x) - inner_w // 2
        top = round_even(outer_h * gravity.y) - inner_h // 2
    else:
        off_x = round_even(gravity.x * off_scale) if abs(gravity.x) >= 1 else round_even(outer_w * gravity.x)
        off_y = round_even(gravity.y * off_scale) if abs(gravity.y) >= 1 else round_even(outer_h * gravity.y)
        left = round_even((outer_w - inner_w + 1) / 2) + off_x
        top = round_even((outer_h - inner_h + 1) / 2) + off_y
        if g in (GravityType.NORTH, GravityType.NORTH_EAST, GravityType.NORTH_WEST):
            top = off_y
        if g in (GravityType.EAST, GravityType.NORTH_EAST, GravityType.SOUTH_EAST):
            left = outer_w - inner_w - off_x
        if g in (GravityType.SOUTH, GravityType.SOUTH_EAST, GravityType.SOUTH_WEST):
            top = outer_h - inner_h - off_y
        if g in (GravityType.WEST, GravityType.NORTH_WEST, GravityType.SOUTH_WEST):
            left = off_x
    if not overflow:
        left = max(0, min(left, outer_w - inner_w))
        top = max(0, min(top, outer_h - inner_h))
    return left, top


_FLIP_X = {
    GravityType.EAST: GravityType.WEST,
    GravityType.WEST: GravityType.EAST,
    GravityType.NORTH_EAST: GravityType.NORTH_WEST,
    GravityType.NORTH_WEST: GravityType.NORTH_EAST,
    GravityType.SOUTH_EAST: GravityType.SOUTH_WEST,
    GravityType.SOUTH_WEST: GravityType.SOUTH_EAST,
}
_FLIP_Y = {
    GravityType.NORTH: GravityType.SOUTH,
    GravityType.SOUTH: GravityType.NORTH,
    GravityType.NORTH_EAST: GravityType.SOUTH_EAST,
    GravityType.SOUTH_EAST: GravityType.NORTH_EAST,
    GravityType.NORTH_WEST: GravityType.SOUTH_WEST,
    GravityType.SOUTH_WEST: GravityType.NORTH_WEST,
}
_ROT90 = {
    GravityType.NORTH: GravityType.WEST,
    GravityType.EAST: GravityType.NORTH,
    GravityType.SOUTH: GravityType.EAST,
    GravityType.WEST: GravityType.SOUTH,
    GravityType.NORTH_WEST: GravityType.SOUTH_WEST,
    GravityType.NORTH_EAST: GravityType.NORTH_WEST,
    GravityType.SOUTH_WEST: GravityType.SOUTH_EAST,
    GravityType.SOUTH_EAST: GravityType.NORTH_EAST,
}
_ROT180 = {
    GravityType.NORTH: GravityType.SOUTH,
    GravityType.SOUTH: GravityType.NORTH,
    GravityType.EAST: GravityType.WEST,
    GravityType.WEST: GravityType.EAST,
    GravityType.NORTH_WEST: GravityType.SOUTH_EAST,
    GravityType.SOUTH_EAST: GravityType.NORTH_WEST,
    GravityType.NORTH_EAST: GravityType.SOUTH_WEST,
    GravityType.SOUTH_WEST: GravityType.NORTH_EAST,
}
_ROT270 = {v: k for k, v in _ROT90.items()}


def rotate_gravity(gravity: Gravity, angle: int, flip_x: bool, flip_y: bool = False) -> Gravity:
    """Gravity for a crop done *before* a rotate/flip, equal to cropping after it."""
    g, x, y = gravity.type, gravity.x, gravity.y
    if flip_x:
        g = _FLIP_X.get(g, g)
        if g in (GravityType.CENTER, GravityType.NORTH, GravityType.SOUTH):
            x = -x
        elif g is GravityType.FOCUS_POINT:
            x = 1 - x
    if flip_y:
        g = _FLIP_Y.get(g, g)
        if g in (GravityType.CENTER, GravityType.EAST, GravityType.WEST):
            y = -y
        elif g is GravityType.FOCUS_POINT:
            y = 1 - y
    angle %= 360
    if angle == 90:
        g = _ROT90.get(g, g)
        if g in (GravityType.CENTER, GravityType.EAST, GravityType.WEST):
            x, y = y, -x
        elif g is GravityType.FOCUS_POINT:
            x, y = y, 1 - x
        else:
            x, y = y, x
    elif angle == 180:
        g = _ROT180.get(g, g)
        if g is GravityType.CENTER:
            x, y = -x, -y
        elif g in (GravityType.NORTH, GravityType.SOUTH):
            x = -x
        elif g in (GravityType.EAST, GravityType.WEST):
            y = -y
        elif g is GravityType.FOCUS_POINT:
            x, y = 1 - x, 1 - y
    elif angle == 270:
        g = _ROT270.get(g, g)
        if g in (GravityType.CENTER, GravityType.NORTH, GravityType.SOUTH):
            x, y = -y, x
        elif g is GravityType.FOCUS_POINT:
            x, y = 1 - y, x
        else:
            x, y = y, x
    return Gravity(g, x, y, gravity.classes, gravity.weights)


def jpeg_shrink_factor(preshrink: float) -> int:
    for k in (8, 4, 2):
        if preshrink >= k:
            return k
    return 1


def limit_scale(
    width_to_scale: int, height_to_scale: int, scales: Scales, sizes: Sizes, po: ProcessingOptions, max_dimension: int
) -> tuple[Scales, Sizes]:
    """max_result_dimension: scale down so the final image (with extend and padding) fits (limitScale)."""
    if max_dimension <= 0:
        return scales, sizes
    out_w = min_non_zero(sizes.scaled_width, sizes.result_crop_width)
    out_h = min_non_zero(sizes.scaled_height, sizes.result_crop_height)
    if po.extend.enabled:
        out_w, out_h = max(out_w, sizes.target_width), max(out_h, sizes.target_height)
    elif po.extend_aspect_ratio.enabled:
        out_w, out_h = max(out_w, sizes.ear_width), max(out_h, sizes.ear_height)
    pad = po.padding
    out_w += scale_even(pad.left, scales.dpr_scale) + scale_even(pad.right, scales.dpr_scale)
    out_h += scale_even(pad.top, scales.dpr_scale) + scale_even(pad.bottom, scales.dpr_scale)
    if out_w <= max_dimension and out_h <= max_dimension:
        return scales, sizes
    down = max_dimension / max(out_w, out_h)
    limited = Scales(
        max(scales.wscale * down, 1.0 / width_to_scale),  # never below one pixel
        max(scales.hscale * down, 1.0 / height_to_scale),
        scales.dpr_scale * down,
    )
    return limited, calc_sizes(width_to_scale, height_to_scale, limited, po)


def padding_pixels(po: ProcessingOptions, dpr_scale: float) -> tuple[int, int, int, int]:
    """Padding in output pixels (top, right, bottom, left): scaled by the dpr, rounded half to even."""
    pad = po.padding
    return (
        scale_even(pad.top, dpr_scale),
        scale_even(pad.right, dpr_scale),
        scale_even(pad.bottom, dpr_scale),
        scale_even(pad.left, dpr_scale),
    )
