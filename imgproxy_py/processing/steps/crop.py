"""Crops: the ``c:`` crop before scaling, and the crop to the result size after it."""

from __future__ import annotations

from typing import Any

from imgproxy_py.options.model import Gravity, GravityType
from imgproxy_py.processing import vips
from imgproxy_py.processing.context import PipelineContext
from imgproxy_py.processing.geometry import calc_position, min_non_zero, rotate_gravity


def crop_image(img: Any, width: int, height: int, gravity: Gravity, off_scale: float) -> Any:
    if width == 0 and height == 0:
        return img
    width = min_non_zero(width, img.width)
    height = min_non_zero(height, img.height)
    if width >= img.width and height >= img.height:
        return img
    if gravity.type is GravityType.SMART:
        return vips.evaluate(vips.pixels(img), lambda image: image.smartcrop(width, height, interesting="attention"))
    left, top = calc_position(img.width, img.height, width, height, gravity, off_scale)
    return img.extract_area(left, top, width, height)


def crop(ctx: PipelineContext) -> None:
    """The ``c:`` option, on the still unrotated image, so sizes and gravity are turned to match."""
    width, height = ctx.crop_width, ctx.crop_height
    if width == 0 and height == 0:
        return
    if ctx.swaps_axes:
        width, height = height, width
    # Undo the later turns in reverse order: the user's rotate and flips, then the EXIF orientation.
    po = ctx.po
    gravity = rotate_gravity(ctx.crop_gravity, po.rotate, po.flip_horizontal, po.flip_vertical)
    gravity = rotate_gravity(gravity, ctx.angle, ctx.flip)
    ctx.img = crop_image(ctx.img, width, height, gravity, 1.0)


def crop_to_result(ctx: PipelineContext) -> None:
    sizes = ctx.sizes
    ctx.img = crop_image(ctx.img, sizes.result_crop_width, sizes.result_crop_height, ctx.po.gravity, ctx.dpr_scale)
