"""The training set: one row per (source, output format, size bucket, target), in SQLite.

SQLite (the standard library's sqlite3) because rows arrive one at a time from a server and a
single local file needs no service; a production fleet points IMGPROXY_AUTOQUALITY_DATASET at
a path per replica and merges the files offline (``models collect --into`` over them is a plain
``INSERT OR REPLACE``). Each row keeps the feature and metric versions so that training only
mixes rows computed the same way, and the search's trail (quality, DSSIM, bytes) so offline
evaluation can estimate what another quality would have cost and whether it passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from imgproxy_py.quality_model.features import FEATURE_VERSION, Sample

# Must equal processing.quality.METRIC_VERSION (a test checks): this package does not import processing.
METRIC_VERSION = "dssim-vips-luma601-box8-ms3-v1"

log = logging.getLogger("imgproxy_py.quality_model")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    source_digest TEXT NOT NULL,
    format TEXT NOT NULL,
    bucket TEXT NOT NULL,
    target REAL NOT NULL,
    feature_version TEXT NOT NULL,
    metric_version TEXT NOT NULL,
    features TEXT NOT NULL,
    label INTEGER NOT NULL,
    trail TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (source_digest, format, bucket, target, feature_version, metric_version)
)
"""


@dataclass(frozen=True, slots=True)
class Row:
    """One search's outcome. ``trail``: (quality, DSSIM, bytes) of every encode it tried."""

    source_digest: str
    format: str
    bucket: str
    target: float
    feature_version: str
    metric_version: str
    features: tuple[float, ...]
    label: int
    trail: tuple[tuple[int, float, int], ...]


class Dataset:
    """A SQLite file of rows; a connection per call, so any thread may write."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(self._connect()) as db, db:
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=5)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def add(self, rows: Sequence[Row]) -> None:
        """Insert or replace (the same source, format, bucket and target keep the latest label)."""
        now = time.time()
        with contextlib.closing(self._connect()) as db, db:  # closed, and committed (or rolled back)
            db.executemany(
                "INSERT OR REPLACE INTO rows VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        r.source_digest,
                        r.format,
                        r.bucket,
                        r.target,
                        r.feature_version,
                        r.metric_version,
                        json.dumps(list(r.features)),
                        r.label,
                        json.dumps([list(t) for t in r.trail]),
                        now,
                    )
                    for r in rows
                ],
            )

    def rows(self, feature_version: str | None = None, metric_version: str | None = None) -> Iterator[Row]:
        db = self._connect()
        try:
            query = "SELECT * FROM rows WHERE (? IS NULL OR feature_version = ?) AND (? IS NULL OR metric_version = ?)"
            query += " ORDER BY source_digest, format, bucket, target"
            for rec in db.execute(query, (feature_version, feature_version, metric_version, metric_version)):
                yield Row(
                    source_digest=rec[0],
                    format=rec[1],
                    bucket=rec[2],
                    target=float(rec[3]),
                    feature_version=rec[4],
                    metric_version=rec[5],
                    features=tuple(float(v) for v in json.loads(rec[6])),
                    label=int(rec[7]),
                    trail=tuple((int(q), float(d), int(n)) for q, d, n in json.loads(rec[8])),
                )
        finally:
            db.close()

    def count(self) -> int:
        db = self._connect()
        try:
            return int(db.execute("SELECT COUNT(*) FROM rows").fetchone()[0])
        finally:
            db.close()


def snapshot_digest(rows: Sequence[Row]) -> str:
    """A digest of the rows a model was trained on (order-independent): the data snapshot's identity."""
    h = hashlib.sha256()
    for key in sorted(f"{r.source_digest}|{r.format}|{r.bucket}|{r.target}|{r.label}|{r.features}" for r in rows):
        h.update(key.encode())
    return h.hexdigest()


def dataset_row(digest: str, sample: Sample) -> Row:
    """A search's sample with its source and the versions it was computed with."""
    return Row(
        digest,
        sample.format,
        sample.bucket,
        sample.target,
        FEATURE_VERSION,
        METRIC_VERSION,
        sample.features,
        sample.label,
        sample.trail,
    )


class DatasetWriter:
    """Rows from requests, written on a thread after the response; a failure is logged, never raised."""

    def __init__(self, dataset: Dataset, max_pending: int = 64) -> None:
        self.dataset = dataset
        self.max_pending = max_pending
        self._tasks: set[asyncio.Task[None]] = set()
        self.written = 0

    def save_later(self, rows: Sequence[Row]) -> None:
        if not rows or len(self._tasks) >= self.max_pending:
            return
        task = asyncio.ensure_future(self._save(list(rows)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _save(self, rows: list[Row]) -> None:
        try:
            await asyncio.to_thread(self.dataset.add, rows)
            self.written += len(rows)
        except Exception as exc:  # the dataset is best effort: a request never fails for it
            log.warning("could not record training rows (%s)", type(exc).__name__)

    async def flush(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
