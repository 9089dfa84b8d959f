"""Shrink results that exceed what the output format can store (WebP 16383 px, GIF, …)."""

from __future__ import annotations

import math

from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.processing.context import PipelineContext


def fix_size(ctx: PipelineContext) -> None:
    img = ctx.img
    width, height = img.width, img.height
    fmt = ctx.target_format
    factor = 1.0
    if fmt is ImageFormat.GIF:
        k = max(width * height / 536870911, max(width, height) / 65535)
        if k > 1:
            factor = math.sqrt(1 / k)
    else:
        limit = fmt.caps.max_size
        if limit and max(width, height) > limit:
            factor = limit / max(width, height)
    if factor < 1:
        ctx.img = img.resize(factor)
