"""Turn the image upright (EXIF orientation), then apply the user's ``rot`` and ``fl``, in imgproxy's order.

The orientation tag is dropped so viewers do not turn the image a second time.
"""

from __future__ import annotations

from imgproxy_py.processing import vips
from imgproxy_py.processing.context import PipelineContext


def rotate_and_flip(ctx: PipelineContext) -> None:
    img = ctx.img
    po = ctx.po
    if ctx.angle or ctx.flip or po.rotate or po.flip_horizontal or po.flip_vertical:
        img = vips.pixels(img)  # rotation needs random access; the image is small by now
        if ctx.angle:
            img = img.rot(f"d{ctx.angle}")
        if ctx.flip:
            img = img.fliphor()
        if po.rotate:
            img = img.rot(f"d{po.rotate}")
        if po.flip_horizontal:
            img = img.fliphor()
        if po.flip_vertical:
            img = img.flipver()
    if img.get_typeof("orientation") != 0:
        img = img.copy()
        img.remove("orientation")
    ctx.img = img
