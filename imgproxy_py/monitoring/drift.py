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


OTHER = "(other)"  # a categorical profile's last bin: every category the reference did not see


@dataclass(frozen=True, slots=True)
class FeatureProfile:
    """A feature's reference distribution: ``len(edges) + 1`` bins and their shares.

    A categorical feature (input formats) also names its bins: ``categories[i]`` is bin i,
    and a value it does not name falls into the last one (``OTHER``).
    """

    edges: tuple[float, ...]
    shares: tuple[float, ...]
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.shares) != len(self.edges) + 1:
            raise ValueError("a profile needs one more share than edges")
        if list(self.edges) != sorted(self.edges):
            raise ValueError("profile edges must be sorted")
        if self.categories and len(self.categories) != len(self.shares):
            raise ValueError("a categorical profile names every bin")

    def bin_of(self, value: float | str) -> int:
        if isinstance(value, str):
            names = self.categories
            return names.index(value) if value in names else len(names) - 1
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
        """A profile over named categories (e.g. input formats), plus an ``OTHER`` bin for names
        the reference never saw: bins 0..n and the name → bin map (``bin_of(name)`` does the same)."""
        names = [*sorted(n for n in shares if n != OTHER), OTHER]
        profile = cls(
            tuple(float(i) + 0.5 for i in range(len(names) - 1)),
            tuple(float(shares.get(n, 0.0)) for n in names),
            tuple(names),
        )
        return profile, {name: i for i, name in enumerate(names)}

    @classmethod
    def from_categories(cls, values: Iterable[str]) -> FeatureProfile:
        """A categorical profile of a reference sample's names (what the offline evaluation writes)."""
        counts: dict[str, float] = {}
        for value in values:
            counts[value] = counts.get(value, 0.0) + 1
        total = sum(counts.values())
        if not total:
            raise ValueError("an empty sample has no profile")
        return cls.categorical({name: n / total for name, n in counts.items()})[0]

    def to_dict(self) -> dict[str, list[float] | list[str]]:
        out: dict[str, list[float] | list[str]] = {"edges": list(self.edges), "shares": list(self.shares)}
        if self.categories:
            out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> FeatureProfile:
        edges, shares = data["edges"], data["shares"]
        categories = data.get("categories", ())
        if not isinstance(edges, list) or not isinstance(shares, list) or not isinstance(categories, list | tuple):
            raise TypeError("edges, shares and categories are lists")
        return cls(tuple(map(float, edges)), tuple(map(float, shares)), tuple(map(str, categories)))


@dataclass(frozen=True, slots=True)
class ReferenceProfile:
    """One model version's reference profile: feature name → distribution."""

    model: str
    version: str
    features: Mapping[str, FeatureProfile]

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "version": self.version,
            "features": {name: f.to_dict() for name, f in self.features.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ReferenceProfile:
        try:
            features = data["features"]
            if not isinstance(features, Mapping):
                raise TypeError("features is an object")
            parsed = {str(name): FeatureProfile.from_dict(f) for name, f in features.items()}
            return cls(str(data["model"]), str(data["version"]), parsed)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"not a reference profile: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> ReferenceProfile:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a reference profile: not a JSON object")
        return cls.from_dict(data)

    def merged(self, other: ReferenceProfile) -> ReferenceProfile:
        """This profile with ``other``'s features added (``other`` wins on a name both describe)."""
        return ReferenceProfile(self.model, self.version, {**self.features, **other.features})


class DriftMonitor:
    """Sliding windows of binned values per feature; PSI against the reference on demand.

    ``on_value`` (the gauge's setter) is called with (feature, psi) every ``every`` values per
    feature (default: half of ``min_values``, at most 100) once the window holds ``min_values``,
    so the cost per value is a bisect and an append.
    """

    def __init__(
        self,
        reference: ReferenceProfile,
        window: int = 5000,
        min_values: int = 200,
        every: int = 0,
        on_value: Callable[[str, float], None] | None = None,
    ) -> None:
        self.reference = reference
        self.window = window
        self.min_values = min_values
        self.every = every or max(1, min(100, min_values // 2))
        self.on_value = on_value
        self._windows: dict[str, deque[int]] = {name: deque(maxlen=window) for name in reference.features}
        self._seen: dict[str, int] = dict.fromkeys(reference.features, 0)
        self._lock = threading.Lock()

    def observe(self, feature: str, value: float | str) -> None:
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

    def observe_many(self, values: Mapping[str, float | str] | Iterable[tuple[str, float | str]]) -> None:
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
