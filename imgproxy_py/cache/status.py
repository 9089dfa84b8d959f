"""Where a response came from: the X-Cache header value, the access log's cache field and the metrics' tier label."""

from __future__ import annotations

from enum import Enum


class CacheStatus(Enum):
    """The value is the X-Cache header string (and the access log's ``cache`` field)."""

    HIT_L1 = "HIT-L1"  # this process's memory
    HIT_L2 = "HIT-L2"  # Redis or memcached, shared by processes and replicas
    HIT_L3 = "HIT-L3"  # the S3 results bucket
    HIT_COALESCED = "HIT-COALESCED"  # another request's (or process's) work for the same key
    MISS = "MISS"  # this request led the work
    STALE = "STALE"  # an expired entry served because the source is down (stale-if-error)

    tier: str | None  # the cache_hits_total{tier} label of a tier hit ("L1", "L2", "L3"), else None
    header: tuple[bytes, bytes]  # the raw X-Cache header of a prebuilt response

    @classmethod
    def hit(cls, tier_name: str) -> CacheStatus:
        """The status of a hit in the tier named ``tier_name`` (CacheTier.name)."""
        return _BY_TIER[tier_name]


_BY_TIER = {"L1": CacheStatus.HIT_L1, "L2": CacheStatus.HIT_L2, "L3": CacheStatus.HIT_L3}
for _tier, _status in _BY_TIER.items():
    _status.tier = _tier
for _status in CacheStatus:
    _status.header = (b"x-cache", _status.value.encode("latin-1"))
    if not hasattr(_status, "tier"):
        _status.tier = None
