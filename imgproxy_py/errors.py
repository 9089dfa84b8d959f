"""One exception tree for everything a request can fail with.

Every error carries the HTTP status it maps to, a short public message (the only
text a client ever sees) and a metrics category (imgproxy's ``errors_total{type}``).
The ``detail`` passed to the constructor is for logs; a client sees it (with the ``hint``:
what was expected, the nearest option name, which setting enables something) only in
development mode (IMGPROXY_DEVELOPMENT_ERRORS_MODE), see ``developer_message``. Neither may
hold a secret: both are written to the logs too.

    ImgproxyError
    ├── InvalidURLError            404 "Invalid URL"            path_parsing
    │   ├── InvalidOptionError         bad/unknown option or argument
    │   └── ExpiredURLError            expires in the past
    ├── ForbiddenError             403 "Forbidden"              security
    │   ├── SignatureError
    │   └── SecurityOptionError        security option without ALLOW_SECURITY_OPTIONS
    ├── SourceError                                             download
    │   ├── InvalidSourceURLError  404 "Invalid source URL"     (not allowed, bad URL)
    │   ├── SourceUnreachableError 404 "Source is unreachable"  (network, unknown scheme)
    │   ├── SourceNotFoundError    404 "Source image is not found"
    │   ├── SourceStatusError      4xx passed through, 5xx → 502
    │   ├── SourceTimeoutError     504 "Source download timed out"
    │   ├── SourceTooBigError      422 "Source image file is too big"
    │   └── SourceTruncatedError   422 "Source image is truncated"
    ├── ImageError                 422                          processing
    │   ├── InvalidImageError          unknown type, side or scans over the limit
    │   │   └── SourceResolutionError      422 "Source image resolution is too big" (imgproxy's text)
    │   ├── BrokenImageError           libvips could not decode it
    │   └── UnsupportedFormatError     cannot save in the requested format
    ├── TooManyRequestsError       429 "Too many requests"      queue
    ├── RequestTimeoutError        503 "Timeout"                timeout
    ├── ShuttingDownError          503 "Server is shutting down" shutdown (graceful stop expired)
    └── ClientClosedError          499                          (client went away)
"""

from __future__ import annotations


class ImgproxyError(Exception):
    """Base of every request error; subclasses set the class attributes."""

    status_code: int = 500
    public_message: str = "Internal error"
    category: str = "unexpected"

    def __init__(
        self,
        detail: str = "",
        *,
        public_message: str | None = None,
        status_code: int | None = None,
        hint: str = "",
    ) -> None:
        super().__init__(detail or self.public_message)
        self.detail = detail or self.public_message
        self.hint = hint
        if public_message is not None:
            self.public_message = public_message
        if status_code is not None:
            self.status_code = status_code

    def developer_message(self) -> str:
        """The development-mode body: the public message, then what exactly was wrong and what to do."""
        lines = [self.public_message]
        if self.detail != self.public_message:
            lines.append(self.detail)
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


class InvalidURLError(ImgproxyError):
    status_code = 404
    public_message = "Invalid URL"
    category = "path_parsing"


class InvalidOptionError(InvalidURLError):
    """Unknown option, forbidden option or a bad argument: never silently dropped."""


class ExpiredURLError(InvalidURLError):
    public_message = "Expired URL"


class ForbiddenError(ImgproxyError):
    status_code = 403
    public_message = "Forbidden"
    category = "security"


class SignatureError(ForbiddenError):
    pass


class SecurityOptionError(ForbiddenError):
    public_message = "Security processing options are not allowed"


class SourceError(ImgproxyError):
    status_code = 404
    public_message = "Source is unreachable"
    category = "download"
    # The source is down (RFC 5861 stale-if-error may answer), not the image gone or bad.
    is_outage = False


class InvalidSourceURLError(SourceError):
    public_message = "Invalid source URL"


class SourceUnreachableError(SourceError):
    is_outage = True


class SourceNotFoundError(SourceError):
    public_message = "Source image is not found"


class SourceStatusError(SourceError):
    """The source answered with an error status: 4xx passes through, 5xx becomes 502."""

    def __init__(self, source_status: int, detail: str = "") -> None:
        status = source_status if 400 <= source_status < 500 else 502
        message = "Source image is not found" if source_status == 404 else "Source responded with an error"
        super().__init__(detail or f"source status {source_status}", public_message=message, status_code=status)
        self.is_outage = source_status >= 500
        self.source_status = source_status


class SourceTimeoutError(SourceError):
    status_code = 504
    public_message = "Source download timed out"
    is_outage = True


class SourceTooBigError(SourceError):
    status_code = 422
    public_message = "Source image file is too big"  # imgproxy's text


class SourceTruncatedError(SourceError):
    status_code = 422
    public_message = "Source image is truncated"


class ImageError(ImgproxyError):
    status_code = 422
    public_message = "Invalid source image"
    category = "processing"


class InvalidImageError(ImageError):
    pass


class SourceResolutionError(InvalidImageError):
    """More pixels than the resolution limit allows (checked from the header, before decoding)."""

    public_message = "Source image resolution is too big"  # imgproxy's text


class BrokenImageError(ImageError):
    public_message = "Broken or unsupported image"


class UnsupportedFormatError(ImageError):
    public_message = "Unsupported image format"


class TooManyRequestsError(ImgproxyError):
    status_code = 429
    public_message = "Too many requests"
    category = "queue"


class RequestTimeoutError(ImgproxyError):
    status_code = 503
    public_message = "Timeout"
    category = "timeout"


class ShuttingDownError(ImgproxyError):
    """Still running when IMGPROXY_GRACEFUL_STOP_TIMEOUT expired: retryable, unlike a 500."""

    status_code = 503
    public_message = "Server is shutting down"
    category = "shutdown"


class ClientClosedError(ImgproxyError):
    """The client went away before the answer (imgproxy's 499): logged, never a server error."""

    status_code = 499
    public_message = "Client closed request"
    category = "client_closed"


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the environment variable."""
