"""Extend the canvas to the target size (``ex``) or aspect ratio (``exar``) with transparency."""

from __future__ import annotations

from typing import Any

from imgproxy_py.analysis.focus import extend_position
from imgproxy_py.options.model import Gravity, GravityType
from imgproxy_py.processing import vips
from imgproxy_py.processing.context import PipelineContext
from imgproxy_py.processing.faces import FaceTrack
from imgproxy_py.processing.geometry import calc_position


def _placement(gravity: Gravity) -> Gravity:
    """Object gravity without faces places like the centre (as ``g:obj`` crops do)."""
    return Gravity() if gravity.type is GravityType.OBJECT else gravity


def with_opaque_alpha(img: Any) -> Any:
    """Add an opaque alpha band at the image's depth (65535 for 16-bit: 255 would be nearly transparent)."""
    if img.hasalpha():
        return img
    return img.bandjoin_const([65535 if img.format == "ushort" else 255])


def embed_into(
    img: Any, width: int, height: int, gravity: Gravity, off_scale: float, faces: FaceTrack | None = None
) -> Any:
    if width <= img.width and height <= img.height:
        return img
    position = None
    if gravity.type is GravityType.OBJECT and faces is not None and faces.available:
        # ``ex:1:obj``: a focus point taken from the faces (centre when there is none).
        img = vips.pixels(img)  # read twice (the detector, the embed): decode once
        boxes = faces.boxes(img, gravity.classes, gravity.class_weights())
        position = extend_position(width, height, img.width, img.height, boxes)
    if position is None:
        position = calc_position(width, height, img.width, img.height, _placement(gravity), off_scale)
    left, top = position
    img = with_opaque_alpha(img)
    return img.embed(left, top, width, height, extend="black")


def extend(ctx: PipelineContext) -> None:
    if not ctx.po.extend.enabled:
        return
    width = ctx.sizes.target_width or ctx.img.width
    height = ctx.sizes.target_height or ctx.img.height
    ctx.img = embed_into(ctx.img, width, height, ctx.po.extend.gravity, ctx.dpr_scale, ctx.faces)


def extend_aspect_ratio(ctx: PipelineContext) -> None:
    if not ctx.po.extend_aspect_ratio.enabled or not ctx.sizes.ear_width or not ctx.sizes.ear_height:
        return
    ctx.img = embed_into(
        ctx.img, ctx.sizes.ear_width, ctx.sizes.ear_height, ctx.po.extend_aspect_ratio.gravity, ctx.dpr_scale, ctx.faces
    )
