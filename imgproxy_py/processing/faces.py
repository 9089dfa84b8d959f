"""Faces inside the pipeline: found once per request on a small copy, then followed through crops and turns.

The detector runs lazily, the first time a step needs faces (a smart or object crop, a
crop that might cut a face, ``bd``/``dd``), on the worker thread that runs the request
and under its cancel token. It looks at the image the pipeline already has in memory
(shrunk on load and resized), brought down to at most ``detection_size`` pixels, so no
second decode; only when that image is too small to find faces in does it make its own
copy of the source by shrink-on-load (never a full-size decode). Faces a caller already
knows (the feature store) skip the detector entirely.

Detections are kept in the stored frame of the source (before EXIF rotation). Each crop
and turn the pipeline makes is recorded, so ``current()`` gives them in the frame of the
image as it is right now.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from imgproxy_py.analysis.detector import Detection, Detector, DetectorSkipped
from imgproxy_py.analysis.focus import Box, View, pixel_boxes, turned, within
from imgproxy_py.processing import vips


@dataclass(frozen=True, slots=True)
class FaceAnalyser:
    """The face detector as the pipeline uses it: one per process, registered in the processor's
    ``Analysers`` (processing/analysers.py). ``detector`` None: not installed or off."""

    detector: Detector | None = None
    size: int = 512  # IMGPROXY_FACE_DETECTION_SIZE: the side the detector looks at
    keep_whole: bool = True  # IMGPROXY_KEEP_FACES_WHOLE


NO_FACE_ANALYSER = FaceAnalyser()
_MIN_SIDE = 320  # a smaller image in the pipeline is too small to find faces in: analyse the source

_Op = tuple[str, Any]


@dataclass(slots=True)
class FaceTrack:
    analyser: FaceAnalyser
    source: bytes | None  # bytes the pipeline decodes (an ICO's inner PNG); None: analyse the current image
    known: tuple[Detection, ...] | None = None  # stored frame, from the feature store: skips the detector
    raw: list[Detection] | None = None
    ran_detector: bool = False  # this request ran the model
    complete: bool = False  # ``raw`` covers the whole source (the feature store may keep it)
    detect_seconds: float = 0.0
    _ops: list[_Op] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return self.analyser.detector is not None or self.known is not None

    @property
    def keep_whole(self) -> bool:
        return self.analyser.keep_whole

    def note_crop(self, left: int, top: int, width: int, height: int, outer_w: int, outer_h: int) -> None:
        if (left, top, width, height) != (0, 0, outer_w, outer_h):
            self._ops.append(("crop", View().crop(left, top, width, height, outer_w, outer_h)))

    def note_turn(self, angle: int, flip_h: bool = False, flip_v: bool = False) -> None:
        if angle % 360 or flip_h or flip_v:
            self._ops.append(("turn", (angle, flip_h, flip_v)))

    def ensure(self, current_img: Any) -> list[Detection]:
        """The faces in the stored frame, running the detector the first time.

        ``current_img`` must be in memory already (the crop reads it again afterwards).
        """
        if self.raw is not None:
            return self.raw
        if self.known is not None:
            self.raw, self.complete = list(self.known), True
            return self.raw
        detector = self.analyser.detector
        if detector is None:
            self.raw = []
            return self.raw
        started = time.perf_counter()
        size = self.analyser.size
        usable = current_img is not None and max(current_img.width, current_img.height) >= min(size, _MIN_SIDE)
        try:
            if usable or self.source is None:
                width, height, rgb = vips.rgb_bytes(current_img, size)
                found = self._to_stored(detector.detect(width, height, rgb))
                self.complete = not any(kind == "crop" for kind, _ in self._ops)
            else:
                width, height, rgb = vips.rgb_bytes(vips.analysis_copy(self.source, size, upright=False))
                found = detector.detect(width, height, rgb)
                self.complete = True
        except DetectorSkipped:  # breaker open or the model failed: attention crop, nothing to store
            self.raw, self.complete = [], False
            return self.raw
        self.raw = found
        self.ran_detector = True
        self.detect_seconds = time.perf_counter() - started
        return self.raw

    def _to_stored(self, found: list[Detection]) -> list[Detection]:
        """Detections in the current frame back in the stored frame (the recorded ops undone)."""
        for kind, arg in reversed(self._ops):
            if kind == "crop":
                view: View = arg
                found = [
                    Detection(
                        view.x + d.x * view.w, view.y + d.y * view.h, d.w * view.w, d.h * view.h, d.score, d.label
                    )
                    for d in found
                ]
            else:
                angle, flip_h, flip_v = arg
                found = turned(turned(found, 0, flip_h, flip_v), -angle)
        return found

    def current(self, current_img: Any) -> list[Detection]:
        """The faces in the frame of the image as it is now."""
        faces = self.ensure(current_img)
        for kind, arg in self._ops:
            if not faces:
                break
            faces = within(faces, arg) if kind == "crop" else turned(faces, *arg)
        return faces

    def boxes(
        self, img: Any, labels: Sequence[str] = (), class_weights: Mapping[str, float] | None = None
    ) -> list[Box]:
        """Pixel boxes in ``img`` (the current image), heaviest first (``g:objw`` weights applied)."""
        return pixel_boxes(self.current(img), img.width, img.height, labels, class_weights)


def detect_in_source(data: bytes, analyser: FaceAnalyser) -> tuple[Detection, ...]:
    """The faces of a source image in its stored frame (``/info``); none when it cannot be read."""
    try:
        track = FaceTrack(analyser, data)
        return tuple(track.ensure(None))
    except vips.Error:
        return ()
