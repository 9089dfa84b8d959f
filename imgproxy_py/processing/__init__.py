"""Image processing: bytes + options → encoded result. Synchronous; runs on a worker thread.

The header is read first and every limit is checked before a single pixel is decoded;
then the fixed pipeline runs and the result is encoded. libvips errors (corrupt or
unsupported data) become BrokenImageError (422); anything else is a bug and propagates.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from imgproxy_py.analysis.detector import Detection
from imgproxy_py.errors import BrokenImageError, InvalidImageError, UnsupportedFormatError
from imgproxy_py.imagetype import SAVABLE, ImageFormat, sniff, sniff_video
from imgproxy_py.options.model import ProcessingOptions
from imgproxy_py.processing import animation, aqfeatures, codecs, ico, pipeline, svg, vips
from imgproxy_py.processing import external as external_codec
from imgproxy_py.processing.context import PipelineContext, _frame_height
from imgproxy_py.processing.encode import EncoderSettings, encode, encode_to_fit, resolve_quality
from imgproxy_py.processing.faces import NO_FACES, FaceOptions, FaceTrack
from imgproxy_py.processing.format_choice import NO_CLIENT_FORMATS, ClientFormats, choose_format
from imgproxy_py.processing.intermediates import IntermediateCache
from imgproxy_py.processing.jpeg_scans import scan_count_bound
from imgproxy_py.processing.limits import Limits, check_raster
from imgproxy_py.processing.quality import (
    AUTOQUALITY_FORMATS,
    AutoQualityDefaults,
    NumpyReference,
    correct,
    measurable,
    search,
    size_bucket,
)
from imgproxy_py.processing.steps.scale_on_load import load_options
from imgproxy_py.processing.streamed import StreamedInput
from imgproxy_py.processing.svg_cost import check_svg_cost
from imgproxy_py.processing.watermark import WatermarkImage, load_watermark
from imgproxy_py.quality_model.features import Sample
from imgproxy_py.quality_model.serving import MlOutcome, QualityModelService
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
    autoquality: AutoQualityDefaults = field(default_factory=AutoQualityDefaults)
    best_by_default: bool = False  # IMGPROXY_BEST_FORMAT_BY_DEFAULT
    best_max_resolution: float = 0.0  # megapixels; above it f:best takes its first candidate untried
    video_thumbnails: bool = False  # IMGPROXY_ENABLE_VIDEO_THUMBNAILS
    max_video_duration: float = 3600.0  # seconds
    # aq:ml (set by the server; None: aq:ml searches). Not in the settings fingerprint: the serving
    # version goes into aq:ml results' cache keys instead (server/handlers.py).
    quality_model: QualityModelService | None = field(default=None, compare=False)
    collect_samples: bool = False  # IMGPROXY_AUTOQUALITY_DATASET: a training sample from every search

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
            autoquality=AutoQualityDefaults(
                method=settings.analysis.autoquality_method,
                target=settings.analysis.autoquality_target,
                min_quality=settings.analysis.autoquality_min,
                max_quality=settings.analysis.autoquality_max,
                allowed_error=settings.analysis.autoquality_allowed_error,
                format_min=tuple(sorted(settings.analysis.autoquality_format_min.items(), key=lambda i: i[0].value)),
                format_max=tuple(sorted(settings.analysis.autoquality_format_max.items(), key=lambda i: i[0].value)),
            ),
            best_by_default=settings.analysis.best_format_by_default,
            best_max_resolution=settings.analysis.best_format_max_resolution,
            video_thumbnails=proc.video_thumbnails,
            max_video_duration=proc.max_video_duration,
            collect_samples=bool(settings.analysis.autoquality_dataset),
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
    # What this request learnt about the source, for the feature store (None/empty: nothing new).
    faces: tuple[Detection, ...] | None = None  # stored frame; only when the detector ran here
    detect_seconds: float = 0.0
    qualities: tuple[tuple[str, int], ...] = ()  # ("<size bucket>:<format>", quality) chosen by a search
    encodes: int = 1
    samples: tuple[Sample, ...] = ()  # training rows from DSSIM searches (collect_samples)
    ml: tuple[MlOutcome, ...] = ()  # what aq:ml did, per format
    searched: tuple[tuple[str, int, float], ...] = ()  # DSSIM searches run here: (format, quality, achieved DSSIM)


def process(
    data: bytes,
    po: ProcessingOptions,
    config: ProcessingConfig,
    client: ClientFormats = NO_CLIENT_FORMATS,
    deadline: float = math.inf,
    source_key: str | None = None,
    intermediates: IntermediateCache | None = None,
    faces: FaceOptions = NO_FACES,
    quality_hints: Mapping[str, int] | None = None,
) -> ProcessResult:
    """``faces``: the detector and any faces already known; ``quality_hints``: stored auto-quality choices."""
    source_format = sniff(data)
    if source_format is None and config.video_thumbnails and (container := sniff_video(data)):
        try:
            return _video_still(data, container, po, config, client, deadline)
        except (vips.Error, UnicodeDecodeError) as exc:
            raise _broken(exc) from None
    if source_format is None or source_format not in LOADABLE:
        raise InvalidImageError("source image type is not supported")
    try:
        # f:best rasterises and compares (imgproxy's default, IMGPROXY_BEST_FORMAT_ALLOW_SKIPS=false).
        rasterize = config.always_rasterize_svg or po.format_best
        if source_format is ImageFormat.SVG and svg.passes_through(po.format, rasterize):
            return _svg_passthrough(data, config.sanitize_svg)
        limits = config.limits.for_request(po)
        if skips_processing(source_format, po):
            if source_format is ImageFormat.SVG:  # skp:svg with IMGPROXY_ALWAYS_RASTERIZE_SVG: still sanitised
                return _svg_passthrough(data, config.sanitize_svg)
            return _passthrough(data, source_format, limits)
        if source_format is ImageFormat.SVG:
            check_svg_cost(data)  # before librsvg renders a single element
        hot = intermediates.admit(source_key) if intermediates and source_key else False
        return _process(
            data,
            source_format,
            po,
            config,
            client,
            deadline,
            source_key,
            intermediates,
            hot,
            limits,
            faces,
            quality_hints,
        )
    except (vips.Error, UnicodeDecodeError) as exc:
        raise _broken(exc) from None


def _broken(exc: Exception) -> BrokenImageError:
    """A libvips failure as the client's 422.

    pyvips decodes libvips' messages and field names as UTF-8; a hostile file can put other
    bytes there, and then the decode fails instead of the libvips call. The detail comes from
    libvips' global error buffer (possibly another thread's): it is logged by the caller, never
    branched on, never shown to the client.
    """
    return BrokenImageError(f"libvips: {str(exc).splitlines()[0][:200]}")


def process_stream(
    stream: StreamedInput,
    po: ProcessingOptions,
    config: ProcessingConfig,
    client: ClientFormats = NO_CLIENT_FORMATS,
    deadline: float = math.inf,
    source_key: str | None = None,
    intermediates: IntermediateCache | None = None,
    faces: FaceOptions = NO_FACES,
    quality_hints: Mapping[str, int] | None = None,
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
            stream.head,
            source_format,
            po,
            config,
            client,
            deadline,
            source_key,
            intermediates,
            hot,
            limits,
            faces,
            quality_hints,
            stream=stream,
        )
    except (vips.Error, UnicodeDecodeError) as exc:
        raise _broken(exc) from None
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
    faces: FaceOptions = NO_FACES,
    quality_hints: Mapping[str, int] | None = None,
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
    best = _best_candidates(po, config, client, animated=animated, expect_alpha=expect_alpha)
    target = (
        best[0]
        if best
        else choose_format(
            po.format,
            client,
            source_format,
            animated=animated,
            expect_alpha=expect_alpha,
            preferred=config.options.preferred_formats,
        )
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
        # Sources decoded outside libvips, or still streaming, cannot be re-read by it: the detector
        # uses the pipeline's image.
        faces=FaceTrack(faces, None if external or stream is not None else data) if faces.available else None,
        stream=stream,
    )
    ctx.calc_params()
    pipeline.run(pipeline.MAIN, ctx)
    pipeline.run(pipeline.FINALIZE, ctx)

    result = _encode(
        ctx.img, target, po, config, source_format, source_width, source_height, best=best, hints=quality_hints
    )
    track = ctx.faces
    if track is not None and track.ran_detector and track.complete and track.raw is not None:
        result = dataclasses.replace(result, faces=tuple(track.raw), detect_seconds=track.detect_seconds)
    return result


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
    best: tuple[ImageFormat, ...] = (),
    hints: Mapping[str, int] | None = None,
) -> ProcessResult:
    small = out.width < 16 or out.height < 16
    candidates = [f for f in best if not (f is ImageFormat.AVIF and small)] or [target]
    if target is ImageFormat.AVIF and small:
        target = ImageFormat.PNG if out.hasalpha() else ImageFormat.JPEG
        candidates = [target]
    if (
        len(candidates) > 1
        and config.best_max_resolution
        and (out.width * out.height > config.best_max_resolution * 1_000_000)
    ):
        candidates = candidates[:1]
    if len(candidates) > 1 or _autoquality_on(po, config, frames):
        out = vips.pixels(out)  # encoded several times: evaluate the pipeline once
    reference: list[NumpyReference] = []  # built on the first search, shared by every candidate format
    results = [
        _encode_one(out, fmt, po, config, frames, len(candidates) > 1, hints or {}, reference) for fmt in candidates
    ]
    data, fmt, qualities, encodes = min(results, key=lambda r: len(r[0]))[:4]
    height = _frame_height(out) if frames else out.height
    return ProcessResult(
        data=data,
        format=fmt,
        width=out.width,
        height=height,
        source_format=source_format,
        source_width=source_width,
        source_height=source_height,
        qualities=tuple(q for r in results for q in r[2]),
        encodes=sum(r[3] for r in results),
        samples=tuple(r[4] for r in results if r[4] is not None),
        ml=tuple(r[5] for r in results if r[5] is not None),
        searched=tuple(r[6] for r in results if r[6] is not None),
    )


def _autoquality_on(po: ProcessingOptions, config: ProcessingConfig, frames: bool) -> bool:
    method = po.autoquality.method or config.autoquality.method
    return method in ("dssim", "ml") and not frames


def _encode_one(
    out: Any,
    fmt: ImageFormat,
    po: ProcessingOptions,
    config: ProcessingConfig,
    frames: bool,
    best: bool,
    hints: Mapping[str, int],
    reference: list[NumpyReference],
) -> tuple[
    bytes, ImageFormat, list[tuple[str, int]], int, Sample | None, MlOutcome | None, tuple[str, int, float] | None
]:
    """One format: auto-quality when asked (always for ``f:best``, as imgproxy may), else the configured quality."""
    keep = not po.strip_metadata
    searchable = fmt in AUTOQUALITY_FORMATS and not po.quality and not frames and measurable(out)
    if searchable and (best and po.autoquality.method != "none" or _autoquality_on(po, config, frames)):
        aq = po.autoquality
        method = aq.method or config.autoquality.method
        params = config.autoquality.params(fmt, "dssim", aq.target, aq.min_quality, aq.max_quality, aq.allowed_error)
        # A stored choice is only valid for the same size bucket, format and search parameters.
        bucket = size_bucket(out.width, out.height)
        key = f"{bucket}:{fmt.value}:{params.target:g}:{params.min_quality}-{params.max_quality}"
        hinted = hints.get(key)
        sample: Sample | None = None
        outcome: MlOutcome | None = None
        searched: tuple[str, int, float] | None = None

        def encode_at(q: int) -> bytes:
            return encode(out, fmt, q, keep, config.encoder)

        def measure(blob: bytes) -> float:
            if not reference:
                reference.append(NumpyReference(out))
            return reference[0].dssim(blob, lambda data: _decode_candidate(data, fmt, out.width * out.height))

        if hinted is not None and params.min_quality <= hinted <= params.max_quality:
            data = encode_at(hinted)  # a repeat: the stored choice, one encode
            choice_q, encodes = hinted, 1
        else:
            features: tuple[float, ...] | None = None
            prediction = None
            if method == "ml" and config.quality_model is not None:
                features = aqfeatures.compute(out)
                prediction = config.quality_model.predict(
                    features, fmt.value, params.target, params.min_quality, params.max_quality
                )
            if prediction is not None and features is not None:
                choice = correct(encode_at, measure, params, prediction.quality)
                outcome = MlOutcome(
                    prediction.version, prediction.quality, choice.quality, choice.dssim, choice.encodes, features
                )
            else:
                choice = search(encode_at, measure, params)
                if choice.dssim is not None:
                    searched = (fmt.value, choice.quality, choice.dssim)
                if method == "ml":
                    outcome = MlOutcome("fallback", 0, choice.quality, choice.dssim, choice.encodes)
                elif config.collect_samples:
                    features = aqfeatures.compute(out)
                    sizes = dict(choice.sizes)
                    trail = tuple((q, d, sizes.get(q, 0)) for q, d in choice.trail)
                    sample = Sample(fmt.value, bucket, params.target, features, choice.quality, trail)
            data, choice_q, encodes = choice.data, choice.quality, choice.encodes
        if po.max_bytes and len(data) > po.max_bytes:
            data = encode_to_fit(out, fmt, choice_q, po.max_bytes, keep, config.encoder)
        return data, fmt, [(key, choice_q)], encodes, sample, outcome, searched
    quality = resolve_quality(fmt, po, config.options)
    return encode_to_fit(out, fmt, quality, po.max_bytes, keep, config.encoder), fmt, [], 1, None, None, None


def _decode_candidate(data: bytes, fmt: ImageFormat, pixels: int) -> Any:
    """An encoded candidate (``pixels`` large, our own output) back to pixels: libvips, or the
    external codec for what libvips cannot read."""
    if codecs.decodes(data, fmt):
        return external_codec.load(data, fmt, pixels)
    return vips.open_source(data)


_BEST_FORMATS = (ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.WEBP, ImageFormat.AVIF, ImageFormat.JXL)


def _best_candidates(
    po: ProcessingOptions, config: ProcessingConfig, client: ClientFormats, *, animated: bool, expect_alpha: bool
) -> tuple[ImageFormat, ...]:
    """``f:best``: the preferred formats plus WebP/AVIF when the client takes them (imgproxy's rule)."""
    if not (po.format_best or (config.best_by_default and po.format is None)) or animated:
        return ()
    formats = [f for f in config.options.preferred_formats if f in _BEST_FORMATS]
    if client.webp:
        formats.append(ImageFormat.WEBP)
    if client.avif:
        formats.append(ImageFormat.AVIF)
    formats = [f for f in dict.fromkeys(formats) if f in SAVABLE and (f.supports_alpha or not expect_alpha)]
    if not formats:
        formats = [ImageFormat.PNG if expect_alpha else ImageFormat.JPEG]
    return tuple(formats)


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
    if po.format_best:  # best is never "the same format" (IMGPROXY_BEST_FORMAT_ALLOW_SKIPS is not supported)
        return False
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
