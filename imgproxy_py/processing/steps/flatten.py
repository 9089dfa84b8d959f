"""Drop alpha onto the background: always when ``bg`` is set, else only if the format cannot store it.

The default background is white. A grey image stays grey on a grey background and
becomes sRGB on a coloured one (rgb16 when preserve_hdr keeps 16 bits).
"""

from __future__ import annotations

from imgproxy_py.options.model import WHITE
from imgproxy_py.processing.context import PipelineContext


def flatten(ctx: PipelineContext) -> None:
    img = ctx.img
    background = ctx.po.background
    if background is None and ctx.target_format.supports_alpha:
        return
    if not img.hasalpha():
        return
    color = background or WHITE
    if img.bands < 3 and not color.is_grey:
        img = img.colourspace("rgb16" if img.format == "ushort" else "srgb")  # 16-bit stays 16-bit
    fill = color.rgb if img.bands > 2 else [color.r]
    if img.format == "ushort":  # 16-bit (preserve_hdr): the colour scaled to the 0..65535 range
        fill = [c * 257 for c in fill]
    ctx.img = img.flatten(background=fill).cast(img.format)
