"""Settings: read once from imgproxy's environment variable names into frozen objects.

Every value is parsed and validated at start-up; a bad value raises SettingsError
naming the variable, so the server refuses to start instead of failing per request.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import difflib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from imgproxy_py.errors import SettingsError
from imgproxy_py.imagetype import SAVABLE, ImageFormat

# IMGPROXY_MAX_SRC_FILE_SIZE when unset (imgproxy: no cap). 64 MiB is several times a real
# photo at the default 50 MP resolution limit (a 50 MP JPEG at quality 95 is ~25 MB) and
# small enough that a few endless sources at once cannot take the process's memory (issue 16).
# 0 set explicitly still means "no cap".
DEFAULT_MAX_SRC_FILE_SIZE = 64 * 1024 * 1024

_INT = re.compile(r"[+-]?[0-9]+")  # Go's strconv.Atoi; Python's int() would also take "1_000"
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_bool(value: str) -> bool | None:
    """Go's strconv.ParseBool, which imgproxy uses for env and URL booleans; None if invalid."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


class _Env:
    """Typed reads of IMGPROXY_* variables; every error names the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        # Every name asked for, set or not: the names this server knows (see config_warnings).
        self.read: set[str] = set()

    def raw(self, name: str) -> str | None:
        self.read.add(name)
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def get_str(self, name: str, default: str) -> str:
        value = self.raw(name)
        return default if value is None else value

    def get_bool(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        parsed = parse_bool(value)
        if parsed is None:
            raise SettingsError(f"{name}: expected a boolean (true/false/1/0), got {value!r}")
        return parsed

    def get_int(self, name: str, default: int, *, min_value: int | None = None, max_value: int | None = None) -> int:
        value = self.raw(name)
        if value is None:
            return default
        if not _INT.fullmatch(value):
            raise SettingsError(f"{name}: expected an integer, got {value!r}")
        parsed = int(value)
        _check_range(name, parsed, min_value, max_value)
        return parsed

    def get_float(
        self, name: str, default: float, *, min_value: float | None = None, max_value: float | None = None
    ) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            parsed = float(value)
        except ValueError:
            raise SettingsError(f"{name}: expected a number, got {value!r}") from None
        if parsed != parsed:  # NaN
            raise SettingsError(f"{name}: expected a number, got {value!r}")
        _check_range(name, parsed, min_value, max_value)
        return parsed

    def get_list(self, name: str, default: tuple[str, ...] = (), sep: str = ",") -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return default
        return tuple(item.strip() for item in value.split(sep) if item.strip())

    def hex_list(self, name: str) -> tuple[bytes, ...]:
        items = []
        for item in self.get_list(name):
            try:
                items.append(binascii.unhexlify(item))
            except (binascii.Error, ValueError):
                raise SettingsError(f"{name}: expected hex-encoded values, got an invalid one") from None
        return tuple(items)

    def formats(self, name: str, default: tuple[ImageFormat, ...]) -> tuple[ImageFormat, ...]:
        names = self.get_list(name)
        if not names:
            return default
        result = []
        for item in names:
            fmt = ImageFormat.from_name(item)
            if fmt is None:
                raise SettingsError(f"{name}: unknown image format {item!r}")
            if fmt not in SAVABLE:
                raise SettingsError(f"{name}: {fmt.value} cannot be saved by this server")
            result.append(fmt)
        return tuple(result)

    def format_quality(self, name: str, default: Mapping[ImageFormat, int]) -> dict[ImageFormat, int]:
        result = dict(default)
        for item in self.get_list(name):
            fmt_name, sep, q = item.partition("=")
            fmt = ImageFormat.from_name(fmt_name.strip())
            if not sep or fmt is None:
                raise SettingsError(f"{name}: expected format=quality pairs, got {item!r}")
            try:
                quality = int(q)
            except ValueError:
                raise SettingsError(f"{name}: quality for {fmt_name} must be an integer") from None
            _check_range(name, quality, 1, 100)
            result[fmt] = quality
        return result


def _check_range(name: str, value: float, lo: float | None, hi: float | None) -> None:
    if lo is not None and value < lo:
        raise SettingsError(f"{name}: must be at least {lo}, got {value}")
    if hi is not None and value > hi:
        raise SettingsError(f"{name}: must be at most {hi}, got {value}")


def parse_bind(name: str, value: str) -> tuple[str, int]:
    """``host:port``, ``:port`` (all interfaces, as imgproxy) or ``[v6]:port``."""
    host, sep, port_text = value.rpartition(":")
    if not sep:
        raise SettingsError(f"{name}: expected host:port, got {value!r}")
    host = host.strip("[]") or "0.0.0.0"
    try:
        port = int(port_text)
    except ValueError:
        raise SettingsError(f"{name}: invalid port in {value!r}") from None
    if not 0 <= port <= 65535:
        raise SettingsError(f"{name}: invalid port in {value!r}")
    return host, port


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    processes: int = 1
    ttl: int = 31536000
    use_etag: bool = True
    use_last_modified: bool = True
    timeout: float = 10.0
    path_prefix: str = ""
    health_check_path: str = ""
    graceful_stop_timeout: float = 20.0
    health_check_cache_tiers: bool = False  # /health fails while a remote cache tier is down
    max_clients: int = 2048  # open connections per process (server/connections.py); 0: no cap
    read_request_timeout: float = 5.0  # seconds to receive a request's head
    keep_alive_timeout: float = 10.0  # seconds an idle keep-alive connection is kept; 0: none
    secret: str = field(default="", repr=False)  # IMGPROXY_SECRET: required Bearer token
    admin_secret: str = field(default="", repr=False)  # IMGPROXY_ADMIN_SECRET: enables /_admin/* (Bearer)
    development_errors: bool = False  # IMGPROXY_DEVELOPMENT_ERRORS_MODE: error bodies say what was wrong
    playground: bool = False  # IMGPROXY_PLAYGROUND: the page at / (loopback-only when a key is set)


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    keys: tuple[bytes, ...] = ()
    salts: tuple[bytes, ...] = ()
    signature_size: int = 32
    trusted_signatures: frozenset[str] = frozenset()
    max_src_resolution: int = 50_000_000
    max_src_file_size: int = DEFAULT_MAX_SRC_FILE_SIZE  # bytes; 0: no cap
    max_animation_frames: int = 100
    max_animation_frame_resolution: int = 0  # pixels; 0: frames of an animation count together
    max_result_dimension: int = 0  # pixels; 0: no limit
    max_result_resolution: int = 100_000_000  # pixels of a result, all frames together
    allow_security_options: bool = False

    @property
    def signing_enabled(self) -> bool:
        return bool(self.keys) and bool(self.salts)


@dataclass(frozen=True, slots=True)
class OptionSettings:
    """Defaults and policy the URL parser and the format negotiation need."""

    quality: int = 80
    format_quality: Mapping[ImageFormat, int] = field(
        default_factory=lambda: {ImageFormat.WEBP: 79, ImageFormat.AVIF: 63, ImageFormat.JXL: 77}
    )
    auto_rotate: bool = True
    strip_metadata: bool = True
    presets: tuple[str, ...] = ()
    auto_webp: bool = False
    auto_avif: bool = False
    enforce_webp: bool = False
    enforce_avif: bool = False
    auto_jxl: bool = False  # IMGPROXY_AUTO_JXL: image/jxl in Accept picks JPEG XL (never without it)
    enforce_jxl: bool = False
    preferred_formats: tuple[ImageFormat, ...] = (ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.GIF)
    client_hints: bool = False  # IMGPROXY_ENABLE_CLIENT_HINTS: DPR / Width headers set dpr and width
    preserve_hdr: bool = False  # IMGPROXY_PRESERVE_HDR: the ``ph`` option's default
    video_thumbnail_second: float | None = (
        None  # IMGPROXY_VIDEO_THUMBNAIL_SECOND: ``vts``' default (None: first keyframe)
    )
    keep_copyright: bool = True
    strip_color_profile: bool = True
    enforce_thumbnail: bool = False
    skip_processing_formats: frozenset[ImageFormat] = frozenset()
    preset_file: tuple[str, ...] = ()  # the lines of IMGPROXY_PRESETS_PATH
    only_presets: bool = False
    allowed_processing_options: frozenset[str] = frozenset()  # empty: every option
    allow_security_options: bool = False
    base_url: str = ""
    url_replacements: tuple[tuple[str, str], ...] = ()  # (wildcard pattern, Go-style replacement)
    arguments_separator: str = ":"

    @property
    def negotiates_format(self) -> bool:
        return any(
            (self.auto_webp, self.auto_avif, self.auto_jxl, self.enforce_webp, self.enforce_avif, self.enforce_jxl)
        )

    @property
    def vary(self) -> str | None:
        """The Vary header every image response carries: what request headers change it."""
        parts = (["Accept"] if self.negotiates_format else []) + (
            ["Sec-CH-DPR", "DPR", "Sec-CH-Width", "Width"] if self.client_hints else []
        )
        return ", ".join(parts) or None


@dataclass(frozen=True, slots=True)
class WatermarkSettings:
    """Where the watermark image comes from; it is decoded once at start-up (processing.watermark)."""

    data: bytes | None = field(default=None, repr=False)  # from IMGPROXY_WATERMARK_DATA or _PATH
    origin: str = ""  # the variable that supplied it, for start-up error messages
    url: str | None = None  # IMGPROXY_WATERMARK_URL, fetched at start-up when no data/path is set
    opacity: float = 1.0

    @property
    def configured(self) -> bool:
        return self.data is not None or self.url is not None


@dataclass(frozen=True, slots=True)
class SourceSettings:
    local_root: str | None = None
    download_timeout: float = 5.0
    max_redirects: int = 10
    user_agent: str = "imgproxy-py"
    allow_loopback: bool = False
    allow_link_local: bool = False
    allow_private: bool = False
    allowed_sources: tuple[str, ...] = ()
    # Decode JPEG/PNG sources (http, s3, local) while they download (server/streaming.py);
    # off: buffer every source whole.
    stream: bool = True
    stream_buffer: int = 1 << 20  # bytes of source held between the download and the decoder


@dataclass(frozen=True, slots=True)
class S3Settings:
    """S3-compatible storage (AWS, MinIO, …): ``s3://`` sources; the connection is shared with other S3 users."""

    enabled: bool = False
    endpoint: str = "https://s3.amazonaws.com"  # scheme://host[:port], nothing else
    region: str = "us-east-1"
    path_style: bool = True
    # Never in reprs, logs or error messages.
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    allowed_buckets: tuple[str, ...] = ()  # empty: every bucket
    denied_buckets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProcessingSettings:
    jpeg_progressive: bool = False
    png_interlaced: bool = False
    webp_effort: int = 4
    avif_speed: int = 8
    jxl_effort: int = 4  # IMGPROXY_JXL_EFFORT, libjxl's 1 (fastest) … 9
    video_thumbnails: bool = False  # IMGPROXY_ENABLE_VIDEO_THUMBNAILS: stills from MP4/MOV/WebM/MKV sources
    max_video_duration: float = 3600.0  # IMGPROXY_MAX_VIDEO_DURATION: seconds; longer clips are refused
    intermediate_cache_size: int = 64 * 1024 * 1024  # bytes per process; 0 switches reuse off
    sanitize_svg: bool = True  # SVG passed through as SVG loses script and external references
    always_rasterize_svg: bool = False  # SVG without a requested format is rasterised, not passed through


