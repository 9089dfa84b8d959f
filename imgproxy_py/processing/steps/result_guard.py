"""Refuse results too large to make (``rs:fit:60000:60000/el:1``, ``pd:100000``), before making them.

libvips images are lazy, so their size is known before a pixel is computed; this step runs
right after scaling and again after the steps that grow the canvas, before anything
(rotation, smart crop, the save) would materialise gigapixels. The limit is
IMGPROXY_MAX_RESULT_RESOLUTION, counted over all frames of an animation together.
"""

from __future__ import annotations

from imgproxy_py.errors import InvalidImageError
from imgproxy_py.processing.context import PipelineContext


def result_guard(ctx: PipelineContext) -> None:
    limit = ctx.limits.max_result_resolution
    if limit > 0 and ctx.img.width * ctx.img.height > limit:
        raise InvalidImageError(
            f"result {ctx.img.width}x{ctx.img.height} exceeds IMGPROXY_MAX_RESULT_RESOLUTION",
            public_message="Result image is too large",
        )
