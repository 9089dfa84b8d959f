"""Cheap image features for the learned auto-quality model (``aq:ml``), from the already-resized image.

One libvips round trip (a ≤128 px sRGB copy of the in-memory output, alpha flattened on white),
then numpy over 16k pixels: about a millisecond, whatever the output's size. libvips
operations one by one cost a Python round trip each (20-30 ms for the same list, measured).
The list and its order are ``quality_model.inputs.FEATURE_NAMES``; bump ``FEATURE_VERSION``
there when any definition here changes, so old rows and models are never mixed with new ones.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from imgproxy_py.processing import vips
from imgproxy_py.quality_model.inputs import FEATURE_NAMES

_SIDE = 128


def compute(img: Any) -> tuple[float, ...]:
    """The features of ``img`` (the pipeline's output, before encoding), in FEATURE_NAMES order."""
    width, height = int(img.width), int(img.height)
    alpha = 1.0 if img.hasalpha() else 0.0
    w, h, data = vips.rgb_bytes(img, _SIDE)
    rgb = np.frombuffer(data, dtype=np.uint8).reshape(h, w, 3).astype(np.float32)
    luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    counts = np.bincount(np.clip(luma, 0, 255).astype(np.uint8).ravel(), minlength=256)
    p = counts[counts > 0] / luma.size
    entropy = float(-(p * np.log2(p)).sum())
    dx = np.abs(np.diff(luma, axis=1)) if w > 1 else np.zeros((1, 1), np.float32)
    dy = np.abs(np.diff(luma, axis=0)) if h > 1 else np.zeros((1, 1), np.float32)
    values = {
        "log_pixels": math.log2(max(1, width * height)),
        "aspect": width / max(1, height),
        "alpha": alpha,
        "luma_mean": float(luma.mean()),
        "luma_std": float(luma.std()),
        "entropy": entropy,
        "edge_density": float(dx.mean() + dy.mean()) / 2,
        "flat_share": float((dx < 2).mean() + (dy < 2).mean()) / 2,
        "chroma": float(np.abs(rgb[..., 0] - rgb[..., 2]).mean() + np.abs(rgb[..., 1] - luma).mean()),
        "grey_levels": float((counts > 0).mean()),
    }
    return tuple(values[name] for name in FEATURE_NAMES)