@dataclass(frozen=True, slots=True)
class AnalysisSettings:
    """Face detection, perceptual auto-quality and ``f:best`` (imgproxy Pro's names where it has them)."""

    face_detection: bool = True  # IMGPROXY_FACE_DETECTION: use the detector when it is installed
    face_threshold: float = 0.5  # IMGPROXY_FACE_DETECTION_THRESHOLD: minimum confidence, 0..1
    detection_size: int = 512  # IMGPROXY_FACE_DETECTION_SIZE: longest side of the copy the detector sees
    keep_faces_whole: bool = True  # IMGPROXY_KEEP_FACES_WHOLE: any gravity's crop moves to keep faces whole
    autoquality_method: str = "none"  # IMGPROXY_AUTOQUALITY_METHOD: none | dssim | ml
    autoquality_target: float = 0.0025  # IMGPROXY_AUTOQUALITY_TARGET: DSSIM (1/SSIM - 1), our metric's scale
    autoquality_min: int = 30
    autoquality_max: int = 90
    autoquality_allowed_error: float = 0.0003
    autoquality_format_min: Mapping[ImageFormat, int] = field(default_factory=dict)
    autoquality_format_max: Mapping[ImageFormat, int] = field(default_factory=dict)
    best_format_by_default: bool = False  # IMGPROXY_BEST_FORMAT_BY_DEFAULT: no format asked → best
    best_format_max_resolution: float = 0.0  # megapixels; above it the first candidate is taken without trying
    feature_store: bool = True  # IMGPROXY_FEATURE_STORE: keep per-source analysis in the cache tiers
    autoquality_dataset: str = ""  # IMGPROXY_AUTOQUALITY_DATASET: SQLite file of training rows ("": none)
    models_registry: str = ""  # IMGPROXY_MODELS_REGISTRY: model registry folder ("": the shipped model)
    models_poll: float = 5.0  # IMGPROXY_MODELS_POLL_INTERVAL: seconds between checks of the pointer file
    face_latency_budget: float = 0.5  # IMGPROXY_FACE_DETECTION_LATENCY_BUDGET: p95 seconds before the breaker opens
    model_cooldown: float = 30.0  # IMGPROXY_MODEL_BREAKER_COOLDOWN: seconds an open breaker waits before a trial
    model_min_calls: int = 20  # IMGPROXY_MODEL_BREAKER_MIN_CALLS: calls in the window before rates are judged
    # Drift (monitoring/drift.py): the offline evaluation's reference profile file ("": the shipped
    # one, "none": no drift gauges) and the sliding window PSI is computed over.
    model_reference_profile: str = ""  # IMGPROXY_MODEL_REFERENCE_PROFILE
    model_drift_window: int = 5000  # IMGPROXY_MODEL_DRIFT_WINDOW: values per feature in the window
    model_drift_min_values: int = 200  # IMGPROXY_MODEL_DRIFT_MIN_VALUES: values before a PSI is exported
    # A shadow face detector on a sampled share of misses, after the response (monitoring/face_shadow.py).
    face_shadow_sample: float = 0.0  # IMGPROXY_FACE_DETECTION_SHADOW_SAMPLE: share of misses, 0 = off
    face_shadow_size: int = 320  # IMGPROXY_FACE_DETECTION_SHADOW_SIZE: the shadow's input size (px)
    face_shadow_threshold: float = 0.5  # IMGPROXY_FACE_DETECTION_SHADOW_THRESHOLD: default: the serving one


