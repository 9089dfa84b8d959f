"""The watermark image: decoded once at start-up, then sized and placed for each result.

It comes from IMGPROXY_WATERMARK_DATA, _PATH or _URL (see settings; a URL is fetched by the
server through sources/, like every download). A watermark that cannot be fetched or decoded
stops the server at start-up with a message naming the variable, instead of failing every
request that asks for it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from imgproxy_py.errors import SettingsError
from imgproxy_py.imagetype import ImageFormat, sniff
from imgproxy_py.options.model import Gravity, GravityType, ProcessingOptions, Watermark
from imgproxy_py.processing import ico, vips
from imgproxy_py.processing.geometry import calc_position, calc_scale, round_even, scale_even, scale_int
from imgproxy_py.settings import WatermarkSettings
from imgproxy_py.settings.security import DEFAULT_MAX_SRC_RESOLUTION

_MAX_PIXELS = DEFAULT_MAX_SRC_RESOLUTION  # a watermark is a small image: the default source limit
_DECODABLE = frozenset({ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.WEBP, ImageFormat.AVIF, ImageFormat.GIF})
_DECODABLE |= {ImageFormat.TIFF, ImageFormat.HEIC, ImageFormat.SVG, ImageFormat.ICO}


@dataclass(frozen=True, slots=True)
class WatermarkImage:
    """Upright sRGB pixels with alpha, in memory; immutable, so shared by every worker thread."""

    image: Any = field(repr=False, compare=False)
    digest: str  # identifies the picture in the settings fingerprint (and so in cache keys)
    opacity: float = 1.0  # IMGPROXY_WATERMARK_OPACITY, multiplied with the URL's


def load_watermark(settings: WatermarkSettings, data: bytes | None = None) -> WatermarkImage | None:
    """Decode the configured watermark; SettingsError names the variable.

    ``data``: the bytes of IMGPROXY_WATERMARK_URL, fetched by the composition root through the
    source layer and its address policy (server/watermark_source.py); processing never downloads.
    """
    if not settings.configured:
        return None
    name = settings.origin or "IMGPROXY_WATERMARK_URL"
    data = settings.data if settings.data is not None else data
    if data is None:
        raise SettingsError(f"{name}: the watermark was not fetched (the server fetches it at start-up)")
    try:
        image = decode(data)
    except (vips.Error, ValueError) as exc:
        raise SettingsError(f"{name}: the watermark is not a usable image ({str(exc).splitlines()[0]})") from None
    digest = hashlib.blake2b(data, digest_size=8).hexdigest()
    return WatermarkImage(image=image, digest=digest, opacity=settings.opacity)


def decode(data: bytes) -> Any:
    fmt = sniff(data)
    if fmt is None or fmt not in _DECODABLE:
        raise ValueError("unknown or unsupported image format")
    if fmt is ImageFormat.ICO:
        data = ico.largest_image(data)
    # Decoded in full here, failing on truncation: a cut-off file would otherwise load as a
    # flat grey watermark (libvips fills what is missing) and start-up would accept it.
    img = vips.open_source(data, **({} if fmt is ImageFormat.SVG else {"fail_on": "truncated"}))
    if img.width * img.height > _MAX_PIXELS:
        raise ValueError(f"{img.width}x{img.height} is too large")
    img = img.autorot()
    if img.interpretation != "srgb":
        img = img.colourspace("srgb")
    if img.format != "uchar":
        img = img.cast("uchar")
    if not img.hasalpha():
        img = img.bandjoin_const([255])
    # Nothing from the watermark's own metadata may reach the result.
    img = vips.pixels(img)
    stripped = img.copy()
    for meta in img.get_fields():
        if meta.startswith(("exif-", "xmp-", "iptc-", "icc-")) or meta in ("orientation", "page-height", "n-pages"):
            stripped.remove(meta)
    return stripped


def prepare(wm: Any, options: Watermark, width: int, height: int, offset_scale: float) -> Any:
    """The watermark for a ``width``×``height`` frame: scaled, and padded and tiled for ``re``."""
    if options.scale > 0:
        box = ProcessingOptions(
            width=max(scale_even(width, options.scale), 1),
            height=max(scale_even(height, options.scale), 1),
            enlarge=True,
        )
        scales = calc_scale(wm.width, wm.height, box, is_vector=False)
        target_w = max(1, scale_int(wm.width, scales.wscale))
        target_h = max(1, scale_int(wm.height, scales.hscale))
        if (target_w, target_h) != (wm.width, wm.height):
            wm = wm.premultiply().resize(scales.wscale, vscale=scales.hscale).unpremultiply().cast("uchar")
    if options.position is GravityType.REPLICATE:
        pad_x = max(0, _offset(options.x, width, offset_scale))  # a negative gap cannot be tiled
        pad_y = max(0, _offset(options.y, height, offset_scale))
        if pad_x or pad_y:
            left, top = pad_x // 2, pad_y // 2
            wm = wm.embed(left, top, wm.width + pad_x, wm.height + pad_y, extend="black")
        wm = replicate(wm, width, height, centered=True)
    return wm


def _offset(value: float, size: int, offset_scale: float) -> int:
    if abs(value) >= 1:
        return round_even(value * offset_scale)
    return scale_even(size, value)


def replicate(tile: Any, width: int, height: int, *, centered: bool) -> Any:
    """Tile to ``width``×``height``; centred tiling puts a whole tile in the middle (odd tile counts)."""
    across = math.ceil(width / tile.width)
    down = math.ceil(height / tile.height)
    if centered:
        across += 1 - across % 2
        down += 1 - down % 2
    tiled = tile.replicate(across, down)
    left = (tiled.width - width) // 2 if centered else 0
    top = (tiled.height - height) // 2 if centered else 0
    return tiled.extract_area(left, top, width, height)


def apply(img: Any, wm_image: WatermarkImage, options: Watermark, offset_scale: float, frames: int = 1) -> Any:
    """Composite the watermark over every frame of ``img`` (frames stacked vertically, as libvips loads them)."""
    width, height = img.width, img.height
    frame_height = height // max(frames, 1)
    wm = prepare(wm_image.image, options, width, frame_height, offset_scale)
    opacity = options.opacity * wm_image.opacity
    if opacity < 1:
        wm = wm[: wm.bands - 1].bandjoin(wm[wm.bands - 1] * opacity).cast("uchar")
    replicated = options.position is GravityType.REPLICATE
    if replicated and frames > 1:
        wm = replicate(wm, width, height, centered=False)
        return _composite(img, wm, 0, 0)
    left = top = 0
    if not replicated:
        gravity = Gravity(options.position, options.x, options.y)
        left, top = calc_position(width, frame_height, wm.width, wm.height, gravity, offset_scale, overflow=True)
    if left >= width or top >= frame_height or -left >= wm.width or -top >= wm.height:
        return img  # entirely outside the image
    if frames > 1:  # keep a partly outside watermark from spilling into the next frame
        crop_top = max(0, -top)
        crop_height = min(wm.height - crop_top, frame_height - max(top, 0))
        if crop_top or crop_height < wm.height:
            wm = wm.extract_area(0, crop_top, wm.width, crop_height)
        top = max(top, 0)
    for frame in range(max(frames, 1)):
        img = _composite(img, wm, left, top + frame * frame_height)
    return img


def _composite(img: Any, wm: Any, left: int, top: int) -> Any:
    """``wm`` (8-bit sRGBA) over ``img`` in the image's own depth; a grey image stays grey (imgproxy).

    A 16-bit image (preserve_hdr) is composited in rgb16, where libvips scales the 8-bit watermark
    up: compositing in sRGB would squeeze the image to 8 bits and the cast back leave it near black.
    """
    had_alpha = img.hasalpha()
    band_format = img.format
    deep = band_format == "ushort"
    space = "rgb16" if deep else "srgb"
    grey = img.bands < 3
    if grey:
        img = img.colourspace(space)
    out = img.composite2(wm, "over", x=left, y=top, compositing_space=space)
    if grey:
        out = out.colourspace("grey16" if deep else "b-w")
    out = out.cast(band_format)
    if not had_alpha and out.hasalpha():
        out = out[: out.bands - 1]
    return out
