"""Resize by the computed scales (lanczos3), premultiplying alpha so edges do not darken."""

from __future__ import annotations

from imgproxy_py.processing.context import PipelineContext


def scale(ctx: PipelineContext) -> None:
    wscale, hscale = ctx.wscale, ctx.hscale
    if wscale == 1 and hscale == 1:
        return
    if ctx.swaps_axes:
        wscale, hscale = hscale, wscale
    img = ctx.img
    band_format = img.format
    if img.hasalpha():
        img = img.premultiply().cast(band_format)
        img = img.resize(wscale, vscale=hscale).unpremultiply().cast(band_format)
    else:
        img = img.resize(wscale, vscale=hscale)
    ctx.img = img