@dataclass(frozen=True, slots=True)
class CacheSettings:
    memory_size: int = 256 * 1024 * 1024  # bytes; 0: no L1
    redis_url: str = field(default="", repr=False)  # may carry a password
    memcached_url: str = ""  # memcached://host:port: the L2 instead of Redis
    s3_bucket: str = ""
    s3_prefix: str = "results/"
    # Connection overrides for the results bucket; None: use the S3 source's (IMGPROXY_S3_*, AWS_*).
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_path_style: bool | None = None
    s3_access_key: str | None = field(default=None, repr=False)
    s3_secret_key: str | None = field(default=None, repr=False)
    ttl: int = 31536000
    stale_if_error: int = 0  # seconds an expired entry may still serve while the source is down
    timeout: float = 0.25  # per remote tier call
    retry_after: float = 5.0  # how long a failed remote tier is bypassed

    @property
    def enabled(self) -> bool:
        return bool(self.memory_size or self.redis_url or self.memcached_url or self.s3_bucket)


@dataclass(frozen=True, slots=True)
class ObservabilitySettings:
    prometheus_bind: tuple[str, int] | None = None
    prometheus_namespace: str = ""
    log_format: str = "pretty"  # pretty | json
    log_level: str = "info"


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    malloc: str = "auto"  # IMGPROXY_MALLOC: auto | jemalloc | glibc
    free_memory_interval: float = 10.0  # seconds between malloc_trim calls (glibc); 0: never
    workers: int = 4
    queue_size: int = 0


