"""The model registry: a folder of versions and a pointer file naming the one that serves.

Layout: ``<root>/<version>/model.json`` (the artefact) and ``meta.json`` (its SHA-256, data
snapshot digest, feature and metric versions, offline metrics, library versions, the command
that built it); ``<root>/CURRENT`` names the serving version and ``<root>/HISTORY`` lists past
promotions, newest last, for ``rollback``. The pointer is replaced atomically (write + rename),
so a server polling it never reads half a name. With no registry configured, or an empty one,
the default model shipped in the package serves.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgproxy_py.quality_model.features import INPUT_NAMES
from imgproxy_py.quality_model.model import ModelError, TreeModel, load

DEFAULT_DIR = Path(__file__).parent / "default"
DEFAULT_ROOT = Path("models")  # `imgproxy-py models` without IMGPROXY_MODELS_REGISTRY
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True, slots=True)
class Version:
    name: str
    meta: dict[str, Any]


class Registry:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def pointer(self) -> Path:
        return self.root / "CURRENT"

    def versions(self) -> list[Version]:
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.iterdir()):
            meta = path / "meta.json"
            if path.is_dir() and meta.is_file():
                try:
                    found.append(Version(path.name, json.loads(meta.read_text())))
                except ValueError:
                    found.append(Version(path.name, {"error": "unreadable meta.json"}))
        return found

    def current(self) -> str | None:
        try:
            name = self.pointer.read_text().strip()
        except OSError:
            return None
        return name if _VERSION.match(name) else None

    def publish(self, version: str, artefact: bytes, meta: dict[str, Any]) -> Path:
        if not _VERSION.match(version):
            raise ValueError(f"bad version name {version!r}")
        folder = self.root / version
        folder.mkdir(parents=True, exist_ok=False)
        (folder / "model.json").write_bytes(artefact)
        (folder / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return folder

    def promote(self, version: str) -> None:
        if not _VERSION.match(version) or not (self.root / version / "meta.json").is_file():
            raise ValueError(f"no version {version!r} in {self.root}")
        previous = self.current()
        if previous is not None and previous != version:
            with open(self.root / "HISTORY", "a", encoding="utf-8") as history:
                history.write(previous + "\n")
        self._point(version)

    def rollback(self) -> str:
        """Serve the version promoted before the current one."""
        history_path = self.root / "HISTORY"
        try:
            history = [line.strip() for line in history_path.read_text().splitlines() if line.strip()]
        except OSError:
            history = []
        if not history:
            raise ValueError("nothing to roll back to")
        version = history.pop()
        history_path.write_text("".join(h + "\n" for h in history))
        self._point(version)
        return version

    def _point(self, version: str) -> None:
        tmp = self.pointer.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(version + "\n")
        tmp.replace(self.pointer)

    def load(self, version: str) -> TreeModel:
        return load_folder(self.root / version)


def load_folder(folder: Path) -> TreeModel:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        data = (folder / "model.json").read_bytes()
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the artefact ({type(exc).__name__})") from None
    return load(data, str(meta.get("sha256", "")), INPUT_NAMES)


class ModelHandle:
    """The serving model, reloaded when the pointer file changes (checked at most every ``poll`` s).

    ``get()`` returns the model, or raises ModelError when the promoted version cannot be
    loaded (the caller falls back to the DSSIM search). A promotion takes effect within
    ``poll`` seconds, without a restart.
    """

    def __init__(self, root: str | Path | None, poll: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = Registry(root) if root else None
        self.poll = poll
        self.clock = clock
        self._lock = threading.Lock()
        self._checked = -1e18
        self._stamp: object = None
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
                    self._refresh()
        if self._model is None:
            raise ModelError(self._error or "no model")
        return self._model

    def _refresh(self) -> None:
        version: str | None = None
        stamp: object = None
        if self.registry is not None:
            version = self.registry.current()
            try:
                st = self.registry.pointer.stat()
                stamp = (version, st.st_mtime_ns, st.st_size)
            except OSError:
                stamp = None
        if stamp == self._stamp and (self._model is not None or self._error is not None):
            return
        self._stamp = stamp
        try:
            folder = DEFAULT_DIR if version is None or self.registry is None else self.registry.root / version
            self._model = load_folder(folder)
            self.meta = json.loads((folder / "meta.json").read_text())
            self._error = None
            self.version = self._model.version
        except (ModelError, OSError, ValueError) as exc:
            self._model = None
            self._error = f"{version or 'default'}: {exc}"
            self.version = version or "default"
