"""The reference profile file: what the offline evaluation saw, per model version, for drift.

``python -m benchmarks.eval --only profile`` writes one (``make reference-profile`` rebuilds
the shipped ``reference_profile.json`` next to this module); the server reads the file named
by ``IMGPROXY_MODEL_REFERENCE_PROFILE`` (default: the shipped one) and compares what it sees
against the profile of the same model *and version*: a detector with another threshold is
another version and has no reference until the evaluation is run for it.

Format (``"format": 1``)::

    {"format": 1, "id": "eval-2026-11-30", "command": "...", "created": "...",
     "notes": "...", "profiles": [{"model": "faces", "version": "libfacedetection-…@0.5",
       "features": {"score": {"edges": [...], "shares": [...]},
                    "source_format": {"edges": [...], "shares": [...], "categories": [...]}}}]}

``edges``/``shares``: ``len(edges) + 1`` quantile bins of the reference sample and each bin's
share; ``categories`` names the bins of a categorical feature (its last bin, ``(other)``,
takes names the reference never saw).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from imgproxy_py.monitoring.drift import ReferenceProfile

FORMAT = 1
DEFAULT_PROFILE = Path(__file__).with_name("reference_profile.json")
INPUTS_MODEL = "inputs"  # the input mix's profile: not a model, versioned by the profile's id


@dataclass(frozen=True, slots=True)
class ProfileSet:
    """Every reference profile of one evaluation run."""

    id: str
    profiles: tuple[ReferenceProfile, ...]
    meta: Mapping[str, str] = field(default_factory=dict)  # command, created, notes

    def get(self, model: str, version: str) -> ReferenceProfile | None:
        return next((p for p in self.profiles if p.model == model and p.version == version), None)

    def inputs(self) -> ReferenceProfile | None:
        """The input mix's profile (formats, megapixels, source bytes), whatever its version."""
        return next((p for p in self.profiles if p.model == INPUTS_MODEL), None)

    def to_json(self) -> str:
        return json.dumps(
            {"format": FORMAT, "id": self.id, **self.meta, "profiles": [p.to_dict() for p in self.profiles]},
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> ProfileSet:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("profiles"), list):
            raise ValueError(f'not a reference profile file (expected {{"format": {FORMAT}, "profiles": [...]}})')
        profiles = tuple(ReferenceProfile.from_dict(p) for p in data["profiles"])
        meta = {k: str(v) for k, v in data.items() if k not in ("format", "id", "profiles")}
        return cls(str(data.get("id", "")), profiles, meta)

    @classmethod
    def load(cls, path: str | Path = "") -> ProfileSet:
        """The file at ``path`` ("" = the shipped one); ValueError names the file and the problem."""
        where = Path(path) if path else DEFAULT_PROFILE
        try:
            return cls.from_json(where.read_text())
        except OSError as exc:
            raise ValueError(f"{where}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
