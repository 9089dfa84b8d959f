"""Put the configured watermark on the result (``wm:``), the last step, after flattening (imgproxy).

Offsets follow the dpr like every other offset. An image with a non-sRGB profile is
converted first so the watermark's sRGB colours are not shifted by the later conversion.
"""

from __future__ import annotations

from imgproxy_py.processing import vips
from imgproxy_py.processing import watermark_image as wm
from imgproxy_py.processing.context import PipelineContext


def watermark(ctx: PipelineContext) -> None:
    options = ctx.po.watermark
    if ctx.watermark is None or not options.enabled or ctx.animated:
        return  # animations get it once, on the joined frames (watermark.apply with frames=n)
    img = ctx.img
    if not ctx.icc_imported and vips.has_field(img, "icc-profile-data") and img.interpretation == "srgb":
        try:
            img = img.icc_transform("srgb", embedded=True)
            ctx.icc_imported = True
        except vips.Error:
            pass  # a broken profile: colorspace_to_result drops it as well
    ctx.img = wm.apply(img, ctx.watermark, options, ctx.dpr_scale)
