"""Add ``pd:`` padding around the result: transparent here, filled by flatten when there is a background."""

from __future__ import annotations

from imgproxy_py.processing.context import PipelineContext
from imgproxy_py.processing.geometry import padding_pixels
from imgproxy_py.processing.steps.extend import with_opaque_alpha


def padding(ctx: PipelineContext) -> None:
    if not ctx.po.padding.enabled:
        return
    top, right, bottom, left = padding_pixels(ctx.po, ctx.dpr_scale)  # follows the dpr, as imgproxy
    img = with_opaque_alpha(ctx.img)
    ctx.img = img.embed(left, top, img.width + left + right, img.height + top + bottom, extend="black")
