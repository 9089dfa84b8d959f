"""Shrink on load: let the decoder skip pixels we would throw away anyway.

JPEG decodes at 1/2, 1/4 or 1/8 in the DCT domain; WebP and SVG render at any scale.
After the reload the scales, crop sizes and absolute crop offsets are corrected for the
size the decoder actually produced (imgproxy scaleOnLoad).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.options.model import GravityType
from imgproxy_py.processing import vips
from imgproxy_py.processing.context import PipelineContext, _frame_height
from imgproxy_py.processing.geometry import jpeg_shrink_factor, round_even, scale_int, shrink_int
from imgproxy_py.processing.intermediates import memory_size
from imgproxy_py.processing.svg_cost import check_svg_cost
from imgproxy_py.processing.vips import load_options


def _reuse(ctx: PipelineContext, variant: str, load: Callable[[], Any]) -> Any:
    """The decoded ``variant`` of a hot source from the intermediate cache, else ``load()``.

    Loaded images are lazy and stream from the source bytes; only a hot source is
    decoded into memory up front and kept for the next variant.
    """
    cache, key = ctx.intermediates, ctx.source_key
    if cache is None or key is None:
        return load()
    cached = cache.get(key, variant)
    if cached is not None:
        return cached
    img = load()
    if ctx.hot and memory_size(img) <= cache.max_bytes // 4:
        img = vips.pixels(img)
        cache.put(key, variant, img, memory_size(img))
    return img


def scale_on_load(ctx: PipelineContext) -> None:
    if ctx.stream is not None:
        _scale_on_stream(ctx)
        return
    data = ctx.data
    if data is None:
        return
    preshrink = min(
        ctx.src_width / scale_int(ctx.src_width, ctx.wscale),
        ctx.src_height / scale_int(ctx.src_height, ctx.hscale),
    )
    fmt = ctx.source_format
    extra: dict[str, Any]
    if fmt is ImageFormat.SVG:
        # Render at the final size (vector, not upscaled pixels), but never above the
        # resolution limit, whatever the options ask.
        natural_pixels = (ctx.src_width / ctx.vector_scale) * (ctx.src_height / ctx.vector_scale)
        factor = min(ctx.vector_scale / preshrink, math.sqrt(ctx.limits.max_src_resolution / natural_pixels))
        if factor == ctx.vector_scale:
            return
        if factor > 1:
            check_svg_cost(data, factor)  # filters cost by the pixel: bounded again at the enlarged size
        extra = {"scale": factor}
    elif preshrink > 1 and fmt is ImageFormat.JPEG:
        factor = jpeg_shrink_factor(preshrink)
        if factor == 1:
            return
        extra = {"shrink": factor}
    elif preshrink > 1 and fmt is ImageFormat.WEBP:
        extra = {"scale": 1.0 / preshrink}
    else:
        ctx.img = _reuse(ctx, "full", lambda: ctx.img)
        return

    if "shrink" in extra:  # few distinct factors: worth keeping decoded for the next variant
        img = _reuse(ctx, f"shrink={extra['shrink']}", lambda: vips.open_source(data, **load_options(fmt), **extra))
    else:
        img = vips.open_source(data, **load_options(fmt), **extra)
    _rescale(ctx, img, extra)


def _scale_on_stream(ctx: PipelineContext) -> None:
    """A streamed source (JPEG or PNG) is opened here, once, at the shrink its header allows.

    Until now ``ctx.img`` was a header-only image; the decoded one replaces it in every case.
    """
    fmt = ctx.source_format
    preshrink = min(
        ctx.src_width / scale_int(ctx.src_width, ctx.wscale),
        ctx.src_height / scale_int(ctx.src_height, ctx.hscale),
    )
    stream = ctx.stream
    ctx.stream = None
    factor = jpeg_shrink_factor(preshrink) if preshrink > 1 and fmt is ImageFormat.JPEG else 1
    if factor == 1:
        ctx.img = _reuse(ctx, "full", lambda: stream.open(fmt))
        return
    img = _reuse(ctx, f"shrink={factor}", lambda: stream.open(fmt, shrink=factor))
    _rescale(ctx, img, {"shrink": factor})


def _rescale(ctx: PipelineContext, img: Any, extra: dict[str, Any]) -> None:
    """Take the reloaded ``img`` and correct the scales, crop sizes and offsets for its size."""
    new_w, new_h = img.width, _frame_height(img)
    if ctx.swaps_axes:
        new_w, new_h = new_h, new_w
    wpre = ctx.src_width / new_w
    hpre = ctx.src_height / new_h
    ctx.img = img
    if "scale" in extra and ctx.source_format is ImageFormat.SVG:
        ctx.vector_scale = extra["scale"]
    ctx.wscale *= wpre
    ctx.hscale *= hpre
    if new_w == scale_int(new_w, ctx.wscale):
        ctx.wscale = 1.0
    if new_h == scale_int(new_h, ctx.hscale):
        ctx.hscale = 1.0
    if ctx.crop_width > 0:
        ctx.crop_width = max(1, shrink_int(ctx.crop_width, wpre))
    if ctx.crop_height > 0:
        ctx.crop_height = max(1, shrink_int(ctx.crop_height, hpre))
    gravity = ctx.crop_gravity
    if gravity.type is not GravityType.FOCUS_POINT:
        x = float(round_even(gravity.x / wpre)) if abs(gravity.x) >= 1 else gravity.x
        y = float(round_even(gravity.y / hpre)) if abs(gravity.y) >= 1 else gravity.y
        ctx.crop_gravity = replace(gravity, x=x, y=y)
