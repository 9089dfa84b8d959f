"""The training set: one row per (source, output format, size bucket, target), in SQLite.

Locally, SQLite (the standard library's sqlite3): rows arrive one at a time from a server and a
single file needs no service. In production, ``IMGPROXY_AUTOQUALITY_DATASET=s3://bucket/prefix``
(S3Dataset): every write is a new gzipped JSON-lines object, so any number of replicas append
without coordination, and reading merges them with the same rule as SQLite's ``INSERT OR
REPLACE`` (the latest row per key wins). Each row keeps the feature and metric versions so that training only
mixes rows computed the same way, and the search's trail (quality, DSSIM, bytes) so offline
evaluation can estimate what another quality would have cost and whether it passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from imgproxy_py.quality_model.inputs import FEATURE_VERSION, Sample
from imgproxy_py.quality_model.storage import is_s3, open_store
from imgproxy_py.s3conn import S3Target

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
        self.location = str(self.path)
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


def _key(r: Row) -> tuple[str, str, str, float, str, str]:
    return (r.source_digest, r.format, r.bucket, r.target, r.feature_version, r.metric_version)


def _to_json(r: Row, created_at: float) -> dict[str, Any]:
    return {
        "source_digest": r.source_digest,
        "format": r.format,
        "bucket": r.bucket,
        "target": r.target,
        "feature_version": r.feature_version,
        "metric_version": r.metric_version,
        "features": list(r.features),
        "label": r.label,
        "trail": [list(t) for t in r.trail],
        "created_at": created_at,
    }


def _from_json(doc: dict[str, Any]) -> Row:
    return Row(
        source_digest=str(doc["source_digest"]),
        format=str(doc["format"]),
        bucket=str(doc["bucket"]),
        target=float(doc["target"]),
        feature_version=str(doc["feature_version"]),
        metric_version=str(doc["metric_version"]),
        features=tuple(float(v) for v in doc["features"]),
        label=int(doc["label"]),
        trail=tuple((int(q), float(d), int(n)) for q, d, n in doc["trail"]),
    )


class S3Dataset:
    """The rows as objects under an S3 prefix: ``rows/<time>-<random>.jsonl.gz``, one per ``add``.

    Appends never overwrite (a unique name each), so replicas need no lock; ``rows()`` reads
    every object and keeps, per key, the row written last (ties: the later object name).
    Reading is for training (offline), not for the request path.
    """

    def __init__(self, location: str, s3: S3Target | None = None) -> None:
        self.store = open_store(location, s3)
        self.location = self.store.location

    def add(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        now = time.time()
        body = "".join(json.dumps(_to_json(r, now), separators=(",", ":")) + "\n" for r in rows)
        name = (
            time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"-{time.time_ns() % 10**9:09d}-{uuid.uuid4().hex[:12]}"
        )
        self.store.write(f"rows/{name}.jsonl.gz", gzip.compress(body.encode(), mtime=0))

    def _latest(self) -> dict[tuple[str, str, str, float, str, str], Row]:
        latest: dict[tuple[str, str, str, float, str, str], tuple[float, Row]] = {}
        for key in self.store.list_keys("rows/"):
            data = self.store.read(key)
            if data is None:
                continue
            try:
                lines = gzip.decompress(data).decode().splitlines()
                docs = [json.loads(line) for line in lines if line.strip()]
                parsed = [(float(d["created_at"]), _from_json(d)) for d in docs]
            except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:  # a bad object, not a bad dataset
                log.warning("skipping unreadable dataset object %s (%s)", key, type(exc).__name__)
                continue
            for created, row in parsed:
                k = _key(row)
                if k not in latest or created >= latest[k][0]:
                    latest[k] = (created, row)
        return {k: row for k, (_, row) in latest.items()}

    def rows(self, feature_version: str | None = None, metric_version: str | None = None) -> Iterator[Row]:
        latest = self._latest()
        for key in sorted(latest):
            row = latest[key]
            if feature_version is not None and row.feature_version != feature_version:
                continue
            if metric_version is not None and row.metric_version != metric_version:
                continue
            yield row

    def count(self) -> int:
        return len(self._latest())


class RowSink(Protocol):
    """What a server writes rows into: a Dataset or an S3Dataset."""

    location: str

    def add(self, rows: Sequence[Row]) -> None: ...


def open_dataset(location: str | Path, s3: S3Target | None = None) -> Dataset | S3Dataset:
    """``s3://bucket/prefix`` (production) or a SQLite file path (the default)."""
    return S3Dataset(str(location), s3) if is_s3(location) else Dataset(location)


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

    def __init__(self, dataset: RowSink, max_pending: int = 64) -> None:
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
