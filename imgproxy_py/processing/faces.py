"""Faces inside the pipeline: found once per request on a small copy, then followed through crops and turns.

The detector runs lazily, the first time a step needs faces (a smart or object crop, a
crop that might cut a face, ``bd``/``dd``), on the worker thread that runs the request
and under its cancel token. It looks at a copy of the source at most
``detection_size`` pixels long (shrink-on-load; never a full-size decode). Faces a caller
already knows (the feature store) skip the detector entirely.

Detections are kept in the stored frame of the source (before EXIF rotation). Each crop
and turn the pipeline makes is recorded, so ``current()`` gives them in the frame of the
image as it is right now.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from imgproxy_py.analysis.detector import Detection, Detector
from imgproxy_py.analysis.focus import Box, View, pixel_boxes, turned, within
from imgproxy_py.processing import vips


@dataclass(frozen=True, slots=True)
class FaceOptions:
    """Per-request inputs: the detector (None: not installed or off) and what is already known."""

    detector: Detector | None = None
    known: tuple[Detection, ...] | None = None  # stored frame, from the feature store
    size: int = 512
    keep_whole: bool = True

    @property
    def available(self) -> bool:
        return self.detector is not None or self.known is not None


NO_FACES = FaceOptions()

_Op = tuple[str, Any]


@dataclass(slots=True)
class FaceTrack:
    options: FaceOptions
    source: bytes | None  # bytes the pipeline decodes (an ICO's inner PNG); None: analyse the current image
    raw: list[Detection] | None = None
    ran_detector: bool = False  # this request ran the model (the feature store then learns its result)
    detect_seconds: float = 0.0
    _ops: list[_Op] = field(default_factory=list)
    _base: int = 0  # ops already reflected in ``raw`` (when it came from the current image)

    def note_crop(self, left: int, top: int, width: int, height: int, outer_w: int, outer_h: int) -> None:
        if (left, top, width, height) != (0, 0, outer_w, outer_h):
            self._ops.append(("crop", View().crop(left, top, width, height, outer_w, outer_h)))

    def note_turn(self, angle: int, flip_h: bool = False, flip_v: bool = False) -> None:
        if angle % 360 or flip_h or flip_v:
            self._ops.append(("turn", (angle, flip_h, flip_v)))

    def ensure(self, current_img: Any) -> list[Detection]:
        """The faces in the stored frame, running the detector the first time."""
        if self.raw is not None:
            return self.raw
        if self.options.known is not None:
            self.raw = list(self.options.known)
            return self.raw
        detector = self.options.detector
        if detector is None:
            self.raw = []
            return self.raw
        started = time.perf_counter()
        size = self.options.size
        if self.source is not None:
            width, height, rgb = vips.rgb_bytes(vips.analysis_copy(self.source, size, upright=False))
        else:  # no source bytes: the image as it is now (already shrunk), whose frame is the current one
            width, height, rgb = vips.rgb_bytes(current_img, size)
            self._base = len(self._ops)
        self.raw = detector.detect(width, height, rgb)
        self.ran_detector = True
        self.detect_seconds = time.perf_counter() - started
        return self.raw

    def current(self, current_img: Any) -> list[Detection]:
        """The faces in the frame of the image as it is now."""
        faces = self.ensure(current_img)
        for kind, arg in self._ops[self._base :]:
            if not faces:
                break
            faces = within(faces, arg) if kind == "crop" else turned(faces, *arg)
        return faces

    def boxes(self, img: Any, labels: Sequence[str] = ()) -> list[Box]:
        """Pixel boxes in ``img`` (the current image), heaviest first."""
        return pixel_boxes(self.current(img), img.width, img.height, labels)


def detect_in_source(data: bytes, options: FaceOptions) -> tuple[Detection, ...]:
    """The faces of a source image in its stored frame (``/info``); none when it cannot be read."""
    try:
        return tuple(FaceTrack(options, data).ensure(None))
    except vips.Error:
        return ()
