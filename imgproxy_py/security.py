"""URL signatures (imgproxy's HMAC-SHA256 scheme). Pure functions, no I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence

from imgproxy_py.errors import SignatureError
from imgproxy_py.settings import SecuritySettings

_B64URL = re.compile(r"[A-Za-z0-9_-]+")


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def compute_signature(key: bytes, salt: bytes, path: str, size: int = 32) -> str:
    """``base64url_nopad(HMAC_SHA256(key, salt + path)[:size])``; ``path`` starts with ``/``."""
    if not path.startswith("/"):
        path = "/" + path
    digest = hmac.new(key, salt + path.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
    return _b64(digest[:size])


def sign_path(settings: SecuritySettings, path: str) -> str:
    """Return ``/<signature><path>`` signed with the first key/salt pair (or ``insecure``)."""
    if not path.startswith("/"):
        path = "/" + path
    if not settings.signing_enabled:
        return "/insecure" + path
    sig = compute_signature(settings.keys[0], settings.salts[0], path, settings.signature_size)
    return f"/{sig}{path}"


def verify_signature(settings: SecuritySettings, signature: str, path: str) -> None:
    """Raise SignatureError unless ``signature`` signs ``path`` with any configured key/salt pair.

    With signing disabled any segment passes, except one containing ``:``: that is almost
    always a processing option put where the signature belongs (imgproxy v4 does the same).
    """
    if not settings.signing_enabled:
        if ":" in signature:
            raise SignatureError(
                "signature segment looks like a processing option",
                public_message="Forbidden: the signature segment appears to be a processing option; "
                "put a signature (or any placeholder such as 'insecure') before the options",
            )
        return
    if signature in settings.trusted_signatures:
        return
    # base64 RawURL as imgproxy decodes it: no padding, no '+' or '/'.
    if not _B64URL.fullmatch(signature) or len(signature) % 4 == 1:
        raise SignatureError("malformed signature")
    given = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    if not path.startswith("/"):
        path = "/" + path
    message = path.encode("utf-8", "surrogateescape")
    matched = False
    for key, salt in zip(settings.keys, settings.salts, strict=True):
        expected = hmac.new(key, salt + message, hashlib.sha256).digest()[: settings.signature_size]
        # Keep comparing after a match so timing does not reveal which pair matched.
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise SignatureError(
            "invalid signature",
            hint=f"expected base64url(HMAC-SHA256(key, salt + path)) of the path after the signature, "
            f"its first {settings.signature_size} bytes (IMGPROXY_SIGNATURE_SIZE); `imgproxy-py sign PATH` prints one",
        )


class SourcePolicy:
    """IMGPROXY_ALLOWED_SOURCES: URL prefixes where ``*`` matches anything but ``/``.

    An empty list allows every URL (the address checks of the http source still apply).
    End a host with ``/`` (``https://img.example.com/``) or ``*.example.com`` also matches
    ``evil.example.com.attacker.net``.
    """

    def __init__(self, patterns: Sequence[str] = ()) -> None:
        self.patterns = tuple(patterns)
        self._regexes = [re.compile(re.escape(p).replace(r"\*", "[^/]*")) for p in self.patterns]

    def allows(self, url: str) -> bool:
        return not self._regexes or any(r.match(url) for r in self._regexes)
