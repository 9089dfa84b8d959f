"""Animated GIF/WebP → animated GIF/WebP: every frame through the pipeline, timing kept.

imgproxy's default keeps one frame (its most asked-about surprise); here animations stay
animated whenever the output format can animate, within IMGPROXY_MAX_ANIMATION_FRAMES and
the resolution limit counted over all frames. Each frame runs the main pipeline on its own
(no shrink-on-load, no trim, the watermark once on the joined result); frames are joined
back vertically, which is how libvips represents an animation, with page height, delays
and loop count restored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.options.model import ProcessingOptions
from imgproxy_py.processing import pipeline, vips
from imgproxy_py.processing import watermark_image as wm
from imgproxy_py.processing.context import PipelineContext
from imgproxy_py.processing.limits import Limits
from imgproxy_py.processing.vips import load_options
from imgproxy_py.processing.watermark_image import WatermarkImage

ANIMATED_SOURCES = frozenset({ImageFormat.GIF, ImageFormat.WEBP})
DEFAULT_DELAY_MS = 40  # what imgproxy writes for frames whose delay is unknown


def page_count(img: Any) -> int:
    if img.get_typeof("n-pages") == 0:
        return 1
    return max(1, int(img.get("n-pages")))


def is_animation(source_format: ImageFormat, header: Any, limits: Limits) -> bool:
    return source_format in ANIMATED_SOURCES and page_count(header) > 1 and limits.max_animation_frames > 1


def transform(
    data: bytes,
    header: Any,
    po: ProcessingOptions,
    source_format: ImageFormat,
    limits: Limits,
    context: Callable[[Any, Limits], PipelineContext],
    watermark: WatermarkImage | None,
) -> Any:
    """The processed animation as one tall image, ready for the finalize pipeline and the saver.

    ``context`` makes the pipeline context of one frame (the processor builds every context).
    """
    frames = min(page_count(header), limits.max_animation_frames)
    limits.check_dimensions(header.width, header.height, frames)
    full = vips.open_source(data, **load_options(source_format), n=frames)
    frame_height = full.height // frames
    delays = _delays(full, frames)
    loop = int(full.get("loop")) if full.get_typeof("loop") != 0 else 0

    frame_limits = limits.per_frame(frames)
    processed = []
    ctx: PipelineContext | None = None
    for index in range(frames):
        frame = full.extract_area(0, index * frame_height, full.width, frame_height)
        ctx = context(frame, frame_limits)
        ctx.calc_params()
        pipeline.run(pipeline.MAIN, ctx)
        processed.append(ctx.img)
    assert ctx is not None
    joined = processed[0] if frames == 1 else vips.Image.arrayjoin(processed, across=1)
    if watermark is not None and po.watermark.enabled:
        joined = wm.apply(joined, watermark, po.watermark, ctx.dpr_scale, frames=frames)
    return vips.with_animation(joined, processed[0].height, delays, loop)


def _delays(img: Any, frames: int) -> list[int]:
    if img.get_typeof("delay") == 0:
        return [DEFAULT_DELAY_MS] * frames
    delays = [int(d) for d in img.get("delay")][:frames]
    return delays + [DEFAULT_DELAY_MS] * (frames - len(delays))