@dataclass(frozen=True, slots=True)
class ExperimentSettings:
    """IMGPROXY_EXPERIMENTS as read: the definitions' text, parsed and validated by imgproxy_py.experiments."""

    text: str = ""  # inline JSON, or the file's content
    syntax: str = "json"  # json | yaml (a .yaml/.yml file)
    origin: str = ""  # where it came from, for error messages ("IMGPROXY_EXPERIMENTS" or the file path)


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    options: OptionSettings = field(default_factory=OptionSettings)
    sources: SourceSettings = field(default_factory=SourceSettings)
    s3: S3Settings = field(default_factory=S3Settings)
    processing: ProcessingSettings = field(default_factory=ProcessingSettings)
    workers: WorkerSettings = field(default_factory=WorkerSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
    watermark: WatermarkSettings = field(default_factory=WatermarkSettings)
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    experiments: ExperimentSettings = field(default_factory=ExperimentSettings)
    # Start-up warnings (unknown or unsupported IMGPROXY_* names, an open unsigned server);
    # `imgproxy-py serve` logs them. Not a setting: never part of equality or a cache key.
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        env = _Env(environ)
        settings = cls._read(env)
        strict = env.get_bool("IMGPROXY_STRICT_CONFIG", False)
        names = config_warnings(environ, frozenset(env.read))
        if strict and names:
            raise SettingsError("IMGPROXY_STRICT_CONFIG: " + "; ".join(names))
        return dataclasses.replace(settings, warnings=(*names, *_exposure_warnings(settings)))

    @classmethod
    def _read(cls, env: _Env) -> Settings:
        return cls(
            server=_server(env),
            security=_security(env),
            options=_options(env),
            sources=_sources(env),
            s3=_s3(env),
            processing=_processing(env),
            workers=_workers(env),
            cache=_cache(env),
            observability=_observability(env),
            watermark=_watermark(env),
            analysis=_analysis(env),
            experiments=_experiments(env),
        )


def _server(env: _Env) -> ServerSettings:
    host, port = parse_bind("IMGPROXY_BIND", env.get_str("IMGPROXY_BIND", "127.0.0.1:8080"))
    prefix = env.get_str("IMGPROXY_PATH_PREFIX", "").rstrip("/")
    if prefix and not prefix.startswith("/"):
        prefix = "/" + prefix
    health = env.get_str("IMGPROXY_HEALTH_CHECK_PATH", "")
    if health and not health.startswith("/"):
        raise SettingsError("IMGPROXY_HEALTH_CHECK_PATH: must start with /")
    return ServerSettings(
        host=host,
        port=port,
        processes=env.get_int("IMGPROXY_PROCESSES", 1, min_value=1, max_value=256),
        ttl=env.get_int("IMGPROXY_TTL", 31536000, min_value=0),
        use_etag=env.get_bool("IMGPROXY_USE_ETAG", True),
        use_last_modified=env.get_bool("IMGPROXY_USE_LAST_MODIFIED", True),
        timeout=env.get_float("IMGPROXY_TIMEOUT", 10.0, min_value=0.001),
        path_prefix=prefix,
        health_check_path=health,
        graceful_stop_timeout=env.get_float("IMGPROXY_GRACEFUL_STOP_TIMEOUT", 20.0, min_value=0),
        health_check_cache_tiers=env.get_bool("IMGPROXY_HEALTH_CHECK_CACHE_TIERS", False),
        max_clients=env.get_int("IMGPROXY_MAX_CLIENTS", 2048, min_value=0),
        read_request_timeout=env.get_float("IMGPROXY_READ_REQUEST_TIMEOUT", 5.0, min_value=0.1),
        keep_alive_timeout=env.get_float("IMGPROXY_KEEP_ALIVE_TIMEOUT", 10.0, min_value=0),
        secret=env.get_str("IMGPROXY_SECRET", ""),
        admin_secret=env.get_str("IMGPROXY_ADMIN_SECRET", ""),
        development_errors=env.get_bool("IMGPROXY_DEVELOPMENT_ERRORS_MODE", False),
        playground=env.get_bool("IMGPROXY_PLAYGROUND", False),
    )


def _security(env: _Env) -> SecuritySettings:
    keys = env.hex_list("IMGPROXY_KEY")
    salts = env.hex_list("IMGPROXY_SALT")
    if len(keys) != len(salts):
        raise SettingsError("IMGPROXY_KEY, IMGPROXY_SALT: the key and salt lists must have the same length")
    if any(not k for k in keys) or any(not s for s in salts):
        raise SettingsError("IMGPROXY_KEY, IMGPROXY_SALT: empty values are not allowed")
    return SecuritySettings(
        keys=keys,
        salts=salts,
        signature_size=env.get_int("IMGPROXY_SIGNATURE_SIZE", 32, min_value=1, max_value=32),
        trusted_signatures=frozenset(env.get_list("IMGPROXY_TRUSTED_SIGNATURES")),
        max_src_resolution=round(env.get_float("IMGPROXY_MAX_SRC_RESOLUTION", 50.0, min_value=0.000001) * 1_000_000),
        max_src_file_size=env.get_int("IMGPROXY_MAX_SRC_FILE_SIZE", DEFAULT_MAX_SRC_FILE_SIZE, min_value=0),
        max_animation_frames=env.get_int("IMGPROXY_MAX_ANIMATION_FRAMES", 100, min_value=1),
        max_animation_frame_resolution=round(
            env.get_float("IMGPROXY_MAX_ANIMATION_FRAME_RESOLUTION", 0, min_value=0) * 1_000_000
        ),
        max_result_dimension=env.get_int("IMGPROXY_MAX_RESULT_DIMENSION", 0, min_value=0),
        max_result_resolution=round(
            env.get_float("IMGPROXY_MAX_RESULT_RESOLUTION", 100, min_value=0.000001) * 1_000_000
        ),
        allow_security_options=env.get_bool("IMGPROXY_ALLOW_SECURITY_OPTIONS", False),
    )


def _options(env: _Env) -> OptionSettings:
    defaults = OptionSettings()
    return OptionSettings(
        quality=env.get_int("IMGPROXY_QUALITY", 80, min_value=1, max_value=100),
        format_quality=env.format_quality("IMGPROXY_FORMAT_QUALITY", defaults.format_quality),
        auto_rotate=env.get_bool("IMGPROXY_AUTO_ROTATE", True),
        strip_metadata=env.get_bool("IMGPROXY_STRIP_METADATA", True),
        presets=env.get_list("IMGPROXY_PRESETS", sep=env.get_str("IMGPROXY_PRESETS_SEPARATOR", ",")),
        auto_webp=env.get_bool("IMGPROXY_AUTO_WEBP", env.get_bool("IMGPROXY_ENABLE_WEBP_DETECTION", False)),
        auto_avif=env.get_bool("IMGPROXY_AUTO_AVIF", env.get_bool("IMGPROXY_ENABLE_AVIF_DETECTION", False)),
        enforce_webp=env.get_bool("IMGPROXY_ENFORCE_WEBP", False),
        enforce_avif=env.get_bool("IMGPROXY_ENFORCE_AVIF", False),
        auto_jxl=env.get_bool("IMGPROXY_AUTO_JXL", False),
        enforce_jxl=env.get_bool("IMGPROXY_ENFORCE_JXL", False),
        preferred_formats=env.formats("IMGPROXY_PREFERRED_FORMATS", defaults.preferred_formats),
        client_hints=env.get_bool("IMGPROXY_ENABLE_CLIENT_HINTS", False),
        preserve_hdr=env.get_bool("IMGPROXY_PRESERVE_HDR", False),
        video_thumbnail_second=_video_thumbnail_second(env),
        keep_copyright=env.get_bool("IMGPROXY_KEEP_COPYRIGHT", True),
        strip_color_profile=env.get_bool("IMGPROXY_STRIP_COLOR_PROFILE", True),
        enforce_thumbnail=env.get_bool("IMGPROXY_ENFORCE_THUMBNAIL", False),
        skip_processing_formats=_format_names(env, "IMGPROXY_SKIP_PROCESSING_FORMATS"),
        preset_file=_preset_file(env),
        only_presets=env.get_bool("IMGPROXY_ONLY_PRESETS", False),
        allowed_processing_options=frozenset(env.get_list("IMGPROXY_ALLOWED_PROCESSING_OPTIONS")),
        allow_security_options=env.get_bool("IMGPROXY_ALLOW_SECURITY_OPTIONS", False),
        base_url=env.get_str("IMGPROXY_BASE_URL", ""),
        url_replacements=_url_replacements(env),
        arguments_separator=_arguments_separator(env),
    )


def _video_thumbnail_second(env: _Env) -> float | None:
    """Unset: the first keyframe (imgproxy Pro defaults to second 1; a keyframe costs least)."""
    if env.raw("IMGPROXY_VIDEO_THUMBNAIL_SECOND") is None:
        return None
    return env.get_float("IMGPROXY_VIDEO_THUMBNAIL_SECOND", 0, min_value=0, max_value=1e9)


def _format_names(env: _Env, name: str) -> frozenset[ImageFormat]:
    """Any known format name (unlike the preferred formats, these need not be savable)."""
    result = set()
    for item in env.get_list(name):
        fmt = ImageFormat.from_name(item)
        if fmt is None:
            raise SettingsError(f"{name}: unknown image format {item!r}")
        result.add(fmt)
    return frozenset(result)


def _preset_file(env: _Env) -> tuple[str, ...]:
    """IMGPROXY_PRESETS_PATH: one ``name=options`` per line; read here so a missing file stops start-up."""
    path = env.raw("IMGPROXY_PRESETS_PATH")
    if path is None:
        return ()
    try:
        with open(path, encoding="utf-8") as file:
            return tuple(file.read().splitlines())
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"IMGPROXY_PRESETS_PATH: cannot read {path!r}: {exc}") from None


