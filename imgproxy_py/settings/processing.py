"""Encoder effort, video stills, SVG handling and intermediate reuse."""

from __future__ import annotations

from dataclasses import dataclass

from imgproxy_py.settings.env import _Env


@dataclass(frozen=True, slots=True)
class ProcessingSettings:
    jpeg_progressive: bool = False
    png_interlaced: bool = False
    webp_effort: int = 4
    avif_speed: int = 8
    jxl_effort: int = 4  # IMGPROXY_JXL_EFFORT, libjxl's 1 (fastest) … 9
    video_thumbnails: bool = False  # IMGPROXY_ENABLE_VIDEO_THUMBNAILS: stills from MP4/MOV/WebM/MKV sources
    max_video_duration: float = 3600.0  # IMGPROXY_MAX_VIDEO_DURATION: seconds; longer clips are refused
    intermediate_cache_size: int = 64 * 1024 * 1024  # bytes per process; 0 switches reuse off
    sanitize_svg: bool = True  # SVG passed through as SVG loses script and external references
    always_rasterize_svg: bool = False  # SVG without a requested format is rasterised, not passed through

    @classmethod
    def from_env(cls, env: _Env) -> ProcessingSettings:
        return cls(
            jpeg_progressive=env.get_bool("IMGPROXY_JPEG_PROGRESSIVE", False),
            png_interlaced=env.get_bool("IMGPROXY_PNG_INTERLACED", False),
            webp_effort=env.get_int("IMGPROXY_WEBP_EFFORT", 4, min_value=0, max_value=6),
            avif_speed=env.get_int("IMGPROXY_AVIF_SPEED", 8, min_value=0, max_value=9),
            jxl_effort=env.get_int("IMGPROXY_JXL_EFFORT", 4, min_value=1, max_value=9),
            video_thumbnails=env.get_bool("IMGPROXY_ENABLE_VIDEO_THUMBNAILS", False),
            max_video_duration=env.get_float("IMGPROXY_MAX_VIDEO_DURATION", 3600, min_value=0, max_value=1e9),
            intermediate_cache_size=round(
                env.get_float("IMGPROXY_INTERMEDIATE_CACHE_SIZE", 64, min_value=0, max_value=1 << 20) * 1024 * 1024
            ),
            sanitize_svg=env.get_bool("IMGPROXY_SANITIZE_SVG", True),
            always_rasterize_svg=env.get_bool("IMGPROXY_ALWAYS_RASTERIZE_SVG", False),
        )
