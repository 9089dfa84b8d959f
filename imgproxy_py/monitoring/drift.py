"""Drift: the population-stability index of a feature's recent values against a reference profile.

The offline evaluation writes the reference (bin edges and each bin's share, per feature, per
model version) with ``FeatureProfile.from_sample``; the server bins what it sees over a sliding
window and exports the PSI as a gauge. PSI = Σ (actual − expected) · ln(actual / expected);
the usual reading is < 0.1 stable, 0.1–0.25 some shift, > 0.25 a real shift. A few lines of
arithmetic, so no library.
"""

from __future__ import annotations

import bisect
import json
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

EPSILON = 1e-4  # an empty bin's share: keeps ln() finite, as every PSI implementation does


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """PSI of two distributions over the same bins (shares; each is normalised here)."""
    if len(expected) != len(actual) or not expected:
        raise ValueError("psi needs two non-empty distributions over the same bins")
    e_total, a_total = sum(expected), sum(actual)
    if e_total <= 0 or a_total <= 0:
        raise ValueError("psi needs distributions with positive mass")
    value = 0.0
    for e, a in zip(expected, actual, strict=True):
        e_share = max(e / e_total, EPSILON)
        a_share = max(a / a_total, EPSILON)
        value += (a_share - e_share) * math.log(a_share / e_share)
    return value


@dataclass(frozen=True, slots=True)
class FeatureProfile:
    """A feature's reference distribution: ``len(edges) + 1`` bins and their shares."""

    edges: tuple[float, ...]
    shares: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.shares) != len(self.edges) + 1:
            raise ValueError("a profile needs one more share than edges")
        if list(self.edges) != sorted(self.edges):
            raise ValueError("profile edges must be sorted")

    def bin_of(self, value: float) -> int:
        return bisect.bisect_right(self.edges, value)

    @classmethod
    def from_sample(cls, values: Sequence[float], bins: int = 10) -> FeatureProfile:
        """Quantile bins of a reference sample (what the offline evaluation writes)."""
        ordered = sorted(values)
        if not ordered:
            raise ValueError("an empty sample has no profile")
        edges = sorted({ordered[min(len(ordered) - 1, len(ordered) * i // bins)] for i in range(1, bins)})
        counts = [0] * (len(edges) + 1)
        for value in ordered:
            counts[bisect.bisect_right(edges, value)] += 1
        return cls(tuple(edges), tuple(c / len(ordered) for c in counts))

    @classmethod
    def categorical(cls, shares: Mapping[str, float]) -> tuple[FeatureProfile, dict[str, int]]:
        """A profile over named categories (e.g. input formats): bins 0..n-1 and the name → bin map."""
        names = sorted(shares)
        return cls(tuple(float(i) + 0.5 for i in range(len(names) - 1)), tuple(shares[n] for n in names)), {
            name: i for i, name in enumerate(names)
        }


@dataclass(frozen=True, slots=True)
class ReferenceProfile:
    """One model version's reference profile: feature name → distribution."""

    model: str
    version: str
    features: Mapping[str, FeatureProfile]

    def to_json(self) -> str:
        return json.dumps(
            {
                "model": self.model,
                "version": self.version,
                "features": {
                    name: {"edges": list(f.edges), "shares": list(f.shares)} for name, f in self.features.items()
                },
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ReferenceProfile:
        data = json.loads(text)
        try:
            features = {
                str(name): FeatureProfile(tuple(map(float, f["edges"])), tuple(map(float, f["shares"])))
                for name, f in data["features"].items()
            }
            return cls(str(data["model"]), str(data["version"]), features)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a reference profile: {exc}") from None


class DriftMonitor:
    """Sliding windows of binned values per feature; PSI against the reference on demand.

    ``on_value`` (the gauge's setter) is called with (feature, psi) every ``every`` values per
    feature once the window holds ``min_values``, so the cost per value is a bisect and an append.
    """

    def __init__(
        self,
        reference: ReferenceProfile,
        window: int = 5000,
        min_values: int = 200,
        every: int = 100,
        on_value: Callable[[str, float], None] | None = None,
    ) -> None:
        self.reference = reference
        self.min_values = min_values
        self.every = every
        self.on_value = on_value
        self._windows: dict[str, deque[int]] = {name: deque(maxlen=window) for name in reference.features}
        self._seen: dict[str, int] = dict.fromkeys(reference.features, 0)
        self._lock = threading.Lock()

    def observe(self, feature: str, value: float) -> None:
        profile = self.reference.features.get(feature)
        if profile is None:
            return  # a feature the reference does not describe: nothing to compare with
        with self._lock:
            self._windows[feature].append(profile.bin_of(value))
            self._seen[feature] += 1
            due = self._seen[feature] % self.every == 0
        if due and self.on_value is not None:
            current = self.value(feature)
            if current is not None:
                self.on_value(feature, current)

    def observe_many(self, values: Mapping[str, float] | Iterable[tuple[str, float]]) -> None:
        for feature, value in values.items() if isinstance(values, Mapping) else values:
            self.observe(feature, value)

    def value(self, feature: str) -> float | None:
        """The PSI of the window against the reference; None until the window has ``min_values``."""
        profile = self.reference.features[feature]
        with self._lock:
            window = list(self._windows[feature])
        if len(window) < self.min_values:
            return None
        counts = [0] * len(profile.shares)
        for index in window:
            counts[index] += 1
        return psi(profile.shares, counts)
