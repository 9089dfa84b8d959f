"""Which detectors this process has: loaded once, lazily, and optional.

A detector whose package is not installed (or fails to load) is simply absent; callers
fall back (smart crop uses libvips' attention strategy). ``status()`` says which, for
the start-up log and ``/health``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from imgproxy_py.analysis.detector import Detector

log = logging.getLogger("imgproxy_py.analysis")

Factory = Callable[[], Detector]


class DetectorRegistry:
    def __init__(self) -> None:
        self._factories: dict[str, Factory] = {}
        self._loaded: dict[str, Detector | None] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()

    def register(self, name: str, factory: Factory) -> None:
        with self._lock:
            self._factories[name] = factory
            self._loaded.pop(name, None)
            self._errors.pop(name, None)

    def get(self, name: str) -> Detector | None:
        """The detector, loading it on first use; None when it is not available."""
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            factory = self._factories.get(name)
            detector: Detector | None = None
            if factory is not None:
                try:
                    detector = factory()
                except ImportError as exc:
                    self._errors[name] = f"not installed ({exc.name or exc})"
                except Exception as exc:  # a broken native build: run without it
                    self._errors[name] = f"failed to load ({type(exc).__name__})"
            else:
                self._errors[name] = "not registered"
            self._loaded[name] = detector
            return detector

    def status(self, name: str) -> str:
        detector = self.get(name)
        if detector is not None:
            return f"on ({detector.version})"
        return f"off: {self._errors.get(name, 'unavailable')}"


def default_registry(face_threshold: float = 0.5, enabled: bool = True) -> DetectorRegistry:
    """The registry with the built-in face detector (when enabled by the settings)."""
    registry = DetectorRegistry()
    if enabled:

        def load_faces() -> Detector:
            from imgproxy_py.analysis.libfacedetection import LibFaceDetection

            return LibFaceDetection(face_threshold)

        registry.register("face", load_faces)
    return registry
