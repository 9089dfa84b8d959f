"""Crops: the ``c:`` crop before scaling, and the crop to the result size after it.

With a face detector (or faces from the feature store): ``g:sm`` keeps the faces (heaviest
first, as many as fit), else libvips' attention strategy; ``g:obj`` keeps the faces, else
the centre; and whatever the gravity, a window that would cut a face it could hold whole
moves just enough to hold it (IMGPROXY_KEEP_FACES_WHOLE).
"""

from __future__ import annotations

from typing import Any

from imgproxy_py.analysis.focus import Box, focus_window, keep_whole, padded
from imgproxy_py.options.model import Gravity, GravityType
from imgproxy_py.processing import vips
from imgproxy_py.processing.context import PipelineContext
from imgproxy_py.processing.faces import FaceTrack
from imgproxy_py.processing.geometry import calc_position, min_non_zero, rotate_gravity

_FACE_GRAVITIES = (GravityType.SMART, GravityType.OBJECT)


def crop_image(
    img: Any, width: int, height: int, gravity: Gravity, off_scale: float, faces: FaceTrack | None = None
) -> Any:
    if width == 0 and height == 0:
        return img
    img_width, img_height = img.width, img.height  # each read is a libvips property lookup
    width = min_non_zero(width, img_width)
    height = min_non_zero(height, img_height)
    if width >= img_width and height >= img_height:
        return img
    boxes: list[Box] = []
    wants_faces = gravity.type in _FACE_GRAVITIES or (faces is not None and faces.keep_whole)
    if faces is not None and faces.available and wants_faces:
        img = vips.pixels(img)  # read twice (the detector, the crop): decode once
        boxes = padded(faces.boxes(img, gravity.classes, gravity.class_weights()), img_width, img_height)
    if gravity.type in _FACE_GRAVITIES:
        position = focus_window(img_width, img_height, width, height, boxes)
        if position is None and gravity.type is GravityType.SMART:
            # No face: libvips' attention strategy. Nothing to follow any more, so no note_crop.
            return vips.evaluate(
                vips.pixels(img), lambda image: image.smartcrop(width, height, interesting="attention")
            )
        if position is None:
            position = calc_position(img_width, img_height, width, height, Gravity(), off_scale)
        left, top = position
    else:
        left, top = calc_position(img_width, img_height, width, height, gravity, off_scale)
        if boxes:
            left, top = keep_whole(left, top, img_width, img_height, width, height, boxes)
    if faces is not None:
        faces.note_crop(left, top, width, height, img_width, img_height)
    return img.extract_area(left, top, width, height)


def crop(ctx: PipelineContext) -> None:
    """The ``c:`` option, on the still unrotated image, so sizes and gravity are turned to match."""
    width, height = ctx.crop_width, ctx.crop_height
    if width == 0 and height == 0:
        return
    if ctx.swaps_axes:
        width, height = height, width
    # Undo the later turns in reverse order: the user's rotate and flips, then the EXIF orientation.
    po = ctx.po
    gravity = rotate_gravity(ctx.crop_gravity, po.rotate, po.flip_horizontal, po.flip_vertical)
    gravity = rotate_gravity(gravity, ctx.angle, ctx.flip)
    ctx.img = crop_image(ctx.img, width, height, gravity, 1.0, ctx.faces)


def crop_to_result(ctx: PipelineContext) -> None:
    sizes = ctx.sizes
    ctx.img = crop_image(
        ctx.img, sizes.result_crop_width, sizes.result_crop_height, ctx.po.gravity, ctx.dpr_scale, ctx.faces
    )
