"""The watermark image's origin and opacity."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from imgproxy_py.errors import SettingsError
from imgproxy_py.settings.env import _Env


@dataclass(frozen=True, slots=True)
class WatermarkSettings:
    """Where the watermark image comes from; it is decoded once at start-up (processing/watermark_image.py;
    a URL is fetched through sources/ by server/watermark_source.py)."""

    data: bytes | None = field(default=None, repr=False)  # from IMGPROXY_WATERMARK_DATA or _PATH
    origin: str = ""  # the variable that supplied it, for start-up error messages
    url: str | None = None  # IMGPROXY_WATERMARK_URL, fetched at start-up when no data/path is set
    opacity: float = 1.0

    @property
    def configured(self) -> bool:
        return self.data is not None or self.url is not None

    @classmethod
    def from_env(cls, env: _Env) -> WatermarkSettings:
        """DATA (base64) wins over PATH, which wins over URL, as in imgproxy; the image is decoded later."""
        opacity = env.get_float("IMGPROXY_WATERMARK_OPACITY", 1.0, min_value=0, max_value=1)
        encoded = env.raw("IMGPROXY_WATERMARK_DATA")
        path = env.raw("IMGPROXY_WATERMARK_PATH")  # all three read always: each is a known name
        url = env.raw("IMGPROXY_WATERMARK_URL")
        if encoded is not None:
            try:
                data = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise SettingsError("IMGPROXY_WATERMARK_DATA: not valid base64") from None
            return cls(data=data, origin="IMGPROXY_WATERMARK_DATA", opacity=opacity)
        if path is not None:
            try:
                with open(path, "rb") as file:
                    data = file.read()
            except OSError as exc:
                raise SettingsError(f"IMGPROXY_WATERMARK_PATH: cannot read {path!r}: {exc}") from None
            return cls(data=data, origin="IMGPROXY_WATERMARK_PATH", opacity=opacity)
        if url is not None:
            if not url.startswith(("http://", "https://")):
                raise SettingsError("IMGPROXY_WATERMARK_URL: must be an http:// or https:// URL")
            return cls(url=url, origin="IMGPROXY_WATERMARK_URL", opacity=opacity)
        return cls(opacity=opacity)
