"""What ``/info`` reports about a source image. Synchronous; runs on a worker thread.

The header gives the facts (format, size, orientation, pages, bands, metadata) and is
checked against the resolution limit before any pixel is decoded. The colour summaries
are computed from one small thumbnail (libvips shrinks on load, turns it upright and
brings it to sRGB), so their cost barely depends on the source's size:

- ``average_color``: the mean sRGB colour, weighted by alpha (transparent pixels count
  for nothing); ``null`` if nothing is visible.
- ``dominant_colors``: pixels of a ≤64 px version, each counting by its alpha, bucketed
  4 bits per channel; buckets merged greedily (most frequent first) into clusters closer
  than 40 in RGB; the top five clusters with ≥ 1 % share, as mean colour and share.
- ``blurhash``: the Wolt BlurHash of a ≤32 px version flattened on white, 4×3 components
  (3×4 for portrait images).
- ``phash``: a 64-bit DCT perceptual hash, 16 hex digits: the image flattened on white,
  resized to 32×32 (aspect ignored), BT.601 luma; the 2-D DCT-II's 8×8 lowest frequencies
  (DC included) are compared with their median; bits row-major, first bit most significant
  (the layout of ``imagehash.phash``). Compare two hashes by Hamming distance: re-encoding
  moves a few bits, a different picture about half of them.
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

from imgproxy_py.errors import BrokenImageError, InvalidImageError, SourceResolutionError
from imgproxy_py.imagetype import ImageFormat, sniff, sniff_video
from imgproxy_py.processing import codecs, external, vips
from imgproxy_py.processing.svg_cost import check_svg_cost
from imgproxy_py.processing.vips import LOADABLE, load_options

INFO_LOADABLE = LOADABLE - {ImageFormat.ICO}
THUMBNAIL_SIZE = 256
DOMINANT_SIZE = 64
BLURHASH_SIZE = 32
MAX_DOMINANT = 5

_METADATA = {"exif": "exif-data", "icc": "icc-profile-data", "xmp": "xmp-data", "iptc": "iptc-data"}
_BITS = {
    "uchar": 8,
    "char": 8,
    "ushort": 16,
    "short": 16,
    "uint": 32,
    "int": 32,
    "float": 32,
    "double": 64,
    "complex": 64,
    "dpcomplex": 128,
}


def info_json(data: bytes, max_src_resolution: int, video_thumbnails: bool = False, max_video: float = 3600) -> bytes:
    """The info document as compact UTF-8 JSON (what the endpoint sends and caches)."""
    info = image_info(data, max_src_resolution, video_thumbnails=video_thumbnails, max_video_duration=max_video)
    return json.dumps(info, separators=(",", ":")).encode()


def image_info(
    data: bytes, max_src_resolution: int, *, video_thumbnails: bool = False, max_video_duration: float = 3600
) -> dict[str, Any]:
    fmt = sniff(data)
    container = sniff_video(data) if fmt is None and video_thumbnails else None
    if container is None and (fmt is None or fmt not in INFO_LOADABLE):
        raise InvalidImageError("source image type is not supported")
    try:
        if container is not None:
            return _video_info(data, container, max_src_resolution, max_video_duration)
        assert fmt is not None
        return _image_info(data, fmt, max_src_resolution)
    except (vips.Error, UnicodeDecodeError) as exc:
        # pyvips decodes libvips' messages and field names as UTF-8; a hostile file can put
        # other bytes there, and then the decode fails instead of the libvips call.
        raise BrokenImageError(f"libvips: {str(exc).splitlines()[0][:200]}") from None


def _image_info(data: bytes, fmt: ImageFormat, max_src_resolution: int) -> dict[str, Any]:
    if fmt is ImageFormat.SVG:
        check_svg_cost(data)  # the colour summary renders it: refuse <use> and filter bombs first
    # BMP, HEVC HEIC, JPEG XL: limits from the probed header, then decoded outside libvips.
    decoded = codecs.decodes(data, fmt)
    header = external.load(data, fmt, max_src_resolution) if decoded else vips.open_source(data, **load_options(fmt))
    width, height = header.width, header.height  # the first page: one frame of an animation
    if not fmt.is_vector and (width * height == 0 or width * height > max_src_resolution):
        raise SourceResolutionError(f"source resolution {width}x{height} exceeds the limit")
    orientation = _int_field(header, "orientation", 1)
    if not 1 <= orientation <= 8:
        orientation = 1
    if orientation >= 5:  # stored on its side: reported as displayed
        width, height = height, width
    pages = max(1, _int_field(header, "n-pages", 1))
    animation = None
    if pages > 1 and vips.has_field(header, "delay"):
        animation = {
            "frames": pages,
            "delays": [int(d) for d in header.get("delay")],
            "loop": _int_field(header, "loop", 0),  # 0: forever
        }
    info: dict[str, Any] = {
        "format": fmt.value,
        "mime_type": fmt.mime,
        "file_size": len(data),
        "width": width,
        "height": height,
        "orientation": orientation,
        "pages": pages,
        "animation": animation,
        "alpha": bool(header.hasalpha()),
        "colorspace": str(header.interpretation),
        "bit_depth": _int_field(header, "bits-per-sample", _BITS.get(str(header.format), 8)),
        "bands": header.bands,
        "metadata": {name: vips.has_field(header, field) for name, field in _METADATA.items()},
    }
    info.update(colour_summary(_small_srgb(data, fmt, header if decoded else None)))
    return info


def _video_info(data: bytes, container: str, max_src_resolution: int, max_duration: float) -> dict[str, Any]:
    """A video: its container, codec, size and duration, and the colours of the first keyframe."""
    from imgproxy_py.processing.codecs.video import CONTAINERS

    header, still = external.video_still(data, container, None, max_src_resolution, max_duration)
    width, height = still.width, still.height  # as displayed (the recorded rotation applied)
    orientation = _int_field(still, "orientation", 1)
    if orientation >= 5:
        width, height = height, width
    info: dict[str, Any] = {
        "format": container,
        "mime_type": CONTAINERS[container][1],
        "file_size": len(data),
        "width": width,
        "height": height,
        "orientation": 1,
        "pages": 1,
        "animation": None,
        "alpha": False,
        "colorspace": "srgb",
        "bit_depth": 8,
        "bands": 3,
        "metadata": {"exif": False, "icc": False, "xmp": False, "iptc": False},
        "video": {"duration": round(header.duration, 3), "codec": header.codec},
    }
    if orientation != 1:
        still = still.autorot()
    info.update(colour_summary(_small_srgb(data, ImageFormat.JPEG, still)))
    return info


def _int_field(img: Any, name: str, default: int) -> int:
    return int(img.get(name)) if vips.has_field(img, name) else default


def _small_srgb(data: bytes, fmt: ImageFormat, decoded: Any = None) -> Any:
    """An upright ≤256 px 8-bit sRGB (+ alpha) version, decoded into memory once.

    ``decoded``: the source already decoded (and upright) by a codec outside libvips.
    """
    if decoded is not None:
        img = vips.thumbnail_image(decoded, THUMBNAIL_SIZE, height=THUMBNAIL_SIZE, size="down")
    else:
        loader = "" if fmt is ImageFormat.SVG else "fail_on=truncated"
        img = vips.thumbnail(data, THUMBNAIL_SIZE, height=THUMBNAIL_SIZE, size="down", option_string=loader)
    if img.interpretation not in ("srgb", "b-w"):
        img = img.colourspace("srgb")  # 16-bit, LAB, …; CMYK was imported by thumbnail
    elif vips.has_field(img, "icc-profile-data"):
        with contextlib.suppress(vips.Error):  # a broken or mismatched profile: keep the pixels
            img = img.icc_transform("srgb", embedded=True)
    if img.format != "uchar":
        img = img.cast("uchar")
    if img.bands < 3:
        img = img.colourspace("srgb")
    if img.bands > 4 or (img.bands == 4 and not img.hasalpha()):
        alpha = img[img.bands - 1] if img.hasalpha() else None
        img = img.extract_band(0, n=3)
        if alpha is not None:
            img = img.bandjoin(alpha)
    return vips.pixels(img)


def colour_summary(img: Any) -> dict[str, Any]:
    """Average and dominant colours, BlurHash and pHash of an 8-bit sRGB(A) image."""
    has_alpha = img.bands == 4
    flat = img.flatten(background=[255, 255, 255]) if has_alpha else img
    small = img.thumbnail_image(DOMINANT_SIZE, height=DOMINANT_SIZE, size="down")
    tiny = flat.thumbnail_image(BLURHASH_SIZE, height=BLURHASH_SIZE, size="down")
    square = flat.thumbnail_image(32, height=32, size="force")
    cx, cy = (4, 3) if tiny.width >= tiny.height else (3, 4)
    return {
        "average_color": _average(img),
        "dominant_colors": dominant_colors(bytes(small.write_to_memory()), img.bands),
        "blurhash": blurhash_encode(bytes(tiny.write_to_memory()), tiny.width, tiny.height, cx, cy),
        "phash": phash(bytes(square.write_to_memory())),
    }


def _hex(r: float, g: float, b: float) -> str:
    return "#" + "".join(f"{max(0, min(255, round(v))):02x}" for v in (r, g, b))


def _average(img: Any) -> str | None:
    rgb = img.extract_band(0, n=3).cast("float")
    if img.bands == 4:
        alpha = img[3].cast("float") / 255.0
        weight = alpha.avg()
        if weight <= 0:
            return None
        stats = (rgb * alpha).stats()
        return _hex(*(stats.getpoint(4, band + 1)[0] / weight for band in range(3)))
    stats = rgb.stats()
    return _hex(*(stats.getpoint(4, band + 1)[0] for band in range(3)))


def dominant_colors(pixels: bytes, bands: int) -> list[dict[str, Any]]:
    """The most common colours of interleaved 8-bit RGB(A) pixels, with their share.

    Each pixel counts by its alpha, so faint pixels count little and invisible ones not at all.
    """
    buckets: dict[int, list[int]] = {}  # key → [weight, weighted r, g, b sums]
    for off in range(0, len(pixels) - bands + 1, bands):
        weight = pixels[off + 3] if bands == 4 else 255
        if weight == 0:
            continue
        r, g, b = pixels[off], pixels[off + 1], pixels[off + 2]
        key = (r >> 4) << 8 | (g >> 4) << 4 | b >> 4
        bucket = buckets.get(key)
        if bucket is None:
            buckets[key] = [weight, r * weight, g * weight, b * weight]
        else:
            bucket[0] += weight
            bucket[1] += r * weight
            bucket[2] += g * weight
            bucket[3] += b * weight
    total = sum(bucket[0] for bucket in buckets.values())
    if total == 0:
        return []
    clusters: list[list[int]] = []
    for bucket in sorted(buckets.values(), key=lambda item: -item[0]):
        weight = bucket[0]
        for cluster in clusters:
            dist = sum((bucket[i] / weight - cluster[i] / cluster[0]) ** 2 for i in (1, 2, 3))
            if dist < 40**2:
                for i in range(4):
                    cluster[i] += bucket[i]
                break
        else:
            clusters.append(list(bucket))
    clusters.sort(key=lambda item: -item[0])
    result: list[dict[str, Any]] = []
    for cluster in clusters[:MAX_DOMINANT]:
        share = cluster[0] / total
        if result and share < 0.01:
            break
        colour = _hex(cluster[1] / cluster[0], cluster[2] / cluster[0], cluster[3] / cluster[0])
        result.append({"color": colour, "share": round(share, 4)})
    return result


# --- BlurHash (https://github.com/woltapp/blurhash, the reference encoder's arithmetic) -----

_BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"
_LINEAR = [v / 255 / 12.92 if v / 255 <= 0.04045 else ((v / 255 + 0.055) / 1.055) ** 2.4 for v in range(256)]


def _base83(value: int, length: int) -> str:
    return "".join(_BASE83[value // 83 ** (length - i) % 83] for i in range(1, length + 1))


def _linear_to_srgb(value: float) -> int:
    v = max(0.0, min(1.0, value))
    if v <= 0.0031308:
        return int(v * 12.92 * 255 + 0.5)
    return int((1.055 * math.pow(v, 1 / 2.4) - 0.055) * 255 + 0.5)


def _sign_pow(value: float, exp: float) -> float:
    return math.copysign(math.pow(abs(value), exp), value)


def blurhash_encode(pixels: bytes, width: int, height: int, cx: int = 4, cy: int = 3) -> str:
    """BlurHash of interleaved 8-bit sRGB pixels (3 bytes each, row-major)."""
    if not (1 <= cx <= 9 and 1 <= cy <= 9):
        raise ValueError("blurhash components must be 1..9")
    cos_x = [[math.cos(math.pi * i * x / width) for x in range(width)] for i in range(cx)]
    cos_y = [[math.cos(math.pi * j * y / height) for y in range(height)] for j in range(cy)]
    sums = [[0.0, 0.0, 0.0] for _ in range(cx * cy)]
    stride = width * 3
    for y in range(height):
        row = [_LINEAR[v] for v in pixels[y * stride : (y + 1) * stride]]
        channels = (row[0::3], row[1::3], row[2::3])
        for i in range(cx):
            basis = cos_x[i]
            projected = [sum(b * v for b, v in zip(basis, channel, strict=True)) for channel in channels]
            for j in range(cy):
                weight = cos_y[j][y]
                acc = sums[j * cx + i]
                for c in range(3):
                    acc[c] += weight * projected[c]
    scale = 1.0 / (width * height)
    factors = [[(1.0 if k == 0 else 2.0) * s * scale for s in acc] for k, acc in enumerate(sums)]
    dc, ac = factors[0], factors[1:]
    max_ac = max((abs(v) for f in ac for v in f), default=0.0)
    quant_max = int(max(0, min(82, math.floor(max_ac * 166 - 0.5)))) if ac else 0
    norm = (quant_max + 1) / 166
    out = _base83((cx - 1) + (cy - 1) * 9, 1) + _base83(quant_max, 1)
    out += _base83((_linear_to_srgb(dc[0]) << 16) + (_linear_to_srgb(dc[1]) << 8) + _linear_to_srgb(dc[2]), 4)
    for f in ac:
        r, g, b = (int(max(0.0, min(18.0, math.floor(_sign_pow(v / norm, 0.5) * 9 + 9.5)))) for v in f)
        out += _base83(r * 19 * 19 + g * 19 + b, 2)
    return out


# --- pHash --------------------------------------------------------------------------------

_DCT = [[math.cos(math.pi * k * (2 * n + 1) / 64) for n in range(32)] for k in range(8)]


def phash(pixels: bytes) -> str:
    """64-bit DCT hash of a 32×32 image given as interleaved 8-bit sRGB pixels."""
    if len(pixels) != 32 * 32 * 3:
        raise ValueError("phash needs 32x32 RGB pixels")
    luma = [0.299 * pixels[i] + 0.587 * pixels[i + 1] + 0.114 * pixels[i + 2] for i in range(0, len(pixels), 3)]
    rows = [
        [sum(c * v for c, v in zip(_DCT[k], luma[r * 32 : r * 32 + 32], strict=True)) for k in range(8)]
        for r in range(32)
    ]
    coeffs = [sum(_DCT[u][r] * rows[r][v] for r in range(32)) for u in range(8) for v in range(8)]
    ordered = sorted(coeffs)
    median = (ordered[31] + ordered[32]) / 2
    value = 0
    for c in coeffs:
        value = value << 1 | (c > median)
    return f"{value:016x}"


def hamming(a: str, b: str) -> int:
    """Bits that differ between two hex hashes of the same length."""
    return (int(a, 16) ^ int(b, 16)).bit_count()
