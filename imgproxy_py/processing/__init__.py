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
from imgproxy_py.imagetype import SAVABLE, ImageFormat, sniff, sniff_video
from imgproxy_py.options.model import ProcessingOptions
from imgproxy_py.processing import animation, codecs, ico, pipeline, svg, vips
from imgproxy_py.processing import external as external_codec
from imgproxy_py.processing.context import PipelineContext, _frame_height
from imgproxy_py.processing.encode import EncoderSettings, encode_to_fit, resolve_quality
from imgproxy_py.processing.format_choice import NO_CLIENT_FORMATS, ClientFormats, choose_format
from imgproxy_py.processing.intermediates import IntermediateCache
from imgproxy_py.processing.jpeg_scans import scan_count_bound
from imgproxy_py.processing.limits import Limits, check_raster
from imgproxy_py.processing.steps.scale_on_load import load_options
from imgproxy_py.processing.streamed import StreamedInput
from imgproxy_py.processing.svg_cost import check_svg_cost
from imgproxy_py.processing.watermark import WatermarkImage, load_watermark
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
        ImageFormat.ICO,  # PNG entries only (processing/ico.py)
        ImageFormat.BMP,  # Pillow (processing/codecs/bmp.py)
        ImageFormat.JXL,  # libjxl through imagecodecs (processing/codecs/jxl.py)
    }
)
_THUMBNAIL_FORMATS = frozenset({ImageFormat.HEIC, ImageFormat.AVIF})


MAX_JPEG_SCANS = 100


