"""Which arm a request gets: a stable hash of the experiment's name and the source URL.

Never of the client: every client gets the same bytes for a URL, so a CDN caches it without
``Vary``. blake2b, not ``hash()``: the same in every process, replica and restart
(``hash()`` of a str changes with PYTHONHASHSEED).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from imgproxy_py.experiments.config import Arm, Experiment, ExperimentsFile

_SCALE = float(1 << 64)


def bucket(experiment: str, source_url: str) -> float:
    """A uniform number in [0, 1) fixed by the experiment's name and the source URL."""
    digest = hashlib.blake2b(f"{experiment}\x00{source_url}".encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment: str
    arm: str
    segments: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.experiment}={self.arm}"


class Experiments:
    """The enabled experiments, in definition order: a URL gets the first one whose scope matches."""

    def __init__(self, definitions: ExperimentsFile) -> None:
        self.all = tuple(definitions.experiments)
        self.enabled = tuple(e for e in self.all if e.enabled)

    def assign(self, source_url: str, presets: Sequence[str]) -> Assignment | None:
        for experiment in self.enabled:
            if experiment.in_scope(source_url, presets):
                arm = pick(experiment, bucket(experiment.name, source_url))
                return Assignment(experiment.name, arm.name, arm.segments)
        return None

    def shares(self) -> dict[tuple[str, str], float]:
        """(experiment, arm) → share in percent, for every enabled experiment (exported as a gauge)."""
        return {(e.name, a.name): a.share for e in self.enabled for a in e.arms}


def pick(experiment: Experiment, point: float) -> Arm:
    """The arm whose cumulative share interval holds ``point`` (in [0, 1))."""
    edge = 0.0
    for arm in experiment.arms:
        edge += arm.share / 100
        if point < edge:
            return arm
    return experiment.arms[-1]  # rounding: the shares add up to 100 within 1e-6