def _experiments(env: _Env) -> ExperimentSettings:
    """IMGPROXY_EXPERIMENTS: inline JSON (starts with ``{``), else the path of a JSON or YAML file,
    read here so a missing file stops start-up; the definitions are validated by the experiments package."""
    value = env.raw("IMGPROXY_EXPERIMENTS")
    if value is None:
        return ExperimentSettings()
    if value.startswith("{"):
        return ExperimentSettings(value, "json", "IMGPROXY_EXPERIMENTS")
    try:
        with open(value, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"IMGPROXY_EXPERIMENTS: cannot read {value!r}: {exc}") from None
    syntax = "yaml" if value.lower().endswith((".yaml", ".yml")) else "json"
    return ExperimentSettings(text, syntax, f"IMGPROXY_EXPERIMENTS ({value})")


def _url_replacements(env: _Env) -> tuple[tuple[str, str], ...]:
    """``pattern=replacement;…`` (imgproxy's format); each entry is split at its first ``=``."""
    value = env.raw("IMGPROXY_URL_REPLACEMENTS")
    if value is None:
        return ()
    pairs = []
    for item in value.split(";"):
        if not item.strip():
            continue
        pattern, sep, replacement = item.partition("=")
        if not sep:
            raise SettingsError(f"IMGPROXY_URL_REPLACEMENTS: expected pattern=replacement, got {item!r}")
        pairs.append((pattern, replacement))
    return tuple(pairs)


def _arguments_separator(env: _Env) -> str:
    value = env.get_str("IMGPROXY_ARGUMENTS_SEPARATOR", ":")
    if "/" in value:
        raise SettingsError("IMGPROXY_ARGUMENTS_SEPARATOR: must not contain '/', which separates options")
    return value


