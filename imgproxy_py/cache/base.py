"""The tier contract and the cached entry with its compact binary form.

Entries are stored as a small JSON header followed by the raw image bytes: no base64,
no pickling (a tier shared with other processes must never execute what it reads).
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

_MAGIC = b"IPY1"
_HEADER = struct.Struct(">4sI")  # magic, JSON length


@dataclass(frozen=True, slots=True)
class CacheEntry:
    data: bytes
    format: str  # ImageFormat value of an image result; "json" for an /info document (own key namespace)
    etag: str | None
    last_modified: str | None
    stored_at: float  # unix time
    fresh_until: float  # unix time; later the entry only serves stale-if-error

    def is_fresh(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.fresh_until

    def to_bytes(self) -> bytes:
        meta = json.dumps(
            {
                "f": self.format,
                "e": self.etag,
                "m": self.last_modified,
                "s": self.stored_at,
                "u": self.fresh_until,
            },
            separators=(",", ":"),
        ).encode()
        return b"".join((_HEADER.pack(_MAGIC, len(meta)), meta, self.data))

    @classmethod
    def from_bytes(cls, blob: bytes) -> CacheEntry | None:
        """Decode a stored entry; anything malformed reads as a miss, never an error."""
        if len(blob) < _HEADER.size:
            return None
        magic, length = _HEADER.unpack_from(blob)
        if magic != _MAGIC or _HEADER.size + length > len(blob):
            return None
        try:
            meta = json.loads(blob[_HEADER.size : _HEADER.size + length])
            return cls(
                data=blob[_HEADER.size + length :],
                format=str(meta["f"]),
                etag=meta["e"],
                last_modified=meta["m"],
                stored_at=float(meta["s"]),
                fresh_until=float(meta["u"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


class CacheTier(Protocol):
    """One storage level. Implementations may raise; TieredCache isolates their failures."""

    name: str

    async def get(self, key: str) -> CacheEntry | None: ...

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        """Store for ``ttl`` seconds (freshness plus the stale-if-error window)."""
        ...

    async def ping(self) -> bool:
        """A cheap round trip, for /health."""
        ...

    async def aclose(self) -> None: ...


class PurgeableTier(Protocol):
    """A tier that can drop every entry of one source (keys start with ``<source tag>.``)."""

    async def purge(self, tag: str) -> int:
        """Delete them; returns how many were there."""
        ...


@runtime_checkable
class LockingTier(Protocol):
    """A shared tier that can hold a short per-key lock (cache/lock.py: cross-process coalescing)."""

    async def try_lock(self, key: str, ttl: float) -> str | None:
        """Take the lock for ``key``; its token, or None when another holder has it."""
        ...

    async def unlock(self, key: str, token: str) -> None: ...

    async def is_locked(self, key: str) -> bool: ...
