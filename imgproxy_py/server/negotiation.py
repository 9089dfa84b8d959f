"""What the client accepts, as far as the settings let it matter.

As imgproxy, only an explicit ``image/webp`` / ``image/avif`` / ``image/jxl`` media range counts (``*/*`` and
``image/*`` never select a modern format), but unlike imgproxy's substring test the ranges are
parsed (RFC 9110 §12.5.1): ``image/webp;q=0`` means "not acceptable". Hand-written rather
than python-mimeparse & co., whose wildcard matching would answer a different question.
"""

from __future__ import annotations

from imgproxy_py.processing.format_choice import NO_CLIENT_FORMATS, ClientFormats
from imgproxy_py.settings import OptionSettings

_MODERN = ("image/webp", "image/avif", "image/jxl")


def accepted_types(accept: str) -> frozenset[str]:
    """The explicit ``image/webp``/``image/avif``/``image/jxl`` ranges of ``accept`` with a q-value above 0.

    Not memoised here: the resolver keeps each Accept value's formats and key (server/resolver.py).
    """
    lowered = accept.lower()
    if not any(media in lowered for media in _MODERN):
        return frozenset()
    found = set()
    for item in lowered.split(","):
        media, _, params = item.partition(";")
        media = media.strip()
        if media in _MODERN and _quality(params) > 0:
            found.add(media)
    return frozenset(found)


def _quality(params: str) -> float:
    """The ``q`` parameter (1 when absent); a malformed one counts as 0, as the RFC's grammar allows no other."""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def client_formats(accept: str, settings: OptionSettings) -> ClientFormats:
    if not settings.negotiates_format or not accept:
        return NO_CLIENT_FORMATS
    types = accepted_types(accept)
    webp = "image/webp" in types
    avif = "image/avif" in types
    jxl = "image/jxl" in types
    return ClientFormats(
        webp=webp and (settings.auto_webp or settings.enforce_webp),
        avif=avif and (settings.auto_avif or settings.enforce_avif),
        enforce_webp=webp and settings.enforce_webp,
        enforce_avif=avif and settings.enforce_avif,
        jxl=jxl and (settings.auto_jxl or settings.enforce_jxl),
        enforce_jxl=jxl and settings.enforce_jxl,
    )