def _watermark(env: _Env) -> WatermarkSettings:
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
        return WatermarkSettings(data=data, origin="IMGPROXY_WATERMARK_DATA", opacity=opacity)
    if path is not None:
        try:
            with open(path, "rb") as file:
                data = file.read()
        except OSError as exc:
            raise SettingsError(f"IMGPROXY_WATERMARK_PATH: cannot read {path!r}: {exc}") from None
        return WatermarkSettings(data=data, origin="IMGPROXY_WATERMARK_PATH", opacity=opacity)
    if url is not None:
        if not url.startswith(("http://", "https://")):
            raise SettingsError("IMGPROXY_WATERMARK_URL: must be an http:// or https:// URL")
        return WatermarkSettings(url=url, origin="IMGPROXY_WATERMARK_URL", opacity=opacity)
    return WatermarkSettings(opacity=opacity)


def _sources(env: _Env) -> SourceSettings:
    root = env.raw("IMGPROXY_LOCAL_FILESYSTEM_ROOT")
    if root is not None:
        root = os.path.realpath(root)
        if not os.path.isdir(root):
            raise SettingsError("IMGPROXY_LOCAL_FILESYSTEM_ROOT: not an existing directory")
    return SourceSettings(
        local_root=root,
        download_timeout=env.get_float("IMGPROXY_DOWNLOAD_TIMEOUT", 5.0, min_value=0.001),
        max_redirects=env.get_int("IMGPROXY_MAX_REDIRECTS", 10, min_value=0),
        user_agent=env.get_str("IMGPROXY_USER_AGENT", "imgproxy-py"),
        allow_loopback=env.get_bool("IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES", False),
        allow_link_local=env.get_bool("IMGPROXY_ALLOW_LINK_LOCAL_SOURCE_ADDRESSES", False),
        allow_private=env.get_bool("IMGPROXY_ALLOW_PRIVATE_SOURCE_ADDRESSES", False),
        allowed_sources=env.get_list("IMGPROXY_ALLOWED_SOURCES"),
        stream=env.get_bool("IMGPROXY_STREAM_SOURCES", True),
        stream_buffer=env.get_int("IMGPROXY_STREAM_BUFFER_SIZE", 1 << 20, min_value=65536),
    )


_S3_REGION = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?")  # what the minio client accepts


def _s3(env: _Env) -> S3Settings:
    access_key = env.raw("AWS_ACCESS_KEY_ID")
    secret_key = env.raw("AWS_SECRET_ACCESS_KEY")
    session_token = env.raw("AWS_SESSION_TOKEN")
    if (access_key is None) != (secret_key is None):
        raise SettingsError("AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: set both or neither (neither: anonymous access)")
    if session_token is not None and access_key is None:
        raise SettingsError("AWS_SESSION_TOKEN: needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY too")
    region = env.get_str("IMGPROXY_S3_REGION", "us-east-1")
    if not _S3_REGION.fullmatch(region):
        raise SettingsError(f"IMGPROXY_S3_REGION: not a region name: {region!r}")
    return S3Settings(
        enabled=env.get_bool("IMGPROXY_USE_S3", False),
        endpoint=parse_s3_endpoint("IMGPROXY_S3_ENDPOINT", env.get_str("IMGPROXY_S3_ENDPOINT", "")),
        region=region,
        path_style=env.get_bool("IMGPROXY_S3_ENDPOINT_USE_PATH_STYLE", True),
        access_key=access_key,
        secret_key=secret_key,
        session_token=session_token,
        allowed_buckets=env.get_list("IMGPROXY_S3_ALLOWED_BUCKETS"),
        denied_buckets=env.get_list("IMGPROXY_S3_DENIED_BUCKETS"),
    )


def parse_s3_endpoint(name: str, value: str) -> str:
    """``scheme://host[:port]``; empty means AWS. A bare ``host:port`` is the classic imgproxy pitfall, so say so."""
    if not value:
        return "https://s3.amazonaws.com"
    # Echo the value only when it cannot hold credentials.
    shown = "" if "@" in value else f" (got {value!r})"
    if "://" not in value:
        raise SettingsError(f"{name}: needs a scheme, e.g. http://{value.split('/', 1)[0]}{shown}")
    try:
        url = urlsplit(value)
        port = url.port
    except ValueError:
        raise SettingsError(f"{name}: not a valid URL{shown}") from None
    if url.scheme.lower() not in ("http", "https"):
        raise SettingsError(f"{name}: the scheme must be http or https{shown}")
    if url.username is not None or url.password is not None:
        raise SettingsError(f"{name}: credentials belong in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, not the URL")
    if not url.hostname or port == 0:
        raise SettingsError(f"{name}: the host or port is missing{shown}")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise SettingsError(f"{name}: only scheme://host[:port] is allowed, no path or query{shown}")
    return f"{url.scheme.lower()}://{url.netloc}"


def _processing(env: _Env) -> ProcessingSettings:
    return ProcessingSettings(
        jpeg_progressive=env.get_bool("IMGPROXY_JPEG_PROGRESSIVE", False),
        png_interlaced=env.get_bool("IMGPROXY_PNG_INTERLACED", False),
        webp_effort=env.get_int("IMGPROXY_WEBP_EFFORT", 4, min_value=0, max_value=6),
        avif_speed=env.get_int("IMGPROXY_AVIF_SPEED", 8, min_value=0, max_value=9),
        jxl_effort=env.get_int("IMGPROXY_JXL_EFFORT", 4, min_value=1, max_value=9),
        video_thumbnails=env.get_bool("IMGPROXY_ENABLE_VIDEO_THUMBNAILS", False),
        max_video_duration=env.get_float("IMGPROXY_MAX_VIDEO_DURATION", 3600, min_value=0, max_value=1e9),
        intermediate_cache_size=round(
            env.get_float("IMGPROXY_INTERMEDIATE_CACHE_SIZE", 64, min_value=0, max_value=1 << 20) * 1024 * 1024
        ),
        sanitize_svg=env.get_bool("IMGPROXY_SANITIZE_SVG", True),
        always_rasterize_svg=env.get_bool("IMGPROXY_ALWAYS_RASTERIZE_SVG", False),
    )


