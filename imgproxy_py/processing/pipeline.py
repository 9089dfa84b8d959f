"""The fixed processing order; URL option order never changes it (imgproxy mainPipeline)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from imgproxy_py.processing.context import PipelineContext
from imgproxy_py.processing.steps.apply_watermark import watermark
from imgproxy_py.processing.steps.colorspace import colorspace_to_processing, colorspace_to_result
from imgproxy_py.processing.steps.crop import crop, crop_to_result
from imgproxy_py.processing.steps.detections import overlay_detections
from imgproxy_py.processing.steps.extend import extend, extend_aspect_ratio
from imgproxy_py.processing.steps.filters import apply_filters
from imgproxy_py.processing.steps.fix_size import fix_size
from imgproxy_py.processing.steps.flatten import flatten
from imgproxy_py.processing.steps.padding import padding
from imgproxy_py.processing.steps.result_guard import result_guard
from imgproxy_py.processing.steps.rotate_and_flip import rotate_and_flip
from imgproxy_py.processing.steps.scale import scale
from imgproxy_py.processing.steps.scale_on_load import scale_on_load
from imgproxy_py.processing.steps.strip_metadata import strip_metadata
from imgproxy_py.processing.steps.trim import trim

Step = Callable[[PipelineContext], None]

MAIN: tuple[Step, ...] = (
    trim,
    scale_on_load,
    colorspace_to_processing,
    crop,
    scale,
    result_guard,
    rotate_and_flip,
    crop_to_result,
    apply_filters,
    overlay_detections,
    extend,
    extend_aspect_ratio,
    padding,
    result_guard,
    fix_size,
    flatten,
    watermark,
)

FINALIZE: tuple[Step, ...] = (colorspace_to_result, strip_metadata)


def run(steps: Sequence[Step], ctx: PipelineContext) -> None:
    for step in steps:
        step(ctx)
        ctx.check_deadline()
