"""Apply the EXIF orientation (rotation, then mirror) and drop the tag so viewers do not repeat it."""

from __future__ import annotations

from imgproxy_py.processing.context import PipelineContext


def rotate_and_flip(ctx: PipelineContext) -> None:
    img = ctx.img
    if ctx.angle or ctx.flip:
        img = img.copy_memory()  # rotation needs random access; the image is small by now
        if ctx.angle:
            img = img.rot(f"d{ctx.angle}")
        if ctx.flip:
            img = img.fliphor()
    if img.get_typeof("orientation") != 0:
        img = img.copy()
        img.remove("orientation")
    ctx.img = img
