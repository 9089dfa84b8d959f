"""Strip metadata before saving (``sm``), keeping the copyright notice on request (``kcr``).

Only what the saver needs survives: the ICC profile (colorspace_to_result already decided
whether there is one), palette hints and animation timing. With keep_copyright the EXIF
Copyright and Artist tags stay; every other EXIF field is removed, and libvips rewrites the
EXIF block from the fields that are left (so GPS, camera and the like are gone). IPTC and
XMP are dropped entirely: unlike imgproxy, we do not filter their copyright parts.
"""

from __future__ import annotations

from typing import Any

from imgproxy_py.processing.context import PipelineContext

_ALWAYS_KEPT = frozenset({"icc-profile-data", "bits-per-sample", "palette", "palette-bit-depth", "background"})
_COPYRIGHT = frozenset({"exif-ifd0-Copyright", "exif-ifd0-Artist"})
_ANIMATION = frozenset({"page-height", "delay", "loop", "n-pages"})
_DPI_72 = 72 / 25.4  # libvips resolution is in pixels per millimetre


def copyright_fields(img: Any) -> frozenset[str]:
    return frozenset(name for name in _COPYRIGHT if img.get_typeof(name) != 0)


def _is_animation(img: Any) -> bool:
    if img.get_typeof("page-height") == 0:
        return False
    page_height = int(img.get("page-height"))
    return bool(0 < page_height < img.height and img.height % page_height == 0)


def strip_metadata(ctx: PipelineContext) -> None:
    po = ctx.po
    if not po.strip_metadata:
        return
    img = ctx.img.copy(xres=_DPI_72, yres=_DPI_72)
    keep = set(_ALWAYS_KEPT)
    if po.keep_copyright:
        kept = copyright_fields(img)
        if kept:  # no notice to keep: no EXIF block at all
            keep |= kept | {"exif-data"}
    if ctx.animated or _is_animation(img):
        keep |= _ANIMATION
    for name in img.get_fields():
        if name in keep or name.startswith("imgproxy-") or name == "vips-loader":
            continue
        if name not in _HEADER:
            img.remove(name)
    ctx.img = ctx.owned = img  # a copy nobody else holds: the saver may set its kill flag (vips.owning)


# Image header properties: reported by get_fields() but not metadata, so never removed.
_HEADER = frozenset(
    {"width", "height", "bands", "format", "coding", "interpretation", "xoffset", "yoffset", "xres", "yres", "filename"}
)
