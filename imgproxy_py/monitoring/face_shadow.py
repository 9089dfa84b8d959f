"""A shadow version of the face detector on a sampled share of cache misses.

After a miss's response is sent, the shadow detector (another version: the same library at
another input size and/or threshold) looks at the source again, and how far it agrees with
what the serving version found is recorded: ``model_shadow_agreement{model="faces",
serving, shadow, measure}`` with ``measure`` one of ``iou`` (mean best-match face-box IoU),
``crop_overlap`` (IoU of the square crop windows the two sets of faces would choose) and
``count_match`` (1 when both found as many faces). Nothing a client receives changes: the
runner takes one thread at most, drops runs beyond a small queue, and counts its failures.
"""

from __future__ import annotations

from dataclasses import dataclass

from imgproxy_py.analysis.detector import Detection, Detector
from imgproxy_py.analysis.focus import focus_window, pixel_boxes
from imgproxy_py.monitoring.metrics import ModelMetrics
from imgproxy_py.monitoring.shadow import Box, ShadowRunner, box_iou, boxes_agreement
from imgproxy_py.processing import vips

MODEL_NAME = "faces"


@dataclass(frozen=True, slots=True)
class FaceRun:
    """Faces in the stored frame of a source, and that frame's size (0 when not known)."""

    faces: tuple[Detection, ...]
    width: int = 0
    height: int = 0


def _boxes(faces: tuple[Detection, ...]) -> list[Box]:
    return [(d.x, d.y, d.w, d.h) for d in faces]


def _square_crop(run: FaceRun, width: int, height: int) -> Box:
    """The square window a face-aware crop of this frame would take (centre when no face)."""
    side = min(width, height)
    window = focus_window(width, height, side, side, pixel_boxes(run.faces, width, height))
    left, top = window if window is not None else ((width - side) / 2, (height - side) / 2)
    return (float(left), float(top), float(side), float(side))


def agreement(serving: FaceRun, shadow: FaceRun) -> dict[str, float]:
    """The agreement measures of two detections of one source (frame size from either run)."""
    width, height = (shadow.width, shadow.height) if shadow.width else (serving.width, serving.height)
    out = {
        "iou": boxes_agreement(_boxes(serving.faces), _boxes(shadow.faces)),
        "count_match": 1.0 if len(serving.faces) == len(shadow.faces) else 0.0,
    }
    if width > 0 and height > 0:
        out["crop_overlap"] = box_iou(_square_crop(serving, width, height), _square_crop(shadow, width, height))
    return out


class FaceShadow:
    """Runs ``detector`` at ``size`` px on sampled sources after the response (see module doc)."""

    def __init__(
        self, detector: Detector, serving_version: str, size: int, sample: float, metrics: ModelMetrics | None
    ) -> None:
        self.detector = detector
        self.size = size
        self.version = f"{detector.version}/{size}px"
        self.runner: ShadowRunner[FaceRun] = ShadowRunner(
            MODEL_NAME, serving_version, self.version, sample, agreement, metrics
        )

    def submit(self, key: str, source: bytes, serving: tuple[Detection, ...]) -> None:
        """Call once the response is sent; runs for a stable ``sample`` share of keys only."""
        self.runner.after_response(key, FaceRun(serving), lambda: self.detect(source))

    def detect(self, source: bytes) -> FaceRun:
        width, height, rgb = vips.rgb_bytes(vips.analysis_copy(source, self.size, upright=False))
        return FaceRun(tuple(self.detector.detect(width, height, rgb)), width, height)
