"""The detector interface: raw RGB pixels in, boxes out (fractions of the picture)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected object; the box is in fractions (0..1) of the picture it was found in."""

    x: float
    y: float
    w: float
    h: float
    score: float  # 0..1
    label: str = "face"

    def to_json(self) -> dict[str, float | str]:
        return {
            "x": round(self.x, 5),
            "y": round(self.y, 5),
            "w": round(self.w, 5),
            "h": round(self.h, 5),
            "score": round(self.score, 3),
            "class": self.label,
        }

    @classmethod
    def from_json(cls, value: object) -> Detection:
        """Strict decode (for stored records): a malformed item raises ValueError."""
        if not isinstance(value, dict):
            raise ValueError("detection must be an object")
        nums = [float(value[k]) for k in ("x", "y", "w", "h", "score")]
        if not all(0.0 <= n <= 1.0 for n in nums):
            raise ValueError("detection out of range")
        label = value.get("class", "face")
        if not isinstance(label, str):
            raise ValueError("detection class must be a string")
        x, y, w, h, score = nums
        return cls(x, y, w, h, score, label)


class DetectorSkipped(Exception):
    """The detector was not used for this image (its circuit breaker is open, or it failed):
    the caller falls back (libvips attention) and keeps no result."""


class Detector(Protocol):
    """What a detector plug-in provides; one instance serves every worker thread."""

    name: str  # the registry's key, e.g. "face"
    version: str  # changes when its results may change (model, threshold): old stored results are not reused

    def detect(self, width: int, height: int, rgb: bytes) -> list[Detection]:
        """Objects in a ``width``×``height`` 8-bit RGB picture (rows packed, no padding)."""
        ...
