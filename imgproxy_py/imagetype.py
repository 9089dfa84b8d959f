"""Image formats: names, MIME types, capabilities and magic-byte sniffing.

Pure data so that the options parser, the sources and the server can reason about
formats without importing libvips.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Caps:
    mime: str
    ext: str
    alpha: bool
    animation: bool
    quality: bool
    max_size: int  # largest width or height the encoder accepts (0: no limit)


class ImageFormat(enum.Enum):
    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    AVIF = "avif"
    GIF = "gif"
    ICO = "ico"
    HEIC = "heic"
    BMP = "bmp"
    TIFF = "tiff"
    JXL = "jxl"
    SVG = "svg"

    @property
    def caps(self) -> _Caps:
        return _CAPS[self]

    @property
    def mime(self) -> str:
        return _CAPS[self].mime

    @property
    def ext(self) -> str:
        return _CAPS[self].ext

    @property
    def supports_alpha(self) -> bool:
        return _CAPS[self].alpha

    @property
    def supports_animation(self) -> bool:
        return _CAPS[self].animation

    @property
    def supports_quality(self) -> bool:
        return _CAPS[self].quality

    @property
    def is_vector(self) -> bool:
        return self is ImageFormat.SVG

    @classmethod
    def from_name(cls, name: str) -> ImageFormat | None:
        """Parse a format name or extension as imgproxy does (``jpg`` → JPEG, ``tif`` → TIFF)."""
        return _ALIASES.get(name.lower())


_CAPS: dict[ImageFormat, _Caps] = {
    ImageFormat.JPEG: _Caps("image/jpeg", "jpg", False, False, True, 65535),
    ImageFormat.PNG: _Caps("image/png", "png", True, False, False, 0),
    ImageFormat.WEBP: _Caps("image/webp", "webp", True, True, True, 16383),
    ImageFormat.AVIF: _Caps("image/avif", "avif", True, False, True, 16384),
    ImageFormat.GIF: _Caps("image/gif", "gif", True, True, False, 65535),
    ImageFormat.ICO: _Caps("image/x-icon", "ico", True, False, False, 256),
    ImageFormat.HEIC: _Caps("image/heif", "heic", True, False, True, 16384),
    ImageFormat.BMP: _Caps("image/bmp", "bmp", True, False, False, 0),
    ImageFormat.TIFF: _Caps("image/tiff", "tiff", True, False, True, 0),
    ImageFormat.JXL: _Caps("image/jxl", "jxl", True, False, True, 0),
    ImageFormat.SVG: _Caps("image/svg+xml", "svg", True, False, False, 0),
}

_ALIASES: dict[str, ImageFormat] = {f.value: f for f in ImageFormat} | {
    "jpg": ImageFormat.JPEG,
    "jpe": ImageFormat.JPEG,
    "jfif": ImageFormat.JPEG,
    "tif": ImageFormat.TIFF,
    "heif": ImageFormat.HEIC,
}

# Formats this server can write: libvips (pyvips[binary]) writes most; ICO is written by
# processing/ico.py (PNG inside), BMP by processing/bmp_writer.py, HEIC (pillow-heif's x265) and JPEG XL
# (imagecodecs' libjxl) by processing/codecs. SVG is only ever passed through.
SAVABLE: frozenset[ImageFormat] = frozenset(
    {
        ImageFormat.JPEG,
        ImageFormat.PNG,
        ImageFormat.WEBP,
        ImageFormat.AVIF,
        ImageFormat.GIF,
        ImageFormat.ICO,
        ImageFormat.TIFF,
        ImageFormat.BMP,
        ImageFormat.HEIC,
        ImageFormat.JXL,
    }
)


def sniff(data: bytes | memoryview) -> ImageFormat | None:
    """Detect the format from the first bytes, never from the name or Content-Type."""
    head = bytes(data[:64])
    if head.startswith(b"\xff\xd8\xff"):
        return ImageFormat.JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ImageFormat.PNG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ImageFormat.WEBP
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return ImageFormat.GIF
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        compatible = head[16:64]
        if brand in (b"avif", b"avis") or b"avif" in compatible:
            return ImageFormat.AVIF
        if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"):
            return ImageFormat.HEIC
        return None
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return ImageFormat.TIFF
    if head.startswith(b"\x00\x00\x01\x00"):
        return ImageFormat.ICO
    if head.startswith(b"BM"):
        return ImageFormat.BMP
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return ImageFormat.JXL
    if _looks_like_svg(bytes(data[:4096])):
        return ImageFormat.SVG
    return None


_MP4_BRANDS = (b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ", b"dash", b"mmp4")


def sniff_video(data: bytes | memoryview) -> str | None:
    """The video container (``mp4``, ``mov``, ``webm``, ``mkv``) from the first bytes, else None.

    Only asked when video stills are enabled and the bytes are no image.
    """
    head = bytes(data[:64])
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return "mov"
        return "mp4" if brand in _MP4_BRANDS else None
    if head[4:8] in (b"moov", b"mdat", b"wide") and len(head) >= 8:
        return "mov"  # old QuickTime files start with an atom, not ftyp
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm" if b"webm" in bytes(data[:4096]) else "mkv"
    return None


def _looks_like_svg(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not text.startswith(b"<"):
        return False
    return b"<svg" in text
