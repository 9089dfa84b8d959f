"""The per-source feature record: what analysis learnt about one source image, stored once, reused everywhere.

Keyed by a digest of the source's bytes and the analysers' version string, so a new
model or metric never trusts an old record (a different key: it is recomputed). The
record is JSON; anything that does not decode into exactly this shape reads as "no
record" (a corrupt or foreign entry costs a recomputation, never an error).

Fields are optional: an image request fills faces and auto-quality choices, ``/info``
also fills colours and hashes. A writer merges what it learnt into what it read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from imgproxy_py.analysis.detector import Detection

RECORD_SCHEMA = 1
_MAX_QUALITIES = 64  # (size bucket, format) pairs kept per source


def source_digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def record_key(digest: str, version: str) -> str:
    """The cache key of a record: its own namespace, so it never meets a result key."""
    return "features:" + hashlib.blake2b(f"{digest}\x00{version}".encode(), digest_size=20).hexdigest()


@dataclass(frozen=True, slots=True)
class FeatureRecord:
    version: str
    width: int = 0  # as stored (before EXIF rotation)
    height: int = 0
    faces: tuple[Detection, ...] | None = None  # None: not analysed yet; fractions of the stored frame
    average_color: str | None = None
    dominant_colors: tuple[dict[str, Any], ...] | None = None
    blurhash: str | None = None
    phash: str | None = None
    qualities: dict[str, int] = field(default_factory=dict)  # "<size bucket>:<format>" → chosen quality

    def focal_point(self) -> tuple[float, float] | None:
        """The faces' centre weighted by size and score (stored frame), None without faces."""
        if not self.faces:
            return None
        total = sum(d.w * d.h * d.score for d in self.faces)
        if total <= 0:
            return None
        x = sum((d.x + d.w / 2) * d.w * d.h * d.score for d in self.faces) / total
        y = sum((d.y + d.h / 2) * d.w * d.h * d.score for d in self.faces) / total
        return round(x, 5), round(y, 5)

    def merged(self, other: FeatureRecord) -> FeatureRecord:
        """This record with what ``other`` knows and this one does not (same version only)."""
        if other.version != self.version:
            return self
        qualities = {**self.qualities, **other.qualities}
        if len(qualities) > _MAX_QUALITIES:
            qualities = dict(list(qualities.items())[-_MAX_QUALITIES:])
        return replace(
            self,
            width=self.width or other.width,
            height=self.height or other.height,
            faces=self.faces if self.faces is not None else other.faces,
            average_color=self.average_color or other.average_color,
            dominant_colors=self.dominant_colors if self.dominant_colors is not None else other.dominant_colors,
            blurhash=self.blurhash or other.blurhash,
            phash=self.phash or other.phash,
            qualities=qualities,
        )

    def to_bytes(self) -> bytes:
        body = {
            "schema": RECORD_SCHEMA,
            "version": self.version,
            "width": self.width,
            "height": self.height,
            "faces": None if self.faces is None else [d.to_json() for d in self.faces],
            "focal_point": self.focal_point(),
            "average_color": self.average_color,
            "dominant_colors": None if self.dominant_colors is None else list(self.dominant_colors),
            "blurhash": self.blurhash,
            "phash": self.phash,
            "qualities": self.qualities,
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, blob: bytes, version: str) -> FeatureRecord | None:
        """Decode a stored record of ``version``; anything else (corrupt, foreign, older) is None."""
        try:
            body = json.loads(blob)
            if not isinstance(body, dict) or body.get("schema") != RECORD_SCHEMA or body.get("version") != version:
                return None
            faces = body["faces"]
            qualities = body["qualities"]
            dominant = body["dominant_colors"]
            if not isinstance(qualities, dict) or not all(
                isinstance(k, str) and isinstance(v, int) and 1 <= v <= 100 for k, v in qualities.items()
            ):
                return None
            if dominant is not None and not (isinstance(dominant, list) and all(isinstance(d, dict) for d in dominant)):
                return None
            return cls(
                version=version,
                width=_int(body["width"]),
                height=_int(body["height"]),
                faces=None if faces is None else tuple(Detection.from_json(d) for d in faces),
                average_color=_opt_str(body["average_color"]),
                dominant_colors=None if dominant is None else tuple(dominant),
                blurhash=_opt_str(body["blurhash"]),
                phash=_opt_str(body["phash"]),
                qualities=dict(qualities),
            )
        except (ValueError, KeyError, TypeError):  # json.JSONDecodeError is a ValueError
            return None


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("expected a non-negative integer")
    return value


def _opt_str(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError("expected a string")
    return value
