"""Which format to save the result in (imgproxy's determineOutputFormat). Pure logic."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from imgproxy_py.imagetype import ImageFormat


@dataclass(frozen=True, slots=True)
class ClientFormats:
    """Modern formats the client accepts *and* the settings allow picking for it."""

    webp: bool = False
    avif: bool = False
    enforce_webp: bool = False
    enforce_avif: bool = False
    jxl: bool = False
    enforce_jxl: bool = False

    def key(self) -> str:
        """A short stable text for cache keys and ETags."""
        flags = (
            ("w", self.webp),
            ("a", self.avif),
            ("W", self.enforce_webp),
            ("A", self.enforce_avif),
            ("j", self.jxl),
            ("J", self.enforce_jxl),
        )
        return "".join(flag for flag, on in flags if on)


NO_CLIENT_FORMATS = ClientFormats()


def choose_format(
    requested: ImageFormat | None,
    client: ClientFormats,
    source: ImageFormat,
    *,
    animated: bool,
    expect_alpha: bool,
    preferred: Sequence[ImageFormat],
) -> ImageFormat:
    # imgproxy's order: JPEG XL, then AVIF (neither animates here), then WebP.
    if requested is None:
        if client.jxl and not animated:
            return ImageFormat.JXL
        if client.avif and not animated:
            return ImageFormat.AVIF
        if client.webp:
            return ImageFormat.WEBP
        if source in preferred:
            return source
        for fmt in preferred:
            if animated and not fmt.supports_animation:
                continue
            if expect_alpha and not fmt.supports_alpha:
                continue
            return fmt
        return preferred[0]
    if client.enforce_jxl and not animated:
        return ImageFormat.JXL
    if client.enforce_avif and not animated:
        return ImageFormat.AVIF
    if client.enforce_webp:
        return ImageFormat.WEBP
    return requested