@dataclass(frozen=True, slots=True)
class ProcessingConfig:
    """The slice of settings processing needs, built once per process."""

    options: OptionSettings = field(default_factory=OptionSettings)
    max_src_resolution: int = 50_000_000
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    sanitize_svg: bool = True
    always_rasterize_svg: bool = False
    # The configured limits; a URL's security options override them per request (processing.limits).
    max_src_file_size: int = 0
    max_animation_frames: int = 100
    max_animation_frame_resolution: int = 0
    max_result_dimension: int = 0
    max_result_resolution: int = 100_000_000  # pixels of a result (all frames); larger is refused, 422
    watermark: WatermarkImage | None = None  # decoded once, at start-up
    video_thumbnails: bool = False  # IMGPROXY_ENABLE_VIDEO_THUMBNAILS
    max_video_duration: float = 3600.0  # seconds

    @property
    def limits(self) -> Limits:
        return Limits(
            max_src_resolution=self.max_src_resolution,
            max_src_file_size=self.max_src_file_size,
            max_animation_frames=self.max_animation_frames,
            max_animation_frame_resolution=self.max_animation_frame_resolution,
            max_result_dimension=self.max_result_dimension,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ProcessingConfig:
        proc = settings.processing
        encoder = EncoderSettings(
            jpeg_progressive=proc.jpeg_progressive,
            png_interlaced=proc.png_interlaced,
            webp_effort=proc.webp_effort,
            avif_speed=proc.avif_speed,
            jxl_effort=proc.jxl_effort,
        )
        return cls(
            options=settings.options,
            max_src_resolution=settings.security.max_src_resolution,
            encoder=encoder,
            sanitize_svg=proc.sanitize_svg,
            always_rasterize_svg=proc.always_rasterize_svg,
            max_src_file_size=settings.security.max_src_file_size,
            max_animation_frames=settings.security.max_animation_frames,
            max_animation_frame_resolution=settings.security.max_animation_frame_resolution,
            max_result_dimension=settings.security.max_result_dimension,
            max_result_resolution=settings.security.max_result_resolution,
            watermark=load_watermark(settings.watermark, settings.sources.download_timeout),
            video_thumbnails=proc.video_thumbnails,
            max_video_duration=proc.max_video_duration,
        )


@dataclass(frozen=True, slots=True)
class ProcessResult:
    data: bytes
    format: ImageFormat
    width: int
    height: int
    source_format: ImageFormat
    source_width: int
    source_height: int
    passthrough: bool = False  # skip_processing: ``data`` is the source, byte for byte


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
    if source_format is None and config.video_thumbnails and (container := sniff_video(data)):
        try:
            return _video_still(data, container, po, config, client, deadline)
        except (vips.Error, UnicodeDecodeError) as exc:
            raise BrokenImageError(f"libvips: {str(exc).splitlines()[0][:200]}") from None
    if source_format is None or source_format not in LOADABLE:
        raise InvalidImageError("source image type is not supported")
    try:
        if source_format is ImageFormat.SVG and svg.passes_through(po.format, config.always_rasterize_svg):
            return _svg_passthrough(data, config.sanitize_svg)
        limits = config.limits.for_request(po)
        if skips_processing(source_format, po):
            if source_format is ImageFormat.SVG:  # skp:svg with IMGPROXY_ALWAYS_RASTERIZE_SVG: still sanitised
                return _svg_passthrough(data, config.sanitize_svg)
            return _passthrough(data, source_format, limits)
        if source_format is ImageFormat.SVG:
            check_svg_cost(data)  # before librsvg renders a single element
        hot = intermediates.admit(source_key) if intermediates and source_key else False
        return _process(data, source_format, po, config, client, deadline, source_key, intermediates, hot, limits)
    except (vips.Error, UnicodeDecodeError) as exc:
        # pyvips decodes libvips' messages and field names as UTF-8; a hostile file can put
        # other bytes there, and then the decode fails instead of the libvips call.
        # The detail comes from libvips' global error buffer (possibly another thread's):
        # it is logged by the caller, never branched on, never shown to the client.
        raise BrokenImageError(f"libvips: {str(exc).splitlines()[0][:200]}") from None


def process_stream(
    stream: StreamedInput,
    po: ProcessingOptions,
    config: ProcessingConfig,
    client: ClientFormats = NO_CLIENT_FORMATS,
    deadline: float = math.inf,
    source_key: str | None = None,
    intermediates: IntermediateCache | None = None,
) -> ProcessResult:
    """``process`` for a source still downloading (processing/streamed.py decided it can stream).

    The header, and so every limit, is read from ``stream.head`` before any pixel is decoded;
    the pixels are decoded from the stream as they arrive, shrunk on load.
    """
    try:
        source_format = sniff(stream.head)
        if source_format not in (ImageFormat.JPEG, ImageFormat.PNG):
            raise InvalidImageError("source image type is not supported")  # pragma: no cover - the caller checks
        limits = config.limits.for_request(po)
        hot = intermediates.admit(source_key) if intermediates and source_key else False
        return _process(
            stream.head, source_format, po, config, client, deadline, source_key, intermediates, hot, limits, stream
        )
    except (vips.Error, UnicodeDecodeError) as exc:
        raise BrokenImageError(f"libvips: {str(exc).splitlines()[0][:200]}") from None
    finally:
        stream.close()  # libvips holds its own duplicate of the descriptor while an image needs it


def _video_still(
    data: bytes,
    container: str,
    po: ProcessingOptions,
    config: ProcessingConfig,
    client: ClientFormats,
    deadline: float,
) -> ProcessResult:
    """A still of a video through the normal pipeline; it counts as a JPEG source for the format choice."""
    limits = config.limits.for_request(po)
    _, img = external_codec.video_still(
        data, container, po.video_thumbnail_second, limits.max_src_resolution, config.max_video_duration
    )
    return _process(data, ImageFormat.JPEG, po, config, client, deadline, None, None, False, limits, preloaded=img)


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
    limits: Limits,
    stream: StreamedInput | None = None,
    preloaded: Any = None,
) -> ProcessResult:
    if source_format is ImageFormat.ICO:
        data = _ico_image(data)
    # enforce_thumbnail: the embedded HEIF thumbnail *is* the source (libvips falls back to the
    # primary image when there is none); shrink-on-load must then not reload the full image.
    thumbnail = po.enforce_thumbnail and source_format in _THUMBNAIL_FORMATS
    external = preloaded is not None or codecs.decodes(data, source_format)
    if preloaded is not None:  # a video still, already decoded and checked
        img, vector_scale = preloaded, 1.0
    elif external:
        # Decoded outside libvips (BMP, HEVC HEIC, JPEG XL): limits checked on the probed header
        # first; the pixels then go through the same pipeline, with no reload to shrink on.
        img = external_codec.load(data, source_format, limits.max_src_resolution, thumbnail)
        vector_scale = 1.0
    else:
        img = vips.open_source(data, **load_options(source_format), **({"thumbnail": True} if thumbnail else {}))
        img, vector_scale = _check_header(img, data, source_format, limits.max_src_resolution)
    source_width, source_height = img.width, _frame_height(img)

    expect_alpha = po.background is None and (img.hasalpha() or po.extend.enabled or po.padding.enabled)
    animated = animation.is_animation(source_format, img, limits)
    target = choose_format(
        po.format,
        client,
        source_format,
        animated=animated,
        expect_alpha=expect_alpha,
        preferred=config.options.preferred_formats,
    )
    if target not in SAVABLE:
        raise UnsupportedFormatError(f"cannot save {target.value}")
    if animated and target.supports_animation:
        joined = animation.transform(
            data, img, po, source_format, target, limits, deadline, config.watermark, config.max_result_resolution
        )
        ctx = PipelineContext(
            img=joined,
            po=po,
            source_format=source_format,
            target_format=target,
            data=None,
            deadline=deadline,
            animated=True,
        )
        pipeline.run(pipeline.FINALIZE, ctx)
        return _encode(ctx.img, target, po, config, source_format, source_width, source_height, frames=True)

    ctx = PipelineContext(
        img=img,
        po=po,
        source_format=source_format,
        target_format=target,
        data=None if thumbnail or external or stream is not None else data,
        deadline=deadline,
        max_src_resolution=limits.max_src_resolution,
        max_result_dimension=limits.max_result_dimension,
        max_result_resolution=config.max_result_resolution,
        watermark=config.watermark,
        vector_scale=vector_scale,
        source_key=source_key,
        intermediates=intermediates,
        hot=hot,
        stream=stream,
    )
    ctx.calc_params()
    pipeline.run(pipeline.MAIN, ctx)
    pipeline.run(pipeline.FINALIZE, ctx)

    return _encode(ctx.img, target, po, config, source_format, source_width, source_height)


