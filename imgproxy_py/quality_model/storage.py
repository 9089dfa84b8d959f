"""Where the registry and the dataset keep their files: a local folder, or an S3 prefix.

``open_store("s3://bucket/prefix", target)`` or ``open_store("/some/folder")``: the same five
calls either way, so the registry and the dataset have one code path each. S3 goes through the
project's one S3 client (s3conn: minio with timeouts and no retries), with the connection
settings of IMGPROXY_S3_ENDPOINT / IMGPROXY_S3_REGION / AWS_* (``S3Target.from_settings``).
Keys are relative, ``/``-separated, and never contain ``..`` (names are checked by the callers).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Protocol

from imgproxy_py.s3conn import BACKEND_ERRORS, S3Target

S3_TIMEOUT = 10.0  # seconds per connect/read: registry and dataset calls are off the request path


class StoreError(OSError):
    """A storage call failed (the message names the location, never credentials)."""


class Store(Protocol):
    location: str  # for messages: the folder, or s3://bucket/prefix
    remote: bool  # True: calls cross the network (keep them off the request path)

    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        ...

    def write(self, key: str, data: bytes) -> None: ...

    def list_keys(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix`` (recursive), sorted."""
        ...

    def stamp(self, key: str) -> object:
        """Changes whenever the object does (None: missing)."""
        ...


def is_s3(location: str | Path) -> bool:
    return str(location).startswith("s3://")


def open_store(location: str | Path, s3: S3Target | None = None) -> Store:
    if is_s3(location):
        return S3Store(str(location), s3 or S3Target())
    return FolderStore(Path(location))


class FolderStore:
    remote = False

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def read(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:  # unreadable (permissions, a folder where a file should be, I/O)
            raise StoreError(f"cannot read {key} from {self.location}: {type(exc).__name__}") from None

    def write(self, key: str, data: bytes) -> None:
        """Atomic: written beside, then renamed over (a reader never sees half a file)."""
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_bytes(data)
        tmp.replace(path)

    def list_keys(self, prefix: str = "") -> list[str]:
        base = self.root / prefix if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root)).replace(os.sep, "/")
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )

    def stamp(self, key: str) -> object:
        try:
            st = (self.root / key).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)


class S3Store:
    remote = True

    def __init__(self, location: str, target: S3Target) -> None:
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {location!r} (expected s3://bucket/prefix)")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.location = f"s3://{bucket}/{self.prefix}"
        self.client = target.client(S3_TIMEOUT, max_connections=4)

    def _fail(self, what: str, exc: Exception) -> StoreError:
        return StoreError(f"{what} {self.location}: {type(exc).__name__} {getattr(exc, 'code', '')}".rstrip())

    def read(self, key: str) -> bytes | None:
        from minio.error import S3Error

        try:
            response = self.client.get_object(self.bucket, self.prefix + key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NotFound"):
                return None
            raise self._fail(f"cannot read {key} from", exc) from None
        except BACKEND_ERRORS as exc:
            raise self._fail(f"cannot read {key} from", exc) from None
        try:
            return bytes(response.read())
        except BACKEND_ERRORS as exc:
            raise self._fail(f"cannot read {key} from", exc) from None
        finally:
            response.close()
            response.release_conn()

    def write(self, key: str, data: bytes) -> None:
        """A PUT replaces the whole object at once: readers see the old or the new one."""
        try:
            self.client.put_object(self.bucket, self.prefix + key, io.BytesIO(data), len(data))
        except BACKEND_ERRORS as exc:
            raise self._fail(f"cannot write {key} to", exc) from None

    def list_keys(self, prefix: str = "") -> list[str]:
        try:
            found = [
                str(obj.object_name)[len(self.prefix) :]
                for obj in self.client.list_objects(self.bucket, prefix=self.prefix + prefix, recursive=True)
                if obj.object_name is not None
            ]
        except BACKEND_ERRORS as exc:
            raise self._fail("cannot list", exc) from None
        return sorted(found)

    def stamp(self, key: str) -> object:
        from minio.error import S3Error

        try:
            stat = self.client.stat_object(self.bucket, self.prefix + key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NotFound"):
                return None
            raise self._fail(f"cannot stat {key} in", exc) from None
        except BACKEND_ERRORS as exc:
            raise self._fail(f"cannot stat {key} in", exc) from None
        return (stat.etag, stat.last_modified)
