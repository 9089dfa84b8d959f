"""Per-image state carried through the pipeline (imgproxy's pipeline Context).

Built in one place, ``Processor._context`` (processing/processor.py), for the image, each
frame of an animation and an animation's finalize.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from imgproxy_py.errors import RequestTimeoutError
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.options.model import Gravity, ProcessingOptions
from imgproxy_py.processing import geometry
from imgproxy_py.processing.faces import FaceTrack
from imgproxy_py.processing.geometry import Scales, Sizes
from imgproxy_py.processing.intermediates import IntermediateCache
from imgproxy_py.processing.limits import Limits


@dataclass(slots=True)
class PipelineContext:
    img: Any  # pyvips.Image
    po: ProcessingOptions
    source_format: ImageFormat
    target_format: ImageFormat
    data: bytes | None  # source bytes, for shrink-on-load reloads; None once that is impossible
    deadline: float = float("inf")  # time.monotonic() value
    limits: Limits = field(default_factory=Limits)  # this request's (per frame for an animation's frames)
    hdr: bool = False  # 16 bits per channel kept to the output (preserve_hdr)
    animated: bool = False  # frames of an animation: trim is off, as in imgproxy
    watermark: Any = None  # processing.watermark_image.WatermarkImage, or None when none is configured

    # Filled by calc_params(); all sizes are in the oriented frame.
    angle: int = 0
    flip: bool = False
    src_width: int = 0
    src_height: int = 0
    crop_width: int = 0
    crop_height: int = 0
    crop_gravity: Gravity = field(default_factory=Gravity)
    width_to_scale: int = 0
    height_to_scale: int = 0
    wscale: float = 1.0
    hscale: float = 1.0
    dpr_scale: float = 1.0
    sizes: Sizes = field(default_factory=lambda: Sizes(0, 0, 0, 0, 0, 0, 0, 0))
    icc_imported: bool = False
    vector_scale: float = 1.0  # the scale a vector source is currently rendered at
    source_key: str | None = None  # identity + version of the source, for reuse across variants
    intermediates: IntermediateCache | None = None
    hot: bool = False  # the source was seen recently: keep its decoded intermediate
    faces: FaceTrack | None = None  # None: no face detection for this image (animations, no detector)
    stream: Any = None  # processing.streamed.StreamedInput: ``img`` is the header only; decode from this
    owned: Any = None  # an image this job made for itself alone (strip_metadata's copy): see vips.owning

    @property
    def is_vector(self) -> bool:
        return self.source_format.is_vector and self.data is not None

    @property
    def swaps_axes(self) -> bool:
        """The EXIF and the user rotation together turn the image by 90° or 270°."""
        return (self.angle + self.po.rotate) % 180 != 0

    def check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            raise RequestTimeoutError("processing deadline exceeded")

    def calc_params(self) -> None:
        """Recompute orientation, crop sizes, scales and target sizes from the current image."""
        orientation = _orientation(self.img) if self.po.auto_rotate else 1
        self.angle, self.flip = geometry.orientation_to_angle_flip(orientation)
        width, height = self.img.width, _frame_height(self.img)
        if self.swaps_axes:
            width, height = height, width
        self.src_width, self.src_height = width, height
        self.crop_width = geometry.crop_size(width, self.po.crop.width)
        self.crop_height = geometry.crop_size(height, self.po.crop.height)
        self.crop_gravity = self.po.crop.gravity or self.po.gravity
        self.width_to_scale = geometry.min_non_zero(self.crop_width, width)
        self.height_to_scale = geometry.min_non_zero(self.crop_height, height)
        scales = geometry.calc_scale(self.width_to_scale, self.height_to_scale, self.po, is_vector=self.is_vector)
        sizes = geometry.calc_sizes(self.width_to_scale, self.height_to_scale, scales, self.po)
        scales, sizes = geometry.limit_scale(
            self.width_to_scale, self.height_to_scale, scales, sizes, self.po, self.limits.max_result_dimension
        )
        self.wscale, self.hscale, self.dpr_scale = scales.wscale, scales.hscale, scales.dpr_scale
        self.sizes = sizes

    @property
    def scales(self) -> Scales:
        return Scales(self.wscale, self.hscale, self.dpr_scale)


def _orientation(img: Any) -> int:
    if img.get_typeof("orientation") == 0:
        return 1
    value = int(img.get("orientation"))
    return value if 1 <= value <= 8 else 1


def _frame_height(img: Any) -> int:
    if img.get_typeof("page-height") != 0:
        page_height = int(img.get("page-height"))
        if 0 < page_height <= img.height and img.height % page_height == 0:
            return page_height
    return int(img.height)
