"""Pure geometry on detections: where to crop so faces survive, and how much of each one did.

Detections are fractions of the picture they were found in. The pipeline crops and turns
the image before the final crop, so ``within`` and ``turned`` follow them into the
current image's frame; ``pixel_boxes`` then gives pixel boxes weighted by size and score.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from imgproxy_py.analysis.detector import Detection


@dataclass(frozen=True, slots=True)
class Box:
    """A pixel box in the current image, with its weight (area × score)."""

    x0: float
    y0: float
    x1: float
    y1: float
    weight: float = 1.0

    @property
    def w(self) -> float:
        return self.x1 - self.x0

    @property
    def h(self) -> float:
        return self.y1 - self.y0


@dataclass(frozen=True, slots=True)
class View:
    """The part of the analysed picture the current image shows, in fractions of that picture."""

    x: float = 0.0
    y: float = 0.0
    w: float = 1.0
    h: float = 1.0

    def crop(self, left: int, top: int, width: int, height: int, outer_w: int, outer_h: int) -> View:
        """This view after cropping a (left, top, width, height) pixel area of an ``outer_w``×``outer_h`` image."""
        return View(
            self.x + self.w * left / outer_w,
            self.y + self.h * top / outer_h,
            self.w * width / outer_w,
            self.h * height / outer_h,
        )


def within(detections: Iterable[Detection], view: View) -> list[Detection]:
    """Detections relative to ``view``, clipped to it; those wholly outside are dropped."""
    out = []
    for d in detections:
        x0 = max(0.0, (d.x - view.x) / view.w)
        y0 = max(0.0, (d.y - view.y) / view.h)
        x1 = min(1.0, (d.x + d.w - view.x) / view.w)
        y1 = min(1.0, (d.y + d.h - view.y) / view.h)
        if x1 > x0 and y1 > y0:
            out.append(Detection(x0, y0, x1 - x0, y1 - y0, d.score, d.label))
    return out


def turned(detections: Iterable[Detection], angle: int, flip_h: bool = False, flip_v: bool = False) -> list[Detection]:
    """Detections after the image turns clockwise by ``angle`` (a multiple of 90), then mirrors."""
    out = []
    for d in detections:
        x0, y0, x1, y1 = d.x, d.y, d.x + d.w, d.y + d.h
        a = angle % 360
        if a == 90:
            x0, y0, x1, y1 = 1 - y1, x0, 1 - y0, x1
        elif a == 180:
            x0, y0, x1, y1 = 1 - x1, 1 - y1, 1 - x0, 1 - y0
        elif a == 270:
            x0, y0, x1, y1 = y0, 1 - x1, y1, 1 - x0
        if flip_h:
            x0, x1 = 1 - x1, 1 - x0
        if flip_v:
            y0, y1 = 1 - y1, 1 - y0
        out.append(Detection(x0, y0, x1 - x0, y1 - y0, d.score, d.label))
    return out


def pixel_boxes(
    detections: Iterable[Detection],
    width: int,
    height: int,
    labels: Sequence[str] = (),
    class_weights: Mapping[str, float] | None = None,
) -> list[Box]:
    """Pixel boxes in a ``width``×``height`` image, heaviest first; ``labels`` filters (empty: all).

    ``class_weights`` (``g:objw``) multiplies each box's weight by its class's (``"all"`` for
    the classes not named, else 1); a class weighing 0 is left out.
    """
    boxes = []
    for d in detections:
        if labels and d.label not in labels:
            continue
        factor = 1.0
        if class_weights is not None:
            factor = class_weights.get(d.label, class_weights.get("all", 1.0))
        if factor > 0:
            boxes.append(
                Box(d.x * width, d.y * height, (d.x + d.w) * width, (d.y + d.h) * height, d.w * d.h * d.score * factor)
            )
    boxes.sort(key=lambda b: b.weight, reverse=True)
    return boxes


def padded(boxes: Iterable[Box], width: int, height: int, share: float = 0.1) -> list[Box]:
    """Boxes grown by ``share`` of their size on every side (within the image).

    A detector's box is tight and a little off from one run (scale) to the next; the margin
    keeps the chin, hairline and ears of a face that is "kept whole".
    """
    return [
        Box(
            max(0.0, b.x0 - b.w * share),
            max(0.0, b.y0 - b.h * share),
            min(float(width), b.x1 + b.w * share),
            min(float(height), b.y1 + b.h * share),
            b.weight,
        )
        for b in boxes
    ]


def _clamp(value: float, lo: float, hi: float) -> int:
    return int(round(max(lo, min(value, hi))))


def focus_window(img_w: int, img_h: int, crop_w: int, crop_h: int, boxes: Sequence[Box]) -> tuple[int, int] | None:
    """Top-left of a ``crop_w``×``crop_h`` window that keeps as many faces whole as fit.

    Faces are taken heaviest first (``boxes`` is sorted that way); each joins the group
    only if the group's bounding box still fits the window, so when they cannot all fit
    the largest ones win. The window is centred on the group. None when there is no box.
    """
    centre = group_centre(boxes, crop_w, crop_h)
    if centre is None:
        return None
    left = _clamp(centre[0] - crop_w / 2, 0, img_w - crop_w)
    top = _clamp(centre[1] - crop_h / 2, 0, img_h - crop_h)
    return left, top


def group_centre(boxes: Sequence[Box], max_w: float, max_h: float) -> tuple[float, float] | None:
    """Centre of the heaviest faces whose bounding box fits ``max_w``×``max_h`` (None: no box)."""
    if not boxes:
        return None
    first = boxes[0]
    gx0, gy0, gx1, gy1 = first.x0, first.y0, first.x1, first.y1
    for box in boxes[1:]:
        nx0, ny0 = min(gx0, box.x0), min(gy0, box.y0)
        nx1, ny1 = max(gx1, box.x1), max(gy1, box.y1)
        if nx1 - nx0 <= max_w and ny1 - ny0 <= max_h:
            gx0, gy0, gx1, gy1 = nx0, ny0, nx1, ny1
    return (gx0 + gx1) / 2, (gy0 + gy1) / 2


def extend_position(
    canvas_w: int, canvas_h: int, img_w: int, img_h: int, boxes: Sequence[Box]
) -> tuple[int, int] | None:
    """Top-left of an image on a larger canvas that puts its faces as near the canvas centre as it can.

    The focus-point placement of ``ex:1:fp:…`` with the point taken from the faces; the image
    stays wholly on the canvas. None when there is no face.
    """
    centre = group_centre(boxes, img_w, img_h)
    if centre is None:
        return None
    left = _clamp(canvas_w / 2 - centre[0], 0, canvas_w - img_w)
    top = _clamp(canvas_h / 2 - centre[1], 0, canvas_h - img_h)
    return left, top


def _axis(start: int, size: int, total: int, lo: float, hi: float) -> int | None:
    """A new start on one axis that holds [lo, hi) whole, or None when it already does or cannot."""
    if lo >= start and hi <= start + size:
        return None
    if hi - lo > size:
        return None
    new = int(lo) if lo < start else int(-(-hi // 1)) - size  # ceil(hi) - size
    return max(0, min(new, total - size))


def _whole(box: Box, left: int, top: int, w: int, h: int) -> bool:
    return box.x0 >= left - 0.5 and box.y0 >= top - 0.5 and box.x1 <= left + w + 0.5 and box.y1 <= top + h + 0.5


def _cut(box: Box, left: int, top: int, w: int, h: int) -> bool:
    """Partly inside the window (visible, but not whole)."""
    overlaps = box.x0 < left + w and box.x1 > left and box.y0 < top + h and box.y1 > top
    return overlaps and not _whole(box, left, top, w, h)


def keep_whole(
    left: int, top: int, img_w: int, img_h: int, crop_w: int, crop_h: int, boxes: Sequence[Box]
) -> tuple[int, int]:
    """Move a window as little as needed so no face it cuts is cut, where the window can hold the face.

    Heaviest faces first; a move is taken only if it leaves every face that was whole still whole.
    """
    for box in boxes:
        if not _cut(box, left, top, crop_w, crop_h):
            continue
        whole = [b for b in boxes if _whole(b, left, top, crop_w, crop_h)]
        new_left = _axis(left, crop_w, img_w, box.x0, box.x1)
        new_top = _axis(top, crop_h, img_h, box.y0, box.y1)
        cand_left = left if new_left is None else new_left
        cand_top = top if new_top is None else new_top
        if (cand_left, cand_top) == (left, top):
            continue
        if all(_whole(b, cand_left, cand_top, crop_w, crop_h) for b in whole):
            left, top = cand_left, cand_top
    return left, top


def kept_share(box: Box, left: float, top: float, width: float, height: float) -> float:
    """The share (0..1) of ``box``'s area inside a window: the evaluation's and the tests' measure."""
    ix = max(0.0, min(box.x1, left + width) - max(box.x0, left))
    iy = max(0.0, min(box.y1, top + height) - max(box.y0, top))
    area = box.w * box.h
    return (ix * iy) / area if area > 0 else 0.0
