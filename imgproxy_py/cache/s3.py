"""L3: an S3-compatible results bucket, durable across restarts and shared by replicas.

S3 has no per-object TTL: entries carry their own freshness and TieredCache ignores
expired ones; a bucket lifecycle rule (expire after TTL + stale window) deletes them.
Keys are sharded by their first two hex digits so listings stay cheap.
"""

from __future__ import annotations

import io

import anyio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from imgproxy_py.cache.base import CacheEntry
from imgproxy_py.s3conn import S3Target, close_client, in_thread


class S3Tier:
    name = "L3"

    def __init__(self, target: S3Target, bucket: str, prefix: str, timeout: float) -> None:
        self._client = target.client(timeout)
        self._bucket = bucket
        self._prefix = prefix
        self._limiter = anyio.CapacityLimiter(16)

    def _object(self, key: str) -> str:
        return f"{self._prefix}{key[:2]}/{key}"

    def _get(self, key: str) -> bytes | None:
        try:
            response = self._client.get_object(self._bucket, self._object(key))
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NotFound"):
                return None
            raise
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    def _put(self, key: str, blob: bytes) -> None:
        self._client.put_object(
            self._bucket, self._object(key), io.BytesIO(blob), len(blob), content_type="application/octet-stream"
        )

    def _purge(self, tag: str) -> int:
        # Keys start with their source's tag, so one listing finds every variant of a source.
        names = [
            obj.object_name
            for obj in self._client.list_objects(self._bucket, prefix=f"{self._prefix}{tag[:2]}/{tag}.", recursive=True)
            if obj.object_name
        ]
        if names:
            errors = list(self._client.remove_objects(self._bucket, [DeleteObject(name) for name in names]))
            if errors:
                raise RuntimeError(f"{len(errors)} objects could not be deleted")
        return len(names)

    async def purge(self, tag: str) -> int:
        """Delete every stored variant of one source; returns how many."""
        return await in_thread(self._limiter, self._purge, tag)

    async def get(self, key: str) -> CacheEntry | None:
        blob = await in_thread(self._limiter, self._get, key)
        return CacheEntry.from_bytes(blob) if blob else None

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        if ttl > 0:
            await in_thread(self._limiter, self._put, key, entry.to_bytes())

    async def ping(self) -> bool:
        return bool(await in_thread(self._limiter, self._client.bucket_exists, self._bucket))

    async def aclose(self) -> None:
        close_client(self._client)
