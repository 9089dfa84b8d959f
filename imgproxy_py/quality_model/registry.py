"""The model registry: a folder or S3 prefix of versions, and a pointer naming the one that serves.

Layout (the same in a folder and under ``s3://bucket/prefix/``): ``<version>/model.json`` (the
artefact) and ``<version>/meta.json`` (its SHA-256, data snapshot digest, feature and metric
versions, offline metrics, library versions, the command that built it; written last, so a
version without it is incomplete and ignored); ``CURRENT`` names the serving version and
``HISTORY`` lists past promotions, newest last, for ``rollback``. The pointer is replaced whole
(a rename locally, a PUT on S3), so a server polling it never reads half a name. With no
registry configured, or an empty one, the default model shipped in the package serves.
Promotions are meant to be made by one operator or pipeline at a time (HISTORY is read,
extended and written back, not locked).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgproxy_py.quality_model.inputs import INPUT_NAMES
from imgproxy_py.quality_model.storage import StoreError, open_store
from imgproxy_py.quality_model.trees import ModelError, TreeModel, load
from imgproxy_py.s3conn import S3Target

DEFAULT_DIR = Path(__file__).parent / "default"
DEFAULT_ROOT = Path("models")  # `imgproxy-py models` without IMGPROXY_MODELS_REGISTRY
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
log = logging.getLogger("imgproxy_py.quality_model")


@dataclass(frozen=True, slots=True)
class Version:
    name: str
    meta: dict[str, Any]


class Registry:
    """``root``: a folder, or ``s3://bucket/prefix`` (connected with ``s3``)."""

    def __init__(self, root: str | Path, s3: S3Target | None = None) -> None:
        self.store = open_store(root, s3)
        self.location = self.store.location

    def versions(self) -> list[Version]:
        names = sorted(
            {k.split("/")[0] for k in self.store.list_keys() if k.count("/") == 1 and k.endswith("/meta.json")}
        )
        found = []
        for name in names:
            try:
                found.append(Version(name, json.loads(self.store.read(f"{name}/meta.json") or b"")))
            except ValueError:
                found.append(Version(name, {"error": "unreadable meta.json"}))
        return found

    def current(self) -> str | None:
        """The serving version (None: nothing promoted, or the registry cannot be read)."""
        try:
            return self.pointer()
        except StoreError:
            return None

    def pointer(self) -> str | None:
        """The serving version; raises StoreError when the registry cannot be read."""
        name = (self.store.read("CURRENT") or b"").decode(errors="replace").strip()
        return name if _VERSION.match(name) else None

    def publish(self, version: str, artefact: bytes, meta: dict[str, Any]) -> str:
        """Write a new version (never over an existing one); returns where it went."""
        if not _VERSION.match(version):
            raise ValueError(f"bad version name {version!r}")
        if self.store.read(f"{version}/meta.json") is not None:
            raise ValueError(f"version {version!r} already exists in {self.location}")
        self.store.write(f"{version}/model.json", artefact)
        self.store.write(f"{version}/meta.json", (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
        return f"{self.location.rstrip('/')}/{version}"

    def promote(self, version: str) -> None:
        if not _VERSION.match(version) or self.store.read(f"{version}/meta.json") is None:
            raise ValueError(f"no version {version!r} in {self.location}")
        previous = self.current()
        if previous is not None and previous != version:
            self.store.write("HISTORY", self._lines([*self._history(), previous]))
        self.store.write("CURRENT", (version + "\n").encode())

    def rollback(self) -> str:
        """Serve the version promoted before the current one."""
        history = self._history()
        if not history:
            raise ValueError("nothing to roll back to")
        version = history.pop()
        self.store.write("HISTORY", self._lines(history))
        self.store.write("CURRENT", (version + "\n").encode())
        return version

    def _history(self) -> list[str]:
        data = self.store.read("HISTORY") or b""
        return [line.strip() for line in data.decode(errors="replace").splitlines() if _VERSION.match(line.strip())]

    @staticmethod
    def _lines(names: list[str]) -> bytes:
        return "".join(n + "\n" for n in names).encode()

    def load(self, version: str) -> TreeModel:
        return self.load_with_meta(version)[0]

    def load_with_meta(self, version: str) -> tuple[TreeModel, dict[str, Any]]:
        if not _VERSION.match(version):
            raise ModelError(f"bad version name {version[:100]!r}")
        try:
            meta_bytes = self.store.read(f"{version}/meta.json")
            data = self.store.read(f"{version}/model.json")
            if meta_bytes is None or data is None:
                raise ModelError(f"version {version} is incomplete in {self.location}")
            meta = json.loads(meta_bytes)
        except (StoreError, ValueError) as exc:
            raise ModelError(f"cannot read the artefact ({type(exc).__name__})") from None
        return load(data, str(meta.get("sha256", "")), INPUT_NAMES), meta


def load_folder(folder: Path) -> TreeModel:
    return load_folder_with_meta(folder)[0]


def load_folder_with_meta(folder: Path) -> tuple[TreeModel, dict[str, Any]]:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        data = (folder / "model.json").read_bytes()
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the artefact ({type(exc).__name__})") from None
    return load(data, str(meta.get("sha256", "")), INPUT_NAMES), meta


class ModelHandle:
    """The serving model, reloaded when the pointer changes (checked at most every ``poll`` s).

    ``get()`` returns the model, or raises ModelError when the promoted version cannot be
    loaded (the caller falls back to the DSSIM search). A promotion takes effect within
    ``poll`` seconds, without a restart. On S3 only the first load waits for the network;
    later checks run on a background thread, so a prediction never makes a network call,
    and an unreachable registry keeps the loaded version serving.
    """

    def __init__(
        self,
        root: str | Path | None,
        poll: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        s3: S3Target | None = None,
    ) -> None:
        self.registry = Registry(root, s3) if root else None
        self.poll = poll
        self.clock = clock
        self._lock = threading.Lock()
        self._checked = -1e18
        self._stamp: object = None
        self._loaded = False
        self._refreshing = False
        self._unreachable = False
        self._model: TreeModel | None = None
        self._error: str | None = None
        self.version = "none"
        self.meta: dict[str, Any] = {}  # the serving version's metadata (its feature profile: drift)

    def get(self) -> TreeModel:
        now = self.clock()
        if now - self._checked >= self.poll:
            with self._lock:
                if now - self._checked >= self.poll:
                    self._checked = now
                    remote = self.registry is not None and self.registry.store.remote
                    if remote and self._loaded:
                        if not self._refreshing:
                            self._refreshing = True
                            threading.Thread(target=self._refresh_in_background, daemon=True).start()
                    else:
                        self._refresh()
        model = self._model
        if model is None:
            raise ModelError(self._error or "no model")
        return model

    def preload(self) -> None:
        """Load the serving version now (at start-up), so no request waits for the first load."""
        try:
            self.get()
        except ModelError as exc:
            log.warning("aq:ml model not usable, aq:ml falls back to the DSSIM search (%s)", exc)

    def _refresh_in_background(self) -> None:
        try:
            self._refresh()
        finally:
            self._refreshing = False

    def _refresh(self) -> None:
        version: str | None = None
        if self.registry is not None:
            try:
                version = self.registry.pointer()
            except StoreError as exc:
                if not self._unreachable:  # once per outage, not once per poll
                    serving = self.version if self._loaded else "the shipped model"
                    log.warning("model registry unreachable, serving %s (%s)", serving, exc)
                self._unreachable = True
                if self._loaded:  # keep serving what is loaded
                    return
                version = None  # at start: the shipped model
            else:
                self._unreachable = False
        stamp = ("registry", version) if self.registry is not None and version is not None else ("default",)
        if self._loaded and stamp == self._stamp:
            return
        self._stamp = stamp
        self._loaded = True
        try:
            if version is None or self.registry is None:
                model, meta = load_folder_with_meta(DEFAULT_DIR)
            else:
                model, meta = self.registry.load_with_meta(version)
            self.meta, self._model, self._error = meta, model, None
            self.version = model.version
        except ModelError as exc:
            self._model = None
            self._error = f"{version or 'default'}: {exc}"
            self.version = version or "default"
