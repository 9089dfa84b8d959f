"""Source and result limits: the configured ones, unless a security option in the URL overrides them.

The URL can only carry these with IMGPROXY_ALLOW_SECURITY_OPTIONS (checked by the parser); here
the two sources are merged once per request, and the dimension check is imgproxy's
CheckDimensions: an animation's frames count together unless a per-frame limit is set.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace

from imgproxy_py.errors import InvalidImageError, SourceResolutionError
from imgproxy_py.options.model import ProcessingOptions
from imgproxy_py.settings.security import (
    DEFAULT_MAX_ANIMATION_FRAME_RESOLUTION,
    DEFAULT_MAX_ANIMATION_FRAMES,
    DEFAULT_MAX_RESULT_DIMENSION,
    DEFAULT_MAX_RESULT_RESOLUTION,
    DEFAULT_MAX_SRC_FILE_SIZE,
    DEFAULT_MAX_SRC_RESOLUTION,
    SecuritySettings,
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Every source and result limit, in one object: the processor and the server's fetch read it."""

    # The defaults are the settings' (written once, in settings/security.py).
    max_src_resolution: int = DEFAULT_MAX_SRC_RESOLUTION  # pixels (all frames together)
    max_src_file_size: int = DEFAULT_MAX_SRC_FILE_SIZE  # bytes; ≤0: no limit (enforced by the fetch)
    max_animation_frames: int = DEFAULT_MAX_ANIMATION_FRAMES
    max_animation_frame_resolution: int = DEFAULT_MAX_ANIMATION_FRAME_RESOLUTION  # per frame; 0: frames sum
    max_result_dimension: int = DEFAULT_MAX_RESULT_DIMENSION  # pixels; ≤0: no limit
    max_result_resolution: int = DEFAULT_MAX_RESULT_RESOLUTION  # pixels of a result (all frames); over: 422

    @classmethod
    def from_settings(cls, security: SecuritySettings) -> Limits:
        return cls(
            max_src_resolution=security.max_src_resolution,
            max_src_file_size=security.max_src_file_size,
            max_animation_frames=security.max_animation_frames,
            max_animation_frame_resolution=security.max_animation_frame_resolution,
            max_result_dimension=security.max_result_dimension,
            max_result_resolution=security.max_result_resolution,
        )

    def for_request(self, po: ProcessingOptions) -> Limits:
        """These limits with the URL's security options applied (the same object when there are none)."""
        values = _URL_LIMITS(po)
        if values.count(None) == len(values):
            return self  # the common case, asked twice per miss: nothing to build
        changes = {name: value for name, value in zip(_URL_LIMIT_NAMES, values, strict=True) if value is not None}
        return replace(self, **changes)

    def per_frame(self, frames: int) -> Limits:
        """The limits one frame of an ``frames``-frame animation is processed under."""
        return replace(self, max_result_resolution=self.max_result_resolution // max(frames, 1))

    def check_dimensions(self, width: int, height: int, frames: int = 1) -> None:
        """Refuse a source that is too large to decode (422), from its header alone."""
        frames = max(frames, 1)
        if frames > 1 and self.max_animation_frame_resolution > 0:
            if width * height > self.max_animation_frame_resolution:
                raise SourceResolutionError(f"source frame resolution {width}x{height} exceeds the limit")
        elif width * height * frames > self.max_src_resolution:
            raise SourceResolutionError(f"source resolution {width}x{height}x{frames} exceeds the limit")


# The security options a URL may set (sm/msfs/…), each named as the limit it overrides.
_URL_LIMIT_NAMES = (
    "max_src_resolution",
    "max_src_file_size",
    "max_animation_frames",
    "max_animation_frame_resolution",
    "max_result_dimension",
)
_URL_LIMITS = operator.attrgetter(*_URL_LIMIT_NAMES)


MAX_SIDE = 65535  # the largest side any encoder we write (JPEG, GIF) can store


def check_raster(width: int, height: int, max_resolution: int) -> None:
    """A raster source's size from its header: not empty, within the limit, no absurd side."""
    if width <= 0 or height <= 0:
        raise InvalidImageError("source image is empty")
    if width * height > max_resolution:
        raise SourceResolutionError(f"source resolution {width}x{height} exceeds the limit")
    if max(width, height) > MAX_SIDE:
        # Decoders buffer whole rows: a 400000×125 image costs gigabytes though it is only 50 MP.
        raise InvalidImageError(f"source side {max(width, height)} exceeds {MAX_SIDE}")
