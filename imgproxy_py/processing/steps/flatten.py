"""Drop alpha onto a background when the output format cannot store it (white by default)."""

from __future__ import annotations

from imgproxy_py.processing.context import PipelineContext


def flatten(ctx: PipelineContext) -> None:
    img = ctx.img
    if not img.hasalpha() or ctx.target_format.supports_alpha:
        return
    background = [255] * (img.bands - 1)
    ctx.img = img.flatten(background=background).cast(img.format)
