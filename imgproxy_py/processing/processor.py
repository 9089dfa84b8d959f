"""The processor: built once at start-up, then ``process(job)`` for every image, on a worker thread.

It owns everything processing reads that is not the request: the configuration (with the
one ``Limits`` and the decoded watermark), the analysers steps may ask for, and the
intermediate cache. A job's header is read first and every limit is checked before a
single pixel is decoded; then the fixed pipeline runs (processing/pipeline.py) and the
result is encoded (processing/output.py). libvips errors (corrupt or unsupported data)
become BrokenImageError (422); anything else is a bug and propagates.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from imgproxy_py.analysis.detector import Detection
from imgproxy_py.errors import BrokenImageError, InvalidImageError, UnsupportedFormatError
from imgproxy_py.imagetype import SAVABLE, ImageFormat, sniff, sniff_video
from imgproxy_py.options.model import ProcessingOptions
from imgproxy_py.processing import animation, codecs, describe, ico, pipeline, svg, vips
from imgproxy_py.processing import external as external_codec
from imgproxy_py.processing.analysers import NO_ANALYSERS, Analysers
from imgproxy_py.processing.configuration import ProcessingConfig
from imgproxy_py.processing.context import PipelineContext, _frame_height
from imgproxy_py.processing.faces import FaceAnalyser, FaceTrack, detect_in_source
from imgproxy_py.processing.format_choice import choose_format
from imgproxy_py.processing.intermediates import IntermediateCache
from imgproxy_py.processing.job import Job
from imgproxy_py.processing.jpeg_scans import scan_count_bound
from imgproxy_py.processing.limits import Limits, check_raster
from imgproxy_py.processing.output import ProcessResult, best_candidates, encode_result
from imgproxy_py.processing.streamed import StreamedInput
from imgproxy_py.processing.svg_cost import check_svg_cost
from imgproxy_py.processing.vips import LOADABLE, load_options
from imgproxy_py.processing.watermark_image import WatermarkImage
from imgproxy_py.quality_model.serving import QualityModelService
from imgproxy_py.settings import Settings

_THUMBNAIL_FORMATS = frozenset({ImageFormat.HEIC, ImageFormat.AVIF})
_STREAMABLE = (ImageFormat.JPEG, ImageFormat.PNG)

MAX_JPEG_SCANS = 100


class Processor:
    """Immutable after construction: one per process, shared by every worker thread."""

    __slots__ = ("analysers", "config", "intermediates", "limits", "_faces")

    def __init__(
        self,
        config: ProcessingConfig | None = None,
        analysers: Analysers = NO_ANALYSERS,
        intermediates: IntermediateCache | None = None,
    ) -> None:
        self.config = config if config is not None else ProcessingConfig()
        self.limits: Limits = self.config.limits  # the configured ones; Limits.for_request applies a URL's
        self.analysers = analysers
        self.intermediates = intermediates
        self._faces = analysers.get(FaceAnalyser)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        watermark: bytes | None = None,
        analysers: Analysers = NO_ANALYSERS,
        quality_model: QualityModelService | None = None,
    ) -> Processor:
        """``watermark``: IMGPROXY_WATERMARK_URL's bytes, fetched by the composition root (sources/);
        ``analysers`` and ``quality_model``: loaded and monitored by the composition root."""
        size = settings.processing.intermediate_cache_size
        config = ProcessingConfig.from_settings(settings, watermark)
        if quality_model is not None:
            config = dataclasses.replace(config, quality_model=quality_model)
        return cls(
            config,
            analysers,
            IntermediateCache(size) if size else None,
        )

    @property
    def watermark(self) -> WatermarkImage | None:
        return self.config.watermark

    # --- entry points ------------------------------------------------------------------------

    def process(self, job: Job) -> ProcessResult:
        """The job's source processed and encoded; ``job.source`` may still be downloading."""
        if isinstance(job.source, StreamedInput):
            return self._process_stream(job, job.source)
        data = job.source
        po = job.options
        config = self.config
        source_format = sniff(data)
        if source_format is None and config.video_thumbnails and (container := sniff_video(data)):
            try:
                return self._video_still(job, data, container)
            except (vips.Error, UnicodeDecodeError) as exc:
                raise _broken(exc) from None
        if source_format is None or source_format not in LOADABLE:
            raise InvalidImageError("source image type is not supported")
        try:
            # f:best rasterises and compares (imgproxy's default, IMGPROXY_BEST_FORMAT_ALLOW_SKIPS=false).
            rasterize = config.always_rasterize_svg or po.format_best
            if source_format is ImageFormat.SVG and svg.passes_through(po.format, rasterize):
                return _svg_passthrough(data, config.sanitize_svg)
            limits = self.limits.for_request(po)
            if skips_processing(source_format, po):
                if source_format is ImageFormat.SVG:  # skp:svg with IMGPROXY_ALWAYS_RASTERIZE_SVG: still sanitised
                    return _svg_passthrough(data, config.sanitize_svg)
                return _passthrough(data, source_format, limits)
            if source_format is ImageFormat.SVG:
                check_svg_cost(data)  # before librsvg renders a single element
            return self._process(job, data, source_format, limits)
        except (vips.Error, UnicodeDecodeError) as exc:
            raise _broken(exc) from None

    def describe(self, job: Job) -> bytes:
        """``/info``'s JSON document for the job's source, under the request's limits."""
        if not isinstance(job.source, bytes):
            raise TypeError("/info reads whole sources")  # pragma: no cover - the server buffers them
        config = self.config
        limits = self.limits.for_request(job.options)
        return describe.info_json(
            job.source, limits.max_src_resolution, config.video_thumbnails, config.max_video_duration
        )

    def detect_faces(self, data: bytes) -> tuple[Detection, ...] | None:
        """The faces of a source in its stored frame (``/info``); None without a face detector."""
        faces = self._faces
        if faces is None or faces.detector is None:
            return None
        return detect_in_source(data, faces)

    # --- the stages --------------------------------------------------------------------------

    def _process_stream(self, job: Job, stream: StreamedInput) -> ProcessResult:
        """A source still downloading (processing/streamed.py decided it can stream).

        The header, and so every limit, is read from ``stream.head`` before any pixel is decoded;
        the pixels are decoded from the stream as they arrive, shrunk on load.
        """
        try:
            source_format = sniff(stream.head)
            if source_format not in _STREAMABLE:
                raise InvalidImageError("source image type is not supported")  # pragma: no cover - the caller checks
            return self._process(job, stream.head, source_format, self.limits.for_request(job.options), stream=stream)
        except (vips.Error, UnicodeDecodeError) as exc:
            raise _broken(exc) from None
        finally:
            stream.close()  # libvips holds its own duplicate of the descriptor while an image needs it

    def _video_still(self, job: Job, data: bytes, container: str) -> ProcessResult:
        """A still of a video through the normal pipeline; it counts as a JPEG source for the format choice."""
        limits = self.limits.for_request(job.options)
        _, img = external_codec.video_still(
            data,
            container,
            job.options.video_thumbnail_second,
            limits.max_src_resolution,
            self.config.max_video_duration,
        )
        return self._process(job, data, ImageFormat.JPEG, limits, preloaded=img)

    def _process(
        self,
        job: Job,
        data: bytes,
        source_format: ImageFormat,
        limits: Limits,
        stream: StreamedInput | None = None,
        preloaded: Any = None,
    ) -> ProcessResult:
        """``preloaded``: a video still, decoded and checked already (no reuse, no stored analysis)."""
        po = job.options
        config = self.config
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
        best = best_candidates(po, config, job.client, animated=animated, expect_alpha=expect_alpha)
        target = (
            best[0]
            if best
            else choose_format(
                po.format,
                job.client,
                source_format,
                animated=animated,
                expect_alpha=expect_alpha,
                preferred=config.options.preferred_formats,
            )
        )
        if target not in SAVABLE:
            raise UnsupportedFormatError(f"cannot save {target.value}")
        if animated and target.supports_animation:

            def frame_context(frame: Any, frame_limits: Limits) -> PipelineContext:
                return self._context(job, frame, source_format, target, frame_limits, animated=True)

            joined = animation.transform(data, img, po, source_format, limits, frame_context, config.watermark)
            ctx = self._context(job, joined, source_format, target, limits, animated=True)
            pipeline.run(pipeline.FINALIZE, ctx)
            with vips.owning(ctx.owned):
                return encode_result(
                    ctx.img, target, po, config, source_format, source_width, source_height, frames=True
                )

        # Sources decoded outside libvips, or still streaming, cannot be re-read by it.
        rereadable = not (external or stream is not None)
        reuse = preloaded is None
        ctx = self._context(
            job,
            img,
            source_format,
            target,
            limits,
            data=data if rereadable and not thumbnail else None,
            vector_scale=vector_scale,
            reuse=reuse,
            faces=self._face_track(job, data if rereadable else None) if reuse else None,
            stream=stream,
        )
        ctx.calc_params()
        pipeline.run(pipeline.MAIN, ctx)
        pipeline.run(pipeline.FINALIZE, ctx)

        with vips.owning(ctx.owned):
            result = encode_result(
                ctx.img,
                target,
                po,
                config,
                source_format,
                source_width,
                source_height,
                best=best,
                hints=job.known.qualities if reuse else None,
                output=job.output,
            )
        track = ctx.faces
        if track is not None and track.ran_detector and track.complete and track.raw is not None:
            result = dataclasses.replace(result, faces=tuple(track.raw), detect_seconds=track.detect_seconds)
        return result

    def _context(
        self,
        job: Job,
        img: Any,
        source_format: ImageFormat,
        target: ImageFormat,
        limits: Limits,
        *,
        data: bytes | None = None,
        animated: bool = False,
        vector_scale: float = 1.0,
        reuse: bool = False,
        faces: FaceTrack | None = None,
        stream: StreamedInput | None = None,
    ) -> PipelineContext:
        """The one place a pipeline context is made: the image, each animation frame, an animation's finalize.

        ``data`` None: the source cannot be reloaded (shrink-on-load off); animations never
        reload, never watermark per frame (the joined result is) and find no faces.
        """
        source_key = job.source_key if reuse else None
        intermediates = self.intermediates if reuse else None
        return PipelineContext(
            img=img,
            po=job.options,
            source_format=source_format,
            target_format=target,
            data=data,
            deadline=job.deadline,
            limits=limits,
            animated=animated,
            watermark=None if animated else self.config.watermark,
            vector_scale=vector_scale,
            source_key=source_key,
            intermediates=intermediates,
            hot=intermediates.admit(source_key) if intermediates is not None and source_key else False,
            faces=faces,
            stream=stream,
        )

    def _face_track(self, job: Job, source: bytes | None) -> FaceTrack | None:
        """Faces for this image: the stored ones, or the detector on first use; None: neither."""
        known = job.known.faces
        analyser = self._faces
        if known is None and (analyser is None or analyser.detector is None):
            return None
        return FaceTrack(analyser or FaceAnalyser(), source, known)


def _broken(exc: Exception) -> BrokenImageError:
    """A libvips failure as the client's 422.

    pyvips decodes libvips' messages and field names as UTF-8; a hostile file can put other
    bytes there, and then the decode fails instead of the libvips call. The detail comes from
    libvips' global error buffer (possibly another thread's): it is logged by the caller, never
    branched on, never shown to the client.
    """
    return BrokenImageError(f"libvips: {str(exc).splitlines()[0][:200]}")


def _check_header(img: Any, data: bytes, fmt: ImageFormat, max_resolution: int) -> tuple[Any, float]:
    """Refuse oversized sources from the header alone; render oversized SVGs smaller instead.

    Returns the image and, for vectors, the scale it is rendered at (1 for rasters).
    """
    width, height = img.width, img.height  # each read is a libvips property lookup
    pixels = width * height
    if fmt.is_vector:
        if pixels > max_resolution:
            scale = math.sqrt(max_resolution / pixels)
            return vips.open_source(data, **load_options(fmt), scale=scale), scale
        return img, 1.0
    check_raster(width, height, max_resolution)
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
