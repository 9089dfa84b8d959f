"""A gradient-boosted tree ensemble as plain JSON, and its evaluation in pure Python.

The artefact is data, not code: no pickle (unpickling runs arbitrary code, and ties an
artefact to one scikit-learn version). ``train`` exports scikit-learn's fitted trees as arrays;
serving walks them here — 100 trees of depth 3 are ~300 comparisons, some tens of
microseconds, with no scikit-learn at run time. Loading checks the SHA-256 recorded in the
metadata and the arrays' shapes, so a corrupt or tampered file is refused, never half-used.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

ARTEFACT_FORMAT = "imgproxy-py-gbt/1"


class ModelError(Exception):
    """The artefact is missing, corrupt or does not match this code's features."""


@dataclass(frozen=True, slots=True)
class Tree:
    left: tuple[int, ...]
    right: tuple[int, ...]
    feature: tuple[int, ...]
    threshold: tuple[float, ...]
    value: tuple[float, ...]

    def evaluate(self, x: list[float]) -> float:
        node = 0
        for _ in range(len(self.left)):  # bounded: a cycle in a crafted file cannot loop forever
            child = self.left[node]
            if child < 0:
                return self.value[node]
            node = child if x[self.feature[node]] <= self.threshold[node] else self.right[node]
        raise ModelError("tree does not terminate")


@dataclass(frozen=True, slots=True)
class TreeModel:
    version: str
    feature_version: str
    inputs: tuple[str, ...]
    base: float
    learning_rate: float
    trees: tuple[Tree, ...]

    def predict(self, x: list[float]) -> float:
        if len(x) != len(self.inputs):
            raise ModelError("input vector has the wrong length")
        total = self.base + self.learning_rate * sum(tree.evaluate(x) for tree in self.trees)
        if not math.isfinite(total):
            raise ModelError("prediction is not finite")
        return total

    def to_json(self) -> bytes:
        doc = {
            "format": ARTEFACT_FORMAT,
            "version": self.version,
            "feature_version": self.feature_version,
            "inputs": list(self.inputs),
            "base": self.base,
            "learning_rate": self.learning_rate,
            "trees": [
                {
                    "left": list(t.left),
                    "right": list(t.right),
                    "feature": list(t.feature),
                    "threshold": list(t.threshold),
                    "value": list(t.value),
                }
                for t in self.trees
            ],
        }
        return json.dumps(doc, separators=(",", ":")).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load(data: bytes, expected_sha256: str, inputs: tuple[str, ...]) -> TreeModel:
    """Parse and validate an artefact; ModelError for anything unexpected."""
    if sha256(data) != expected_sha256:
        raise ModelError("artefact digest does not match its metadata")
    try:
        doc = json.loads(data)
        if doc.get("format") != ARTEFACT_FORMAT:
            raise ModelError(f"unknown artefact format {doc.get('format')!r}")
        if tuple(doc["inputs"]) != inputs:
            raise ModelError("artefact inputs differ from this version's features")
        trees = tuple(_tree(t, len(inputs)) for t in doc["trees"])
        return TreeModel(
            version=str(doc["version"]),
            feature_version=str(doc["feature_version"]),
            inputs=inputs,
            base=float(doc["base"]),
            learning_rate=float(doc["learning_rate"]),
            trees=trees,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"malformed artefact ({type(exc).__name__})") from None


def _tree(doc: Any, n_inputs: int) -> Tree:
    tree = Tree(
        left=tuple(int(v) for v in doc["left"]),
        right=tuple(int(v) for v in doc["right"]),
        feature=tuple(int(v) for v in doc["feature"]),
        threshold=tuple(float(v) for v in doc["threshold"]),
        value=tuple(float(v) for v in doc["value"]),
    )
    n = len(tree.left)
    if not n or any(len(a) != n for a in (tree.right, tree.feature, tree.threshold, tree.value)):
        raise ModelError("tree arrays differ in length")
    for i in range(n):
        if tree.left[i] >= 0 and not (
            0 < tree.left[i] < n and 0 < tree.right[i] < n and 0 <= tree.feature[i] < n_inputs
        ):
            raise ModelError("tree node out of range")
    return tree
