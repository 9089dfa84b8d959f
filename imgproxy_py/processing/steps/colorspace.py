"""Colour handling: bring pixels into sRGB (or 8-bit grey) for processing and output.

CMYK, LAB and other device spaces are converted through their embedded profile before
any geometry. For RGB images with a non-sRGB profile the conversion is deferred to the
end (colorspace_to_result), where the image is small, as imgproxy does.
"""

from __future__ import annotations

import contextlib
from typing import Any

from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.processing import vips
from imgproxy_py.processing.context import PipelineContext

_KEEP = {"srgb", "b-w"}
_GREY = {"b-w", "grey16"}
# Formats that store more than 8 bits per channel (AVIF as 12-bit, HEIC as 10-bit, JPEG XL as
# 16-bit): where preserve_hdr can keep depth.
HDR_FORMATS = frozenset({ImageFormat.PNG, ImageFormat.TIFF, ImageFormat.AVIF, ImageFormat.HEIC, ImageFormat.JXL})


_FLOAT = {"float", "double", "complex", "dpcomplex"}
_DEEP_SPACES = {"rgb16", "grey16", "scrgb"}
_DEVICE_SPACES = {"cmyk", "lab", "labs", "labq"}


def is_high_bit_depth(img: Any) -> bool:
    """16-bit integers or floating point samples (a 32-bit float TIFF counts, as in imgproxy)."""
    if img.interpretation in _DEVICE_SPACES:
        return False  # converted through their profile to 8-bit sRGB first
    return img.interpretation in _DEEP_SPACES or img.format in _FLOAT | {"ushort"}


def colorspace_to_processing(ctx: PipelineContext) -> None:
    img = ctx.img
    interpretation = img.interpretation
    if interpretation in _KEEP and img.format == "uchar":
        return
    if img.format in _FLOAT and img.bands < 3:
        # Float grey (TIFF SAMPLEFORMAT_IEEEFP) holds 0..1; libvips calls it b-w without a range,
        # and a plain cast would turn it black. Scaled to 16 bits it is ordinary grey16.
        img = (img * 65535).cast("ushort").copy(interpretation="grey16")
        interpretation = "grey16"
    if ctx.po.preserve_hdr and ctx.target_format in HDR_FORMATS and is_high_bit_depth(img):
        if interpretation not in ("rgb16", "grey16") or img.format != "ushort":
            img = img.colourspace("grey16" if img.bands < 3 else "rgb16").cast("ushort")
        ctx.hdr = True  # keep 16 bits per channel through to the saver
        ctx.img = img
        return
    if interpretation == "cmyk" or interpretation == "lab" or interpretation == "labs":
        img = _import_profile(img)
        ctx.icc_imported = True
    elif interpretation in _GREY:
        img = img.colourspace("b-w")
    else:
        img = img.colourspace("srgb")
    if img.format != "uchar" and not ctx.hdr:
        img = img.cast("uchar")
    ctx.img = img


def _import_profile(img: Any) -> Any:
    """Device space → sRGB through the embedded profile, else libvips' default for the space.

    libvips' default (relative colorimetric) intent, as imgproxy's icc_import/icc_transform.
    """
    try:
        return img.icc_transform("srgb", embedded=True)
    except vips.Error:
        return img.colourspace("srgb")


def colorspace_to_result(ctx: PipelineContext) -> None:
    img = ctx.img
    has_icc = vips.has_field(img, "icc-profile-data")
    if ctx.po.strip_color_profile and has_icc:
        if not ctx.icc_imported and img.interpretation in ("srgb", "rgb16"):
            # A broken profile: keep the pixels as they are, drop the profile.
            with contextlib.suppress(vips.Error):
                img = img.icc_transform("srgb", embedded=True, depth=16 if ctx.hdr else 8)
        img = img.copy()
        img.remove("icc-profile-data")
    elif ctx.icc_imported and has_icc:
        # The pixels are sRGB now; the embedded device profile no longer describes them.
        img = img.copy()
        img.remove("icc-profile-data")
    if img.format != "uchar" and not ctx.hdr:
        img = img.cast("uchar")
    ctx.img = img