def _encode(
    out: Any,
    target: ImageFormat,
    po: ProcessingOptions,
    config: ProcessingConfig,
    source_format: ImageFormat,
    source_width: int,
    source_height: int,
    *,
    frames: bool = False,
) -> ProcessResult:
    if target is ImageFormat.AVIF and (out.width < 16 or out.height < 16):
        target = ImageFormat.PNG if out.hasalpha() else ImageFormat.JPEG
    quality = resolve_quality(target, po, config.options)
    encoded = encode_to_fit(out, target, quality, po.max_bytes, not po.strip_metadata, config.encoder)
    height = _frame_height(out) if frames else out.height
    return ProcessResult(
        data=encoded,
        format=target,
        width=out.width,
        height=height,
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
    check_raster(img.width, img.height, max_resolution)
    if fmt is ImageFormat.JPEG and scan_count_bound(data) > MAX_JPEG_SCANS:
        # Each progressive scan re-reads the whole image in one libjpeg call nothing can cancel:
        # hundreds of scans are a denial of service, never a real photo (they have about 10).
        raise InvalidImageError("progressive JPEG with too many scans")
    return img, 1.0


def _svg_passthrough(data: bytes, sanitize: bool) -> ProcessResult:
    """SVG in, SVG out (imgproxy's rule), sanitised unless IMGPROXY_SANITIZE_SVG is off.

    The header load reads the dimensions and proves librsvg still takes the document.
    """
    out = svg.sanitize_svg(data) if sanitize else data
    check_svg_cost(out)  # a browser would expand its <use>s too, sanitised or not
    img = vips.open_source(out, **load_options(ImageFormat.SVG))
    return ProcessResult(out, ImageFormat.SVG, img.width, img.height, ImageFormat.SVG, img.width, img.height)


def skips_processing(source_format: ImageFormat, po: ProcessingOptions) -> bool:
    """``skp``: the source format is listed and the output format is the same or not requested."""
    return source_format in po.skip_processing and (po.format is None or po.format is source_format)


def _passthrough(data: bytes, source_format: ImageFormat, limits: Limits) -> ProcessResult:
    """The source bytes untouched; the header is still read so an image bomb is not handed on."""
    if codecs.decodes(data, source_format):
        header = external_codec.probe(data, source_format, limits.max_src_resolution)
        width, height = header.width, header.height
        return ProcessResult(data, source_format, width, height, source_format, width, height, passthrough=True)
    inner = _ico_image(data) if source_format is ImageFormat.ICO else data
    img = vips.open_source(inner, **load_options(source_format))
    width, height = img.width, _frame_height(img)
    if not source_format.is_vector:
        if width * height == 0:
            raise InvalidImageError("source image is empty")
        limits.check_dimensions(width, height)
    return ProcessResult(data, source_format, width, height, source_format, width, height, passthrough=True)


def _ico_image(data: bytes) -> bytes:
    inner = ico.largest_image(data)
    if sniff(inner) is not ImageFormat.PNG:
        raise InvalidImageError("only PNG images inside ICO files are supported")
    return inner
