"""What the client accepts, as far as the settings let it matter (imgproxy's plain substring test)."""

from __future__ import annotations

from imgproxy_py.processing.format_choice import NO_CLIENT_FORMATS, ClientFormats
from imgproxy_py.settings import OptionSettings


def client_formats(accept: str, settings: OptionSettings) -> ClientFormats:
    if not settings.negotiates_format or not accept:
        return NO_CLIENT_FORMATS
    webp = "image/webp" in accept
    avif = "image/avif" in accept
    jxl = "image/jxl" in accept
    return ClientFormats(
        webp=webp and (settings.auto_webp or settings.enforce_webp),
        avif=avif and (settings.auto_avif or settings.enforce_avif),
        enforce_webp=webp and settings.enforce_webp,
        enforce_avif=avif and settings.enforce_avif,
        jxl=jxl and (settings.auto_jxl or settings.enforce_jxl),
        enforce_jxl=jxl and settings.enforce_jxl,
    )
