"""The encode stage: the format candidates (``f:best``), auto-quality and the result.

The pipeline's image goes in; the smallest candidate's bytes come out as a ``ProcessResult``
with what the request learnt (chosen qualities, training samples, aq:ml outcomes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imgproxy_py.analysis.detector import Detection
from imgproxy_py.imagetype import SAVABLE, ImageFormat
from imgproxy_py.options.model import ProcessingOptions
from imgproxy_py.processing import aqfeatures, codecs, vips
from imgproxy_py.processing import external as external_codec
from imgproxy_py.processing.configuration import ProcessingConfig
from imgproxy_py.processing.context import _frame_height
from imgproxy_py.processing.encode import encode, encode_to_fit, resolve_quality
from imgproxy_py.processing.format_choice import ClientFormats
from imgproxy_py.processing.job import ResultSink
from imgproxy_py.processing.quality import AUTOQUALITY_FORMATS, NumpyReference, correct, measurable, search, size_bucket
from imgproxy_py.quality_model.inputs import Sample
from imgproxy_py.quality_model.serving import MlOutcome


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


# Results streamed to the client as they are encoded (Job.output): PNGs of at least this many
# pixels. Measured (benchmarks/RESULTS.md): a 4000-px PNG's first byte after the pixels (~0.3 s)
# instead of after its whole encode (~2.5 s); a JPEG's encode is a small part of its time once
# the pixels are computed, and libvips' WebP/AVIF/JXL savers write everything at the end.
# At most this many: the pixels are held in memory while the result streams (the lazy pipeline
# of a buffered result holds strips), 64 MB at 4 bands; a larger result is encoded lazily, buffered.
STREAM_MIN_PIXELS = 4_000_000
STREAM_MAX_PIXELS = 16_000_000


def encode_result(
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
    output: ResultSink | None = None,
) -> ProcessResult:
    out_width, out_height = out.width, out.height  # each read is a libvips property lookup
    small = out_width < 16 or out_height < 16
    candidates = [f for f in best if not (f is ImageFormat.AVIF and small)] or [target]
    if target is ImageFormat.AVIF and small:
        target = ImageFormat.PNG if out.hasalpha() else ImageFormat.JPEG
        candidates = [target]
    if (
        len(candidates) > 1
        and config.best_max_resolution
        and (out_width * out_height > config.best_max_resolution * 1_000_000)
    ):
        candidates = candidates[:1]
    sink = output if _streams(out, candidates, po, config, frames) else None
    if len(candidates) > 1 or autoquality_on(po, config, frames) or sink is not None:
        # encoded several times: evaluate the pipeline once; streamed: every decode error (a
        # damaged source) is raised here, before a byte is sent
        out = vips.pixels(out)
    reference: list[NumpyReference] = []  # built on the first search, shared by every candidate format
    results = [
        _encode_one(out, fmt, po, config, frames, len(candidates) > 1, hints or {}, reference, sink)
        for fmt in candidates
    ]
    data, fmt, qualities, encodes = min(results, key=lambda r: len(r[0]))[:4]
    height = _frame_height(out) if frames else out_height
    return ProcessResult(
        data=data,
        format=fmt,
        width=out_width,
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


def _streams(
    out: Any, candidates: list[ImageFormat], po: ProcessingOptions, config: ProcessingConfig, frames: bool
) -> bool:
    """A large PNG encoded once at a fixed quality: the only result worth sending as it is encoded
    (and not so large that holding its pixels would cost more memory than the lazy encode)."""
    return (
        candidates == [ImageFormat.PNG]
        and not frames
        and not po.max_bytes
        and not autoquality_on(po, config, frames)
        and STREAM_MIN_PIXELS <= out.width * out.height <= STREAM_MAX_PIXELS
    )


def autoquality_on(po: ProcessingOptions, config: ProcessingConfig, frames: bool) -> bool:
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
    sink: ResultSink | None = None,
) -> tuple[
    bytes, ImageFormat, list[tuple[str, int]], int, Sample | None, MlOutcome | None, tuple[str, int, float] | None
]:
    """One format: auto-quality when asked (always for ``f:best``, as imgproxy may), else the configured quality."""
    keep = not po.strip_metadata
    searchable = fmt in AUTOQUALITY_FORMATS and not po.quality and not frames and measurable(out)
    if searchable and (best and po.autoquality.method != "none" or autoquality_on(po, config, frames)):
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
                    prediction.version,
                    prediction.quality,
                    choice.quality,
                    choice.dssim,
                    choice.encodes,
                    features,
                    fmt.value,
                    params.target,
                    params.min_quality,
                    params.max_quality,
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
    data = encode_to_fit(out, fmt, quality, po.max_bytes, keep, config.encoder, sink)
    return data, fmt, [], 1, None, None, None


def _decode_candidate(data: bytes, fmt: ImageFormat, pixels: int) -> Any:
    """An encoded candidate (``pixels`` large, our own output) back to pixels: libvips, or the
    external codec for what libvips cannot read."""
    if codecs.decodes(data, fmt):
        return external_codec.load(data, fmt, pixels)
    return vips.open_source(data)


_BEST_FORMATS = (ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.WEBP, ImageFormat.AVIF, ImageFormat.JXL)


def best_candidates(
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
