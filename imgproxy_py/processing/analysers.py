"""The analysers a processor's steps may ask for, by kind: built once at start-up.

A model used by one step (the face detector today) is registered here by the composition
root (server/app.py), loaded and monitored there; the pipeline asks ``get(FaceAnalyser)``
and falls back (libvips attention) when it is absent. Adding a model: its analyser type
(the model plus the settings it is used with), registered here, asked for by its step.
"""

from __future__ import annotations

from typing import TypeVar

A = TypeVar("A")


class Analysers:
    """Immutable after construction, so shared by every worker thread."""

    __slots__ = ("_by_kind",)

    def __init__(self, *analysers: object) -> None:
        self._by_kind: dict[type, object] = {type(a): a for a in analysers}

    def get(self, kind: type[A]) -> A | None:
        found = self._by_kind.get(kind)
        return found if isinstance(found, kind) else None

    def __repr__(self) -> str:
        return f"Analysers({', '.join(sorted(k.__name__ for k in self._by_kind))})"


NO_ANALYSERS = Analysers()
