"""Image processing: bytes + options → encoded result. Synchronous; runs on a worker thread.

The header is read first and every limit is checked before a single pixel is decoded;
then the fixed pipeline runs and the result is encoded. libvips errors (corrupt or
unsupported data) become BrokenImageError (422); anything else is a bug and propagates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from imgproxy_py.errors import BrokenImageError, InvalidImageError, UnsupportedFormatError
from imgproxy_py.imagetype import SAVABLE, ImageFormat, sniff
from imgproxy_py.options.model import ProcessingOptions
from imgproxy_py.processing import pipeline, vips
from imgproxy_py.processing.context import PipelineContext, _frame_height
from imgproxy_py.processing.encode import EncoderSettings, encode, resolve_quality
from imgproxy_py.processing.format_choice import NO_CLIENT_FORMATS, ClientFormats, choose_format
from imgproxy_py.processing.intermediates import IntermediateCache
from imgproxy_py.processing.steps.scale_on_load import load_options
from imgproxy_py.settings import OptionSettings, Settings

LOADABLE = frozenset(
    {
        ImageFormat.JPEG,
        ImageFormat.PNG,
        ImageFormat.WEBP,
        ImageFormat.AVIF,
        ImageFormat.HEIC,
        ImageFormat.GIF,
        ImageFormat.TIFF,
        ImageFormat.SVG,
    }
)


@dataclass(frozen=True, slots=True)
class ProcessingConfig:
    """The slice of settings processing needs, built once per process."""

    options: OptionSettings = field(default_factory=OptionSettings)
    max_src_resolution: int = 50_000_000
    encoder: EncoderSettings = field(default_factory=EncoderSettings)

    @classmethod
    def from_settings(cls, settings: Settings) -> ProcessingConfig:
        proc = settings.processing
        encoder = EncoderSettings(
            jpeg_progressive=proc.jpeg_progressive,
            png_interlaced=proc.png_interlaced,
            webp_effort=proc.webp_effort,
            avif_speed=proc.avif_speed,
        )
        return cls(options=settings.options, max_src_resolution=settings.security.max_src_resolution, encoder=encoder)


@dataclass(frozen=True, slots=True)
class ProcessResult:
    data: bytes
    format: ImageFormat
    width: int
    height: int
    source_format: ImageFormat
    source_width: int
    source_height: int


def process(
    data: bytes,
    po: ProcessingOptions,
    config: ProcessingConfig,
    client: ClientFormats = NO_CLIENT_FORMATS,
    deadline: float = math.inf,
    source_key: str | None = None,
    intermediates: IntermediateCache | None = None,
) -> ProcessResult:
    source_format = sniff(data)
    if source_format is None or source_format not in LOADABLE:
        raise InvalidImageError("source image type is not supported")
    try:
        hot = intermediates.admit(source_key) if intermediates and source_key else False
        return _process(data, source_format, po, config, client, deadline, source_key, intermediates, hot)
    except vips.Error as exc:
        # The detail comes from libvips' global error buffer (possibly another thread's):
        # it is logged by the caller, never branched on, never shown to the client.
        raise BrokenImageError(f"libvips: {str(exc).splitlines()[0][:200]}") from None


def _process(
    data: bytes,
    source_format: ImageFormat,
    po: ProcessingOptions,
    config: ProcessingConfig,
    client: ClientFormats,
    deadline: float,
    source_key: str | None,
    intermediates: IntermediateCache | None,
    hot: bool,
) -> ProcessResult:
    img = vips.open_source(data, **load_options(source_format))
    img, vector_scale = _check_header(img, data, source_format, config.max_src_resolution)
    source_width, source_height = img.width, _frame_height(img)

    expect_alpha = img.hasalpha() or po.extend.enabled
    target = choose_format(
        po.format,
        client,
        source_format,
        animated=False,
        expect_alpha=expect_alpha,
        preferred=config.options.preferred_formats,
    )
    if target not in SAVABLE:
        raise UnsupportedFormatError(f"cannot save {target.value}")

    ctx = PipelineContext(
        img=img,
        po=po,
        source_format=source_format,
        target_format=target,
        data=data,
        deadline=deadline,
        max_src_resolution=config.max_src_resolution,
        vector_scale=vector_scale,
        source_key=source_key,
        intermediates=intermediates,
        hot=hot,
    )
    ctx.calc_params()
    pipeline.run(pipeline.MAIN, ctx)
    pipeline.run(pipeline.FINALIZE, ctx)

    out = ctx.img
    if target is ImageFormat.AVIF and (out.width < 16 or out.height < 16):
        target = ImageFormat.PNG if out.hasalpha() else ImageFormat.JPEG
    quality = resolve_quality(target, po, config.options)
    encoded = encode(out, target, quality, not po.strip_metadata, config.encoder)
    return ProcessResult(
        data=encoded,
        format=target,
        width=out.width,
        height=out.height,
        source_format=source_format,
        source_width=source_width,
        source_height=source_height,
    )


def _check_header(img: Any, data: bytes, fmt: ImageFormat, max_resolution: int) -> tuple[Any, float]:
    """Refuse oversized sources from the header alone; render oversized SVGs smaller instead.

    Returns the image and, for vectors, the scale it is rendered at (1 for rasters).
    """
    pixels = img.width * img.height
    if fmt.is_vector:
        if pixels > max_resolution:
            scale = math.sqrt(max_resolution / pixels)
            return vips.open_source(data, **load_options(fmt), scale=scale), scale
        return img, 1.0
    if pixels == 0 or pixels > max_resolution:
        raise InvalidImageError(f"source resolution {img.width}x{img.height} exceeds the limit")
    return img, 1.0
