"""``imgproxy-py models train``: fit, evaluate on a held-out split, export, publish.

scikit-learn's GradientBoostingRegressor (small, CPU, deterministic with a seed), exported as
JSON trees (model.py) so serving needs neither scikit-learn nor pickle. The split is by source
image (a digest hash), so one image's sizes and formats never sit on both sides.

Offline metrics, on the held-out rows:
- MAE of the predicted quality against the search's label;
- miss share: predictions below the label, i.e. whose first encode misses the target and needs
  the correcting encode (the label is the lowest passing quality the search found);
- bytes vs q80: the predicted quality's bytes over q80's, both estimated by log-linear
  interpolation of the (quality, bytes) pairs the search measured (an estimate: q80 itself is
  rarely tried); and the same for the label (what the full search achieves).
"""

from __future__ import annotations

import hashlib
import math
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from imgproxy_py.quality_model.dataset import Row, snapshot_digest
from imgproxy_py.quality_model.inputs import FEATURE_NAMES, FEATURE_VERSION, INPUT_NAMES, model_inputs
from imgproxy_py.quality_model.trees import Tree, TreeModel, sha256

HOLDOUT_SHARE = 0.25


def held_out(row: Row) -> bool:
    """A stable split by source image: about HOLDOUT_SHARE of the sources."""
    h = int(hashlib.sha256(row.source_digest.encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < HOLDOUT_SHARE


def bytes_at(row: Row, quality: int) -> float:
    """Estimated encoded size at ``quality``: log-linear through the measured points."""
    points = sorted({q: n for q, _, n in row.trail if n > 0}.items())
    if not points:
        return math.nan
    if len(points) == 1:
        q0, n0 = points[0]
        return n0 * math.exp(0.02 * (quality - q0))  # about +2% bytes per quality step
    below = [p for p in points if p[0] <= quality]
    above = [p for p in points if p[0] >= quality]
    (qa, na), (qb, nb) = (
        (below[-1], above[0])
        if below and above and below[-1] != above[0]
        else (
            (points[0], points[1]) if not below else (points[-2], points[-1]) if not above else (below[-1], below[-1])
        )
    )
    if qa == qb:
        return float(na)
    slope = (math.log(nb) - math.log(na)) / (qb - qa)
    return float(na * math.exp(slope * (quality - qa)))


@dataclass(frozen=True, slots=True)
class Metrics:
    rows: int
    mae: float
    miss_share: float
    bytes_vs_q80: float
    label_bytes_vs_q80: float

    def as_dict(self) -> dict[str, float]:
        return {
            "rows": self.rows,
            "mae": round(self.mae, 3),
            "miss_share": round(self.miss_share, 3),
            "bytes_vs_q80": round(self.bytes_vs_q80, 3),
            "label_bytes_vs_q80": round(self.label_bytes_vs_q80, 3),
        }


def evaluate(model: TreeModel, rows: Sequence[Row], lo: int = 30, hi: int = 90) -> Metrics:
    errors, misses, pred_bytes, label_bytes, q80_bytes = [], 0, 0.0, 0.0, 0.0
    for row in rows:
        raw = model.predict(model_inputs(list(row.features), row.format, row.target))
        q = min(max(round(raw), lo), hi)
        errors.append(abs(q - row.label))
        misses += q < row.label
        b80 = bytes_at(row, 80)
        if math.isfinite(b80):
            pred_bytes += bytes_at(row, q)
            label_bytes += bytes_at(row, row.label)
            q80_bytes += b80
    n = max(1, len(rows))
    return Metrics(
        len(rows),
        sum(errors) / n,
        misses / n,
        pred_bytes / q80_bytes if q80_bytes else math.nan,
        label_bytes / q80_bytes if q80_bytes else math.nan,
    )


def fit(rows: Sequence[Row], version: str, seed: int = 0) -> TreeModel:
    """Gradient boosting on the rows; the fitted trees exported as plain arrays."""
    from sklearn.ensemble import GradientBoostingRegressor

    x = [model_inputs(list(r.features), r.format, r.target) for r in rows]
    y = [float(r.label) for r in rows]
    est = GradientBoostingRegressor(
        n_estimators=120, max_depth=3, learning_rate=0.05, subsample=0.8, min_samples_leaf=3, random_state=seed
    )
    est.fit(x, y)
    trees = []
    for (reg,) in est.estimators_:
        t = reg.tree_
        trees.append(
            Tree(
                left=tuple(int(v) for v in t.children_left),
                right=tuple(int(v) for v in t.children_right),
                feature=tuple(max(0, int(v)) for v in t.feature),
                threshold=tuple(float(v) for v in t.threshold),
                value=tuple(float(v) for v in t.value[:, 0, 0]),
            )
        )
    base = float(est.init_.constant_[0][0])
    return TreeModel(version, FEATURE_VERSION, INPUT_NAMES, base, float(est.learning_rate), tuple(trees))


def feature_profile(rows: Sequence[Row], version: str) -> str:
    """The training inputs' distribution (monitoring's ReferenceProfile JSON), for the drift gauge."""
    from imgproxy_py.monitoring.drift import FeatureProfile, ReferenceProfile  # offline only

    features = {name: FeatureProfile.from_sample([r.features[i] for r in rows]) for i, name in enumerate(FEATURE_NAMES)}
    return ReferenceProfile("autoquality-ml", version, features).to_json()


def train(rows: Sequence[Row], metric_version: str, command: str) -> tuple[TreeModel, bytes, dict[str, Any]]:
    """Fit on the training split, evaluate on the held-out one, then refit on everything."""
    import numpy
    import sklearn

    train_rows = [r for r in rows if not held_out(r)]
    test_rows = [r for r in rows if held_out(r)]
    if len(train_rows) < 10 or not test_rows:
        raise ValueError(f"too few rows to train and evaluate ({len(train_rows)} train, {len(test_rows)} held out)")
    digest = snapshot_digest(rows)
    version = time.strftime("q%Y%m%dT%H%M%S", time.gmtime()) + "-" + digest[:8]
    candidate = fit(train_rows, version)
    metrics = evaluate(candidate, test_rows)
    train_metrics = evaluate(candidate, train_rows)
    model = fit(rows, version)  # the served model sees every row; the metrics are the held-out ones
    artefact = model.to_json()
    meta: dict[str, Any] = {
        "version": version,
        "sha256": sha256(artefact),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data_snapshot": digest,
        "rows": len(rows),
        "held_out_rows": len(test_rows),
        "feature_version": FEATURE_VERSION,
        "metric_version": metric_version,
        "inputs": list(INPUT_NAMES),
        "metrics": {"held_out": metrics.as_dict(), "train": train_metrics.as_dict()},
        "libraries": {
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "numpy": numpy.__version__,
        },
        "command": command,
        "feature_profile": feature_profile(rows, version),
        "argv": sys.argv[1:],
    }
    return model, artefact, meta
