"""The names `_Env` did not read: unknown IMGPROXY_* variables and imgproxy settings not supported here."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

# imgproxy settings this server does not implement (imgproxy's docs, configuration/options).
# Setting one warns "not supported" instead of being silently ignored. A name that some
# part of this server reads through _Env is known and never reported, even if listed here.
UNSUPPORTED = frozenset(
    {
        "IMGPROXY_READ_TIMEOUT",
        "IMGPROXY_READ_REQUEST_TIMEOUT",
        "IMGPROXY_WRITE_TIMEOUT",
        "IMGPROXY_WRITE_RESPONSE_TIMEOUT",
        "IMGPROXY_KEEP_ALIVE_TIMEOUT",
        "IMGPROXY_CLIENT_KEEP_ALIVE_TIMEOUT",
        "IMGPROXY_MAX_CLIENTS",
        "IMGPROXY_CONCURRENCY",
        "IMGPROXY_NETWORK",
        "IMGPROXY_SO_REUSEPORT",
        "IMGPROXY_ALLOW_ORIGIN",
        "IMGPROXY_SET_CANONICAL_HEADER",
        "IMGPROXY_CACHE_CONTROL_PASSTHROUGH",
        "IMGPROXY_ETAG_BUSTER",
        "IMGPROXY_LAST_MODIFIED_BUSTER",
        "IMGPROXY_RETURN_ATTACHMENT",
        "IMGPROXY_BASE64_URL_INCLUDES_FILENAME",
        "IMGPROXY_SOURCE_URL_QUERY_SEPARATOR",
        "IMGPROXY_SOURCE_URL_ENCRYPTION_KEY",
        "IMGPROXY_COOKIE_PASSTHROUGH",
        "IMGPROXY_COOKIE_BASE_URL",
        "IMGPROXY_IGNORE_SSL_VERIFICATION",
        "IMGPROXY_DEVELOPMENT_ERRORS_MODE",
        "IMGPROXY_ENABLE_DEBUG_HEADERS",
        "IMGPROXY_MAX_SVG_CHECK_BYTES",
        "IMGPROXY_SVG_UNLIMITED",
        "IMGPROXY_SVG_FIX_UNSUPPORTED",
        "IMGPROXY_FALLBACK_IMAGE_DATA",
        "IMGPROXY_FALLBACK_IMAGE_PATH",
        "IMGPROXY_FALLBACK_IMAGE_URL",
        "IMGPROXY_FALLBACK_IMAGE_HTTP_CODE",
        "IMGPROXY_FALLBACK_IMAGE_TTL",
        "IMGPROXY_USE_GCS",
        "IMGPROXY_GCS_KEY",
        "IMGPROXY_GCS_ENDPOINT",
        "IMGPROXY_USE_ABS",
        "IMGPROXY_ABS_NAME",
        "IMGPROXY_ABS_KEY",
        "IMGPROXY_ABS_ENDPOINT",
        "IMGPROXY_USE_SWIFT",
        "IMGPROXY_SWIFT_USERNAME",
        "IMGPROXY_SWIFT_API_KEY",
        "IMGPROXY_SWIFT_AUTH_URL",
        "IMGPROXY_S3_ASSUME_ROLE_ARN",
        "IMGPROXY_S3_ASSUME_ROLE_EXTERNAL_ID",
        "IMGPROXY_S3_MULTI_REGION",
        "IMGPROXY_S3_DECRYPTION_CLIENT_ENABLED",
        "IMGPROXY_NEW_RELIC_KEY",
        "IMGPROXY_NEW_RELIC_APP_NAME",
        "IMGPROXY_DATADOG_ENABLE",
        "IMGPROXY_OPEN_TELEMETRY_ENABLE",
        "IMGPROXY_OPEN_TELEMETRY_ENDPOINT",
        "IMGPROXY_CLOUD_WATCH_SERVICE_NAME",
        "IMGPROXY_CLOUD_WATCH_NAMESPACE",
        "IMGPROXY_CLOUD_WATCH_REGION",
        "IMGPROXY_BUGSNAG_KEY",
        "IMGPROXY_HONEYBADGER_KEY",
        "IMGPROXY_SENTRY_DSN",
        "IMGPROXY_AIRBRAKE_PROJECT_ID",
        "IMGPROXY_AIRBRAKE_PROJECT_KEY",
        "IMGPROXY_SYSLOG_ENABLE",
        "IMGPROXY_PPROF_BIND",
        "IMGPROXY_LOG_MEM_STATS",
        "IMGPROXY_DOWNLOAD_BUFFER_SIZE",
        "IMGPROXY_BUFFER_POOL_CALIBRATION_THRESHOLD",
        "IMGPROXY_JPEG_NO_SUBSAMPLE",
        "IMGPROXY_JPEG_TRELLIS_QUANT",
        "IMGPROXY_JPEG_OVERSHOOT_DERINGING",
        "IMGPROXY_JPEG_OPTIMIZE_SCANS",
        "IMGPROXY_JPEG_QUANT_TABLE",
        "IMGPROXY_PNG_QUANTIZE",
        "IMGPROXY_PNG_QUANTIZATION_COLORS",
        "IMGPROXY_WEBP_COMPRESSION",
        "IMGPROXY_WEBP_SMART_SUBSAMPLE",
        "IMGPROXY_AVIF_SUBSAMPLE",
        "IMGPROXY_USE_LINEAR_COLORSPACE",
        "IMGPROXY_DISABLE_SHRINK_ON_LOAD",
        "IMGPROXY_STRIP_METADATA_DPI",
        "IMGPROXY_WATERMARK_CACHE_SIZE",
        "IMGPROXY_UNSHARP_MASKING_MODE",
        "IMGPROXY_UNSHARP_MASKING_WEIGHT",
        "IMGPROXY_UNSHARP_MASKING_DIVIDER",
        "IMGPROXY_SMART_CROP_ADVANCED",
        "IMGPROXY_SMART_CROP_FACE_DETECTION",
        "IMGPROXY_OBJECT_DETECTION_CONFIG",
        "IMGPROXY_GZIP_COMPRESSION",
        "IMGPROXY_MAX_SRC_RESOLUTION_FOR_ENLARGE",
        "IMGPROXY_LICENSE_KEY",
        "IMGPROXY_ENABLE_AUTO_QUALITY",
        "IMGPROXY_AUTO_QUALITY_METHOD",
        "IMGPROXY_BEST_FORMAT_COMPLEXITY_THRESHOLD",
        "IMGPROXY_BEST_FORMAT_MAX_RESOLUTION",
        "IMGPROXY_BEST_FORMAT_BY_DEFAULT",
        "IMGPROXY_BEST_FORMAT_ALLOW_SKIPS",
        "IMGPROXY_STRIP_METADATA_SOURCE",
    }
)
_INTERNAL_PREFIX = "IMGPROXY_PY_"  # set by `imgproxy-py serve` for its own worker processes


def config_warnings(environ: Mapping[str, str], known: frozenset[str]) -> list[str]:
    """One message per IMGPROXY_* variable in ``environ`` that nothing reads.

    ``known`` is every name ``_Env`` was asked for, so a setting added anywhere is known
    without a second list to keep in step. A typo is answered with the nearest known name
    (difflib's ratio, the standard library's fuzzy matcher: no extra dependency for one call).
    """
    messages = []
    for name in sorted(environ):
        if not name.startswith("IMGPROXY_") or name.startswith(_INTERNAL_PREFIX) or name in known:
            continue
        if name in UNSUPPORTED:
            messages.append(f"{name} is an imgproxy setting this server does not support; it is ignored")
            continue
        close = difflib.get_close_matches(name, sorted(known | UNSUPPORTED), n=1, cutoff=0.8)
        hint = f" (did you mean {close[0]}?)" if close else ""
        messages.append(f"{name} is not a known setting; it is ignored{hint}")
    return messages
