"""``blur_detections`` and ``draw_detections`` on the result-sized, upright image (imgproxy Pro's options).

Blurring hides faces (privacy); drawing outlines them, to see what the detector found.
"""

from __future__ import annotations

from imgproxy_py.processing import vips
from imgproxy_py.processing.context import PipelineContext

_OUTLINE = [255, 0, 255]  # magenta: rare in photos, visible on light and dark


def overlay_detections(ctx: PipelineContext) -> None:
    po = ctx.po
    blur, draw = po.blur_detections, po.draw_detections
    if (not blur.enabled and not draw.enabled) or ctx.faces is None or not ctx.faces.available:
        return
    img = vips.pixels(ctx.img)  # read by the detector and again by the overlay
    if blur.enabled:
        boxes = ctx.faces.boxes(img, blur.classes)
        if boxes:
            img = vips.pixels(img)
            for box in boxes:
                left, top = max(0, int(box.x0)), max(0, int(box.y0))
                right, bottom = min(img.width, int(box.x1 + 0.999)), min(img.height, int(box.y1 + 0.999))
                if right - left < 1 or bottom - top < 1:
                    continue
                region = img.extract_area(left, top, right - left, bottom - top)
                blurred = region.gaussblur(blur.sigma).cast(img.format)
                img = img.insert(blurred, left, top)
    if draw.enabled:
        boxes = ctx.faces.boxes(img, draw.classes)
        if boxes:
            if img.bands < 3:  # a grey image: outline in colour all the same (a debugging view)
                img = img.colourspace("srgb")
            img = vips.pixels(img)
            ink = _OUTLINE + [255] * (img.bands - 3)
            thickness = max(1, min(img.width, img.height) // 200)
            for box in boxes:
                for t in range(thickness):
                    left, top = int(box.x0) - t, int(box.y0) - t
                    width, height = int(box.x1 - box.x0) + 2 * t, int(box.y1 - box.y0) + 2 * t
                    img = img.draw_rect(ink, left, top, width, height, fill=False)
    ctx.img = img