def _analysis(env: _Env) -> AnalysisSettings:
    method = env.get_str("IMGPROXY_AUTOQUALITY_METHOD", "none")
    if method not in ("none", "dssim", "ml"):
        raise SettingsError(f"IMGPROXY_AUTOQUALITY_METHOD: supported methods are none, dssim and ml, got {method!r}")
    aq_min = env.get_int("IMGPROXY_AUTOQUALITY_MIN", 30, min_value=1, max_value=100)
    aq_max = env.get_int("IMGPROXY_AUTOQUALITY_MAX", 90, min_value=1, max_value=100)
    if aq_min > aq_max:
        raise SettingsError("IMGPROXY_AUTOQUALITY_MIN: must not be above IMGPROXY_AUTOQUALITY_MAX")
    threshold = env.get_float("IMGPROXY_FACE_DETECTION_THRESHOLD", 0.5, min_value=0.01, max_value=1)
    drift_window = env.get_int("IMGPROXY_MODEL_DRIFT_WINDOW", 5000, min_value=10, max_value=1_000_000)
    drift_min = env.get_int("IMGPROXY_MODEL_DRIFT_MIN_VALUES", 200, min_value=2, max_value=1_000_000)
    if drift_min > drift_window:
        raise SettingsError("IMGPROXY_MODEL_DRIFT_MIN_VALUES: must not be above IMGPROXY_MODEL_DRIFT_WINDOW")
    return AnalysisSettings(
        face_detection=env.get_bool("IMGPROXY_FACE_DETECTION", True),
        face_threshold=threshold,
        detection_size=env.get_int("IMGPROXY_FACE_DETECTION_SIZE", 512, min_value=64, max_value=1024),
        keep_faces_whole=env.get_bool("IMGPROXY_KEEP_FACES_WHOLE", True),
        autoquality_method=method,
        autoquality_target=env.get_float("IMGPROXY_AUTOQUALITY_TARGET", 0.0025, min_value=0.0001, max_value=0.9999),
        autoquality_min=aq_min,
        autoquality_max=aq_max,
        autoquality_allowed_error=env.get_float("IMGPROXY_AUTOQUALITY_ALLOWED_ERROR", 0.0003, min_value=0, max_value=1),
        autoquality_format_min=env.format_quality("IMGPROXY_AUTOQUALITY_FORMAT_MIN", {}),
        autoquality_format_max=env.format_quality("IMGPROXY_AUTOQUALITY_FORMAT_MAX", {}),
        best_format_by_default=env.get_bool("IMGPROXY_BEST_FORMAT_BY_DEFAULT", False),
        best_format_max_resolution=env.get_float("IMGPROXY_BEST_FORMAT_MAX_RESOLUTION", 0, min_value=0),
        feature_store=env.get_bool("IMGPROXY_FEATURE_STORE", True),
        autoquality_dataset=env.get_str("IMGPROXY_AUTOQUALITY_DATASET", ""),
        models_registry=env.get_str("IMGPROXY_MODELS_REGISTRY", ""),
        models_poll=env.get_float("IMGPROXY_MODELS_POLL_INTERVAL", 5.0, min_value=0.1, max_value=3600),
        face_latency_budget=env.get_float("IMGPROXY_FACE_DETECTION_LATENCY_BUDGET", 0.5, min_value=0.001),
        model_cooldown=env.get_float("IMGPROXY_MODEL_BREAKER_COOLDOWN", 30.0, min_value=0.1, max_value=86400),
        model_min_calls=env.get_int("IMGPROXY_MODEL_BREAKER_MIN_CALLS", 20, min_value=1, max_value=10000),
        model_reference_profile=env.get_str("IMGPROXY_MODEL_REFERENCE_PROFILE", ""),
        model_drift_window=drift_window,
        model_drift_min_values=drift_min,
        face_shadow_sample=env.get_float("IMGPROXY_FACE_DETECTION_SHADOW_SAMPLE", 0.0, min_value=0, max_value=1),
        face_shadow_size=env.get_int("IMGPROXY_FACE_DETECTION_SHADOW_SIZE", 320, min_value=64, max_value=1024),
        face_shadow_threshold=env.get_float(
            "IMGPROXY_FACE_DETECTION_SHADOW_THRESHOLD", threshold, min_value=0.01, max_value=1
        ),
    )


