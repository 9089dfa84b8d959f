"""Blur, sharpen and pixelate (``bl``, ``sh``, ``pix``), on the result-sized image (imgproxy applyFilters).

Alpha is premultiplied for blur and sharpen so transparent pixels do not bleed their
(meaningless) colour into the visible ones.
"""

from __future__ import annotations

import math
from typing import Any

from imgproxy_py.processing import vips
from imgproxy_py.processing.context import PipelineContext


def pixelate(img: Any, size: int) -> Any:
    """Blocks of ``size`` pixels, aligned to the top-left; a partial block at the edge is a mirror-padded one."""
    size = min(size, max(img.width, img.height))
    if size <= 1:
        return img
    width, height = img.width, img.height
    padded_w = math.ceil(width / size) * size
    padded_h = math.ceil(height / size) * size
    if padded_w > width or padded_h > height:
        img = img.embed(0, 0, padded_w, padded_h, extend="mirror")
    img = img.shrink(size, size).zoom(size, size)
    if padded_w > width or padded_h > height:
        img = img.extract_area(0, 0, width, height)
    return img


def apply_filters(ctx: PipelineContext) -> None:
    po = ctx.po
    if not po.blur and not po.sharpen and po.pixelate <= 1:
        return
    img = vips.pixels(ctx.img)  # under the deadline: a 36 MP blur takes seconds
    band_format, interpretation = img.format, img.interpretation
    premultiplied = (po.blur > 0 or po.sharpen > 0) and img.hasalpha()
    if premultiplied:
        img = img.premultiply().cast(band_format)
    if po.blur > 0:
        img = img.gaussblur(po.blur)
    if po.sharpen > 0:
        img = img.sharpen(sigma=po.sharpen)
    if po.pixelate > 1:
        img = pixelate(img, po.pixelate)
    if premultiplied:
        img = img.unpremultiply()
    if img.interpretation != interpretation:
        img = img.colourspace(interpretation)  # sharpen works in LAB
    ctx.img = vips.pixels(img.cast(band_format))
