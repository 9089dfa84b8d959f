"""Choose the source for a URL by its scheme: a lookup, not a chain of ifs."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from imgproxy_py.errors import InvalidSourceURLError, SourceUnreachableError
from imgproxy_py.sources.base import Source

# What to set to enable a scheme that is known but not configured.
_ENABLE_HINTS = {
    "local": "IMGPROXY_LOCAL_FILESYSTEM_ROOT",
    "s3": "IMGPROXY_USE_S3",
    "gs": "IMGPROXY_USE_GCS",
    "abs": "IMGPROXY_USE_ABS",
    "swift": "IMGPROXY_USE_SWIFT",
}


class SourceRegistry:
    def __init__(self, sources: Mapping[str, Source], allow_url: Callable[[str], bool] | None = None) -> None:
        self._sources = dict(sources)
        self._allow_url = allow_url

    def for_url(self, url: str) -> Source:
        """The source for ``url``'s scheme; refuses URLs outside IMGPROXY_ALLOWED_SOURCES."""
        if self._allow_url is not None and not self._allow_url(url):
            raise InvalidSourceURLError("source URL is not in IMGPROXY_ALLOWED_SOURCES")
        scheme, sep, _ = url.partition("://")
        if not sep or not scheme:
            raise InvalidSourceURLError("source URL has no scheme")
        source = self._sources.get(scheme.lower())
        if source is not None:
            return source
        hint = _ENABLE_HINTS.get(scheme.lower())
        if hint:
            raise SourceUnreachableError(
                f"scheme {scheme!r} is disabled",
                public_message=f"Unknown or disabled source scheme: {scheme} (set {hint} to enable it)",
            )
        raise SourceUnreachableError(
            f"unknown scheme {scheme!r}", public_message=f"Unknown source scheme: {scheme[:16]}"
        )

    async def aclose(self) -> None:
        closed: set[int] = set()
        for source in self._sources.values():
            if id(source) not in closed:
                closed.add(id(source))
                await source.aclose()
