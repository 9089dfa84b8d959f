"""Trim a uniform border (``t:``), before any geometry, then recompute every size from what is left.

As in imgproxy the border colour is the top-left pixel unless one is given; transparency is
flattened onto magenta first, so ``t:…:FF00FF`` trims transparent borders. The whole image
is decoded for this, so shrink-on-load is no longer possible afterwards.
"""

from __future__ import annotations

from typing import Any

from imgproxy_py.processing import vips
from imgproxy_py.processing.context import PipelineContext
from imgproxy_py.processing.steps.colorspace import colorspace_to_processing

_MAGENTA = [255, 0, 255]


def find_trim_box(img: Any, threshold: float, color: list[int] | None) -> tuple[int, int, int, int]:
    """(left, top, width, height) of the content: libvips find_trim on an sRGB, alpha-free copy."""
    work = img if img.interpretation == "srgb" else img.colourspace("srgb")
    if work.hasalpha():
        work = work.flatten(background=_MAGENTA)

    def find(image: Any) -> tuple[int, int, int, int]:
        background = color if color is not None else image.getpoint(0, 0)[:3]
        left, top, width, height = image.find_trim(threshold=threshold, background=background)
        return int(left), int(top), int(width), int(height)

    return vips.evaluate(work, find)


def _equalise(start: int, size: int, total: int) -> tuple[int, int]:
    """Grow the box so both margins equal the smaller one."""
    end_margin = total - start - size
    diff = end_margin - start
    if diff > 0:
        return start, size + diff
    if diff < 0:
        return end_margin, size - diff
    return start, size


def trim(ctx: PipelineContext) -> None:
    options = ctx.po.trim
    if options.threshold is None or ctx.animated:
        return
    colorspace_to_processing(ctx)  # trim compares colours in the processing space
    img = vips.pixels(ctx.img)
    color = options.color.rgb if options.color else None
    # imgproxy accepts a negative threshold; libvips does not, and it means "exact match" anyway.
    left, top, width, height = find_trim_box(img, max(0.0, options.threshold), color)
    if options.equal_hor:
        left, width = _equalise(left, width, img.width)
    if options.equal_ver:
        top, height = _equalise(top, height, img.height)
    if width > 0 and height > 0:
        img = vips.pixels(img.extract_area(left, top, width, height))
    ctx.img = img
    ctx.data = None  # the source bytes no longer describe this image: no shrink-on-load, no vector
    ctx.calc_params()
