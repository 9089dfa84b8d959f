"""The slice of settings processing needs, built once per process (part of the settings fingerprint)."""

from __future__ import annotations

from dataclasses import dataclass, field

from imgproxy_py.processing.encode import EncoderSettings
from imgproxy_py.processing.limits import Limits
from imgproxy_py.processing.quality import AutoQualityDefaults
from imgproxy_py.processing.watermark_image import WatermarkImage, load_watermark
from imgproxy_py.quality_model.serving import QualityModelService
from imgproxy_py.settings import OptionSettings, Settings


@dataclass(frozen=True, slots=True)
class ProcessingConfig:
    options: OptionSettings = field(default_factory=OptionSettings)
    # The configured limits; a URL's security options override them per request (Limits.for_request).
    limits: Limits = field(default_factory=Limits)
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    sanitize_svg: bool = True
    always_rasterize_svg: bool = False
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

    @classmethod
    def from_settings(cls, settings: Settings, watermark: bytes | None = None) -> ProcessingConfig:
        """``watermark``: IMGPROXY_WATERMARK_URL's bytes, fetched by the composition root."""
        proc = settings.processing
        analysis = settings.analysis
        encoder = EncoderSettings(
            jpeg_progressive=proc.jpeg_progressive,
            png_interlaced=proc.png_interlaced,
            webp_effort=proc.webp_effort,
            avif_speed=proc.avif_speed,
            jxl_effort=proc.jxl_effort,
        )
        return cls(
            options=settings.options,
            limits=Limits.from_settings(settings.security),
            encoder=encoder,
            sanitize_svg=proc.sanitize_svg,
            always_rasterize_svg=proc.always_rasterize_svg,
            watermark=load_watermark(settings.watermark, watermark),
            autoquality=AutoQualityDefaults(
                method=analysis.autoquality_method,
                target=analysis.autoquality_target,
                min_quality=analysis.autoquality_min,
                max_quality=analysis.autoquality_max,
                allowed_error=analysis.autoquality_allowed_error,
                format_min=tuple(sorted(analysis.autoquality_format_min.items(), key=lambda i: i[0].value)),
                format_max=tuple(sorted(analysis.autoquality_format_max.items(), key=lambda i: i[0].value)),
            ),
            best_by_default=analysis.best_format_by_default,
            best_max_resolution=analysis.best_format_max_resolution,
            video_thumbnails=proc.video_thumbnails,
            max_video_duration=proc.max_video_duration,
            collect_samples=bool(analysis.autoquality_dataset),
        )
