"""The source contract: fetch a URL into memory, bounded in size and time.

Every source kind (local, http, s3, …) implements ``Source`` and maps its backend's
failures onto the SourceError family, so the handler never sees backend exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class FetchLimits:
    max_bytes: int = 0  # 0: no limit
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class SourceImage:
    data: bytes
    etag: str | None = None  # the source's validator, quotes included
    last_modified: str | None = None  # an HTTP date
    content_type: str | None = None


class Source(Protocol):
    async def fetch(self, url: str, limits: FetchLimits) -> SourceImage:
        """Return the whole body or raise a SourceError."""
        ...

    async def aclose(self) -> None: ...