def _cache(env: _Env) -> CacheSettings:
    redis_url = env.get_str("IMGPROXY_CACHE_REDIS_URL", "")
    schemes = ("redis://", "rediss://", "unix://", "redis+cluster://", "redis+sentinel://")
    if redis_url and not redis_url.startswith(schemes):
        raise SettingsError("IMGPROXY_CACHE_REDIS_URL: expected one of " + ", ".join(schemes) + " URLs")
    if redis_url.startswith(("redis+cluster://", "redis+sentinel://")):
        hosts = redis_url.partition("://")[2].rpartition("@")[2].partition("/")[0]
        if not all(re.fullmatch(r"\[?[^\s/@\]]+\]?:[0-9]{1,5}", h.strip()) for h in hosts.split(",")):
            raise SettingsError("IMGPROXY_CACHE_REDIS_URL: expected host:port[,host:port…] after the scheme")
        if redis_url.startswith("redis+sentinel://") and not redis_url.partition("://")[2].partition("/")[2].strip("/"):
            raise SettingsError("IMGPROXY_CACHE_REDIS_URL: redis+sentinel:// needs the master's name: …/service[/db]")
    memcached_url = env.get_str("IMGPROXY_CACHE_MEMCACHED_URL", "")
    if memcached_url:
        parts = urlsplit(memcached_url)
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise SettingsError("IMGPROXY_CACHE_MEMCACHED_URL: invalid port") from None
        if parts.scheme != "memcached" or not parts.hostname:
            raise SettingsError("IMGPROXY_CACHE_MEMCACHED_URL: expected memcached://host[:port]")
        if redis_url:
            raise SettingsError(
                "IMGPROXY_CACHE_MEMCACHED_URL, IMGPROXY_CACHE_REDIS_URL: set one of them as the L2, not both"
            )
    ttl = env.get_int("IMGPROXY_TTL", 31536000, min_value=0)
    endpoint = env.get_str("IMGPROXY_CACHE_S3_ENDPOINT", "")
    access_key = env.raw("IMGPROXY_CACHE_S3_ACCESS_KEY_ID")
    secret_key = env.raw("IMGPROXY_CACHE_S3_SECRET_ACCESS_KEY")
    if (access_key is None) != (secret_key is None):
        raise SettingsError("IMGPROXY_CACHE_S3_ACCESS_KEY_ID, IMGPROXY_CACHE_S3_SECRET_ACCESS_KEY: set both or neither")
    return CacheSettings(
        memory_size=round(env.get_float("IMGPROXY_CACHE_MEMORY_SIZE", 256, min_value=0) * 1024 * 1024),
        redis_url=redis_url,
        memcached_url=memcached_url,
        s3_bucket=env.get_str("IMGPROXY_CACHE_S3_BUCKET", ""),
        s3_prefix=env.get_str("IMGPROXY_CACHE_S3_PREFIX", "results/"),
        s3_endpoint=parse_s3_endpoint("IMGPROXY_CACHE_S3_ENDPOINT", endpoint) if endpoint else None,
        s3_region=env.raw("IMGPROXY_CACHE_S3_REGION"),
        s3_path_style=(
            env.get_bool("IMGPROXY_CACHE_S3_ENDPOINT_USE_PATH_STYLE", True)
            if env.raw("IMGPROXY_CACHE_S3_ENDPOINT_USE_PATH_STYLE") is not None
            else None
        ),
        s3_access_key=access_key,
        s3_secret_key=secret_key,
        ttl=env.get_int("IMGPROXY_CACHE_TTL", ttl, min_value=0),
        stale_if_error=env.get_int("IMGPROXY_CACHE_STALE_IF_ERROR", 0, min_value=0),
        timeout=env.get_float("IMGPROXY_CACHE_TIMEOUT", 0.25, min_value=0.001, max_value=60),
        retry_after=env.get_float("IMGPROXY_CACHE_RETRY_AFTER", 5.0, min_value=0, max_value=3600),
    )


def _observability(env: _Env) -> ObservabilitySettings:
    bind = env.raw("IMGPROXY_PROMETHEUS_BIND")
    namespace = env.get_str("IMGPROXY_PROMETHEUS_NAMESPACE", "")
    if namespace and not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", namespace):
        raise SettingsError("IMGPROXY_PROMETHEUS_NAMESPACE: letters, digits and _ only")
    log_format = env.get_str("IMGPROXY_LOG_FORMAT", "pretty").lower()
    if log_format not in ("pretty", "structured", "json"):
        raise SettingsError("IMGPROXY_LOG_FORMAT: expected pretty, structured or json")
    log_level = env.get_str("IMGPROXY_LOG_LEVEL", "info").lower()
    if log_level not in ("debug", "info", "warn", "warning", "error"):
        raise SettingsError("IMGPROXY_LOG_LEVEL: expected debug, info, warn or error")
    return ObservabilitySettings(
        prometheus_bind=parse_bind("IMGPROXY_PROMETHEUS_BIND", bind) if bind else None,
        prometheus_namespace=namespace,
        log_format="json" if log_format == "json" else "pretty",
        log_level="warning" if log_level == "warn" else log_level,
    )


def _workers(env: _Env) -> WorkerSettings:
    malloc = env.get_str("IMGPROXY_MALLOC", "auto").lower()
    if malloc not in ("auto", "jemalloc", "glibc", "malloc"):
        raise SettingsError("IMGPROXY_MALLOC: expected auto, jemalloc or glibc")
    return WorkerSettings(
        malloc="glibc" if malloc == "malloc" else malloc,
        free_memory_interval=env.get_float("IMGPROXY_FREE_MEMORY_INTERVAL", 10.0, min_value=0),
        workers=env.get_int("IMGPROXY_WORKERS", 2 * (os.cpu_count() or 1), min_value=1, max_value=1024),
        queue_size=env.get_int("IMGPROXY_REQUESTS_QUEUE_SIZE", 0, min_value=0),
    )


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


def _exposure_warnings(settings: Settings) -> list[str]:
    """An unsigned server reachable beyond this machine: anyone can make it transform anything."""
    if settings.security.signing_enabled or is_loopback_host(settings.server.host):
        return []
    return [
        f"listening on {settings.server.host}:{settings.server.port}, beyond loopback, WITHOUT URL SIGNING: "
        "anyone who can reach it can make it fetch and process any image; set IMGPROXY_KEY and IMGPROXY_SALT "
        "(openssl rand -hex 32) or bind to 127.0.0.1"
    ]


def is_loopback_host(host: str) -> bool:
    """Whether a bind address keeps the server on this machine (shared with the doctor's risk checks)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: may resolve anywhere
