"""The model's inputs: names, order and version (values come from processing/aqfeatures.py).

- log_pixels: log2 of the output's pixel count; aspect: width / height; alpha: 1 if it has alpha.
- luma_mean, luma_std: Rec. 601 luma (0-255) of a ≤128 px copy.
- entropy: Shannon entropy (bits) of that luma's histogram.
- edge_density: mean absolute difference between horizontal/vertical neighbours (texture).
- flat_share: share of neighbour pairs differing by < 2 levels (flat areas: graphics, screenshots).
- chroma: mean |R-B| + mean |G-Y|, colourfulness (0 for grey images).
- grey_levels: share of the 256 luma levels in use.
Plus, outside the vector: the output format and the DSSIM target (both one-hot/numeric inputs).
"""

from __future__ import annotations

from dataclasses import dataclass

FEATURE_VERSION = "f1"
FEATURE_NAMES = (
    "log_pixels",
    "aspect",
    "alpha",
    "luma_mean",
    "luma_std",
    "entropy",
    "edge_density",
    "flat_share",
    "chroma",
    "grey_levels",
)
FORMATS = ("jpeg", "webp", "avif", "jxl")


def model_inputs(features: tuple[float, ...] | list[float], fmt: str, target: float) -> list[float]:
    """The vector a model sees: image features, the format one-hot, log10 of the target."""
    import math

    return [*features, *(1.0 if fmt == f else 0.0 for f in FORMATS), math.log10(max(target, 1e-9))]


INPUT_NAMES = (*FEATURE_NAMES, *(f"format_{f}" for f in FORMATS), "log10_target")


@dataclass(frozen=True, slots=True)
class Sample:
    """One DSSIM search's outcome, before it knows its source (the dataset row adds the digest).

    ``trail``: (quality, DSSIM, bytes) of every encode the search tried; ``label``: its choice.
    """

    format: str
    bucket: str
    target: float
    features: tuple[float, ...]
    label: int
    trail: tuple[tuple[int, float, int], ...]
