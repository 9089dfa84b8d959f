"""Digests that identify a result: the ETag now, the cache key later. Pure functions.

A result is fully determined by the canonical options, the client's format
capabilities (only when they can change the format), the source URL, the source's
version and the settings that affect processing; the digest covers exactly those.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections.abc import Mapping

from imgproxy_py.options.model import ProcessingOptions


def canonical(value: object) -> str:
    """Text that is the same in every process for equal values: part of keys shared across processes.

    ``repr`` is not: a set's order follows the per-process string hash seed (PYTHONHASHSEED),
    so two processes with the same settings computed different keys and ETags. Here sets and
    mappings are sorted, dataclasses list their compared fields in order (``compare=False``
    fields, e.g. decoded pixels, are not settings), enums give their value.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        parts = (f"{f.name}={canonical(getattr(value, f.name))}" for f in dataclasses.fields(value) if f.compare)
        return f"{type(value).__name__}({','.join(parts)})"
    if isinstance(value, enum.Enum):
        return canonical(value.value)
    if isinstance(value, (set, frozenset)):
        return "{" + ",".join(sorted(canonical(item) for item in value)) + "}"
    if isinstance(value, Mapping):
        return "{" + ",".join(sorted(f"{canonical(k)}:{canonical(v)}" for k, v in value.items())) + "}"
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(canonical(item) for item in value) + "]"
    if value is None or isinstance(value, (str, int, float, bool, bytes)):
        return repr(value)  # these reprs do not depend on the process
    raise TypeError(f"no canonical form for {type(value).__name__}")


def source_version(etag: str | None, last_modified: str | None, data: bytes) -> str:
    """The source's own validator when it has one, else a digest of its bytes."""
    if etag:
        return "e:" + etag
    if last_modified:
        return "m:" + last_modified
    return "d:" + hashlib.blake2b(data, digest_size=16).hexdigest()


def result_digest(
    po: ProcessingOptions | str, client_key: str, source_url: str, version: str, settings_fingerprint: str
) -> str:
    """``po`` may be given as its ``canonical()`` text (a caller digesting the same options twice)."""
    h = hashlib.blake2b(digest_size=20)
    for part in (po if isinstance(po, str) else po.canonical(), client_key, source_url, version, settings_fingerprint):
        h.update(part.encode("utf-8", "surrogateescape"))
        h.update(b"\x00")
    return h.hexdigest()


def source_tag(source_url: str) -> str:
    """A short name for a source URL: the prefix of every cache key made from it, the
    ``Surrogate-Key``/``Cache-Tag`` a CDN purges by, and what ``imgproxy-py purge`` drops."""
    return hashlib.blake2b(source_url.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()


def tag_of(key: str) -> str:
    """The source tag a cache key starts with."""
    return key.partition(".")[0]


def cache_key(po: ProcessingOptions | str, client_key: str, source_url: str, settings_fingerprint: str) -> str:
    """The result cache key: known before the source is fetched, so a hit costs no source traffic.

    ``<source tag>.<digest>``: every variant of one source shares the prefix, so each tier can
    find them all for a purge (and Redis Cluster keeps them in one slot).
    The source's version is not part of it (it is unknown until fetched): a source that
    changes in place keeps serving the cached result until the TTL ends or it is purged;
    versioned URLs or ``cachebuster`` give a new key at once.
    """
    return f"{source_tag(source_url)}.{result_digest(po, client_key, source_url, '', settings_fingerprint)}"


def etag_for(digest: str) -> str:
    return f'"{digest}"'


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison against an If-None-Match list (``*`` matches anything)."""
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*":
            return True
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == etag:
            return True
    return False
