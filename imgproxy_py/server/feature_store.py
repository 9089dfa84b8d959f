"""The analysis feature store: one record per source image, kept in the result cache's tiers.

Records go through the same TieredCache as results (L1 memory, L2 Redis, L3 S3) under
their own key namespace, so every process and replica that shares a tier reuses what
another one computed (faces, auto-quality choices, colours and hashes). Writes happen in
the background, after the response; a record that does not decode is ignored.
"""

from __future__ import annotations

import asyncio
import logging
import time

from imgproxy_py.analysis.records import FeatureRecord, record_key
from imgproxy_py.cache.base import CacheEntry
from imgproxy_py.cache.tiered import TieredCache

log = logging.getLogger("imgproxy_py.features")

FORMAT = "features"  # CacheEntry.format of a record
_MAX_PENDING = 128


class FeatureStore:
    def __init__(self, cache: TieredCache, version: str, ttl: float) -> None:
        self.cache = cache
        self.version = version  # the detector's and the quality metric's versions
        self.ttl = ttl
        self._writes: set[asyncio.Task[None]] = set()
        self.reads = 0
        self.hits = 0
        self.writes = 0

    async def get(self, digest: str) -> FeatureRecord | None:
        self.reads += 1
        hit = await self.cache.get(record_key(digest, self.version))
        if hit is None:
            return None
        entry, _ = hit
        if entry.format != FORMAT:
            return None
        record = FeatureRecord.from_bytes(entry.data, self.version)
        if record is not None:
            self.hits += 1
        return record

    def save_later(self, digest: str, learnt: FeatureRecord, previous: FeatureRecord | None) -> None:
        """Merge what a request learnt into the record it read and store it, off the request's path."""
        if len(self._writes) >= _MAX_PENDING:
            return
        record = learnt.merged(previous) if previous is not None else learnt
        task = asyncio.ensure_future(self._save(digest, record))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _save(self, digest: str, record: FeatureRecord) -> None:
        now = time.time()
        entry = CacheEntry(
            data=record.to_bytes(),
            format=FORMAT,
            etag=None,
            last_modified=None,
            stored_at=now,
            fresh_until=now + self.ttl,
        )
        try:
            await self.cache.set(record_key(digest, self.version), entry)
            self.writes += 1
        except Exception as exc:  # a failed write only costs a recomputation later
            log.warning("could not store a feature record (%s)", type(exc).__name__)

    async def flush(self) -> None:
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)
        await self.cache.flush()
