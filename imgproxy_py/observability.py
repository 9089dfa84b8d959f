"""Metrics (imgproxy's Prometheus names), one log line per request, and the request record.

Each request gets a RequestRecord in a context variable; the handler fills in what only it
knows (cache tier, span timings, source and result sizes) and the middleware logs and counts
it when the response is done. Tasks started by the request (the coalesced transform) copy
the context, so their spans land on the record of the request that led them.

Metrics are only counted when IMGPROXY_PROMETHEUS_BIND gives them a listener. With several
server processes, prometheus-client's multiprocess mode aggregates every process's values
(PROMETHEUS_MULTIPROC_DIR, set by the CLI before anything imports prometheus_client; the
listener runs in the supervising process); one process keeps them in memory, which costs
a fraction per update.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from imgproxy_py.cache.status import CacheStatus
from imgproxy_py.errors import ClientClosedError

CLIENT_CLOSED = ClientClosedError.status_code  # 499: counted by status, logged at info, not an error
SPANS = ("queue", "downloading_source_image", "processing_image", "streaming_image")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    method: str
    raw_path: str  # as received; redact_path() before it goes anywhere
    started: float = field(default_factory=time.monotonic)
    status: int = 0
    cache: CacheStatus | None = None
    error: str = ""  # error category (errors_total{type})
    detail: str = ""  # the internal error message (never sent to the client)
    source_bytes: int = 0
    result_bytes: int = 0
    analysis: str = ""  # e.g. "faces:detected" / "faces:stored" (the feature store had them)
    spans: dict[str, float] = field(default_factory=dict)
    experiment: str = ""  # "name=arm" when an experiment applied (imgproxy_py.experiments)
    after: list[Callable[[], None]] | None = None  # run once the response is sent (after_response)


SENT: list[Callable[[], None]] = []  # ``after`` of a record whose response is done: run callbacks at once

current_record: ContextVar[RequestRecord | None] = ContextVar("imgproxy_request_record", default=None)


class span:  # lower-case: used as ``with span("queue"):``, like the function it was
    """Time a span of the current request (no-op outside a request).

    A class, not a ``@contextmanager`` generator: a cold miss enters several spans, and a
    generator-based context manager costs the event loop a few times more per use.
    """

    __slots__ = ("name", "record", "started")

    def __init__(self, name: str) -> None:
        self.name = name
        self.record = current_record.get()
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        if self.record is not None:
            _add_span(self.record, self.name, time.monotonic() - self.started)


def add_span(name: str, seconds: float) -> None:
    """Add ``seconds`` to a span of the current request, timed elsewhere (on a worker thread)."""
    record = current_record.get()
    if record is not None:
        _add_span(record, name, seconds)


def _add_span(record: RequestRecord, name: str, seconds: float) -> None:
    spans = record.spans
    spans[name] = spans.get(name, 0.0) + seconds


def after_response(fn: Callable[[], None]) -> None:
    """Run ``fn`` (cheap, on the event loop) once the current request's response has been sent:
    monitoring that must not delay or touch the answer. Outside a request, or after its
    response, it runs now."""
    record = current_record.get()
    if record is None or record.after is SENT:
        _run(fn)
    elif record.after is None:
        record.after = [fn]
    else:
        record.after.append(fn)


def run_after(callbacks: list[Callable[[], None]]) -> None:
    """What the middleware calls with a record's ``after`` once its response is done (having
    set ``after`` to ``SENT``, so a callback queued later runs at once)."""
    for fn in callbacks:
        _run(fn)


def _run(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # monitoring never fails a request (or the ones after it)
        logging.getLogger("imgproxy_py.models").exception("after-response monitoring failed")


def note(**values: Any) -> None:
    """Set fields on the current request's record."""
    record = current_record.get()
    if record is not None:
        for key, value in values.items():
            setattr(record, key, value)


class Metrics:
    """Every metric the server exports, registered on one registry (one per app instance)."""

    def __init__(self, namespace: str = "", registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        ns = namespace
        reg = self.registry
        self.requests = Counter("requests_total", "Requests served", namespace=ns, registry=reg)
        self.status_codes = Counter("status_codes_total", "Responses by status", ["status"], namespace=ns, registry=reg)
        self.errors = Counter("errors_total", "Errors by type", ["type"], namespace=ns, registry=reg)
        self.duration = Histogram(
            "request_duration_seconds", "Request latency", namespace=ns, registry=reg, buckets=_LATENCY_BUCKETS
        )
        self.span_duration = Histogram(
            "request_span_duration_seconds",
            "Time spent in each part of a request",
            ["span"],
            namespace=ns,
            registry=reg,
            buckets=_LATENCY_BUCKETS,
        )
        self.requests_in_progress = Gauge(
            "requests_in_progress", "Requests being served", namespace=ns, registry=reg, multiprocess_mode="livesum"
        )
        self.images_in_progress = Gauge(
            "images_in_progress", "Images being processed", namespace=ns, registry=reg, multiprocess_mode="livesum"
        )
        self.workers = Gauge(
            "workers", "Image workers configured", namespace=ns, registry=reg, multiprocess_mode="livesum"
        )
        self.vips_memory = Gauge(
            "vips_memory_bytes", "Memory libvips has allocated", namespace=ns, registry=reg, multiprocess_mode="livesum"
        )
        self.vips_max_memory = Gauge(
            "vips_max_memory_bytes",
            "libvips allocation high-water mark",
            namespace=ns,
            registry=reg,
            multiprocess_mode="max",
        )
        self.cache_hits = Counter("cache_hits_total", "Result cache hits by tier", ["tier"], namespace=ns, registry=reg)
        self.cache_misses = Counter("cache_misses_total", "Result cache misses", namespace=ns, registry=reg)
        self.coalesced = Counter(
            "coalesced_requests_total", "Requests that waited for another's transform", namespace=ns, registry=reg
        )
        self.transforms = Counter("transforms_total", "Images processed", namespace=ns, registry=reg)
        self.source_bytes = Counter("source_bytes_total", "Bytes downloaded from sources", namespace=ns, registry=reg)
        self.result_bytes = Counter("result_bytes_total", "Image bytes sent", namespace=ns, registry=reg)
        self.face_detections = Counter(
            "face_detections_total", "Images the face detector ran on", namespace=ns, registry=reg
        )
        self.face_detection_duration = Histogram(
            "face_detection_seconds", "Face detection time", namespace=ns, registry=reg, buckets=_LATENCY_BUCKETS
        )
        self.feature_store = Counter(
            "feature_store_total", "Feature store reads by result", ["result"], namespace=ns, registry=reg
        )
        self.queue_rejections = Counter(
            "queue_rejections_total", "Requests refused because the queue was full", namespace=ns, registry=reg
        )

        # Per experiment arm (labels experiment, arm). A mean and its confidence interval need a
        # count, a sum and a sum of squares; `imgproxy-py experiments report` reads exactly these.
        arm = ["experiment", "arm"]
        self.arm_share = Gauge(
            "experiment_arm_share",
            "Configured traffic share of an arm (percent)",
            arm,
            namespace=ns,
            registry=reg,
            multiprocess_mode="max",
        )
        self.arm_counters = {
            attr: Counter(f"experiment_{name}_total", doc, arm, namespace=ns, registry=reg)
            for attr, name, doc in _ARM_COUNTERS
        }
        self._children: dict[tuple[str, str], Any] = {}
        self._arms: dict[str, _ArmTally] = {}
        self._arms_flush_scheduled = False

    def _child(self, metric: Any, label: str) -> Any:
        """Labelled children, looked up once: ``labels()`` costs more than the increment."""
        key = (metric._name, label)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(label)
        return child

    def flush_arms(self) -> None:
        """Add the arms' tallies to their counters (a fifth of a second after the first request:
        a plain attribute increment per request instead of five counter updates on the hit path)."""
        self._arms_flush_scheduled = False
        for label, tally in self._arms.items():
            if not tally.requests:
                continue
            name, _, arm = label.partition("=")
            for attr, counter in self.arm_counters.items():
                value = getattr(tally, attr)
                if value:
                    counter.labels(name, arm).inc(value)
                    setattr(tally, attr, 0)

    def observe(self, record: RequestRecord, duration: float) -> None:
        self.requests.inc()
        self._child(self.status_codes, str(record.status)).inc()
        self.duration.observe(duration)
        if record.error and record.status != CLIENT_CLOSED:  # a client hanging up is no error of ours
            self._child(self.errors, record.error).inc()
            if record.error == "queue":
                self.queue_rejections.inc()
        for name, seconds in record.spans.items():
            self._child(self.span_duration, name).observe(seconds)
        cache = record.cache
        if cache is not None:
            if cache.tier is not None:
                self._child(self.cache_hits, cache.tier).inc()
            elif cache is CacheStatus.HIT_COALESCED:
                self.coalesced.inc()
            elif cache is CacheStatus.MISS:
                self.cache_misses.inc()
        if record.source_bytes:
            self.source_bytes.inc(record.source_bytes)
        if record.result_bytes:
            self.result_bytes.inc(record.result_bytes)
        if record.experiment:
            self._observe_arm(record)

    def _observe_arm(self, record: RequestRecord) -> None:
        tally = self._arms.get(record.experiment)
        if tally is None:
            tally = self._arms[record.experiment] = _ArmTally()
        tally.requests += 1
        if record.error and record.status != CLIENT_CLOSED:
            tally.errors += 1
        if record.cache is not None and record.cache.tier is not None:
            tally.cache_hits += 1
        size = record.result_bytes
        if size:
            tally.results += 1
            tally.result_bytes += size
            tally.result_bytes_squared += size * size
        processing = record.spans.get("processing_image")
        if processing is not None:
            tally.processed += 1
            tally.processing_seconds += processing
            tally.processing_seconds_squared += processing * processing
        if not self._arms_flush_scheduled:
            try:
                asyncio.get_running_loop().call_later(0.2, self.flush_arms)
                self._arms_flush_scheduled = True
            except RuntimeError:  # no loop (direct use): count now
                self.flush_arms()


# (tally field, metric name without _total, help): what the report needs per arm.
_ARM_COUNTERS = (
    ("requests", "requests", "Requests by experiment arm"),
    ("errors", "errors", "Errors by experiment arm"),
    ("cache_hits", "cache_hits", "Result cache hits by experiment arm"),
    ("results", "results", "Responses with image bytes by experiment arm"),
    ("result_bytes", "result_bytes", "Image bytes sent by experiment arm"),
    ("result_bytes_squared", "result_bytes_squared", "Sum of squared response sizes by experiment arm"),
    ("processed", "processed", "Images processed by experiment arm"),
    ("processing_seconds", "processing_seconds", "Image processing time by experiment arm"),
    ("processing_seconds_squared", "processing_seconds_squared", "Sum of squared processing times by arm"),
)


@dataclass(slots=True)
class _ArmTally:
    """One arm's counts since the last flush into its counters."""

    requests: int = 0
    errors: int = 0
    cache_hits: int = 0
    results: int = 0
    result_bytes: int = 0
    result_bytes_squared: int = 0
    processed: int = 0
    processing_seconds: float = 0.0
    processing_seconds_squared: float = 0.0


# --- logging -----------------------------------------------------------------------------

_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Patterns run on the percent-decoded text (see _decoded): an encoding cannot hide a secret.
# userinfo in a URL's authority: "scheme://user:pass@" (also "scheme:/", as CDNs mangle it)
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*:/{1,2})[^/?#@\s]*@")
# token-like query parameters; the value runs to the next parameter (it may hold '/' or '@')
_QUERY_SECRETS = re.compile(
    r"([?&;][^=&?#;/]*(?:token|sig|key|secret|passw|auth|cred)[^=&?#;/]*=)[^&#;\s]*", re.IGNORECASE
)
_BASE64_SOURCE = re.compile(r"[A-Za-z0-9_-]{8,}={0,2}")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


def valid_request_id(value: str | None) -> str | None:
    return value if value and _REQUEST_ID.fullmatch(value) else None


@functools.lru_cache(maxsize=4096)
def redact_path(raw_path: str, prefix: str = "") -> str:
    """The request path for logs: the signature segment masked, credentials in source URLs removed.

    Memoised: a cache hit repeats its path, and the patterns cost more than serving the hit.
    """
    path = raw_path[len(prefix) :] if prefix and raw_path.startswith(prefix) else raw_path
    _, sep, rest = path.lstrip("/").partition("/")
    return _redact_base64(redact_text(f"/-/{rest}" if sep else path))


def redact_text(text: str) -> str:
    """``text`` (a path, an error detail) as is, or percent-decoded with URL credentials masked.

    The patterns run on the decoded form, which is what makes them hold for any encoding
    (``%3D``, ``%253D``, ``%40``…); control characters are escaped so a line stays one line.
    """
    decoded = _decoded(text)
    masked = _QUERY_SECRETS.sub(r"\1***", _USERINFO.sub(r"\1***@", decoded))
    return _UNPRINTABLE.sub(lambda m: f"%{ord(m.group()):02X}", masked if masked != decoded else text)


def _decoded(text: str, rounds: int = 4) -> str:
    """Percent-decoded until stable (a double-encoded URL is decoded twice), at most ``rounds`` times."""
    for _ in range(rounds):
        decoded = unquote(text, errors="replace")
        if decoded == text:
            break
        text = decoded
    return text


def _redact_base64(path: str) -> str:
    """A base64-encoded source URL hides its credentials from the patterns above: decode to check.

    The base64 may be split by '/' anywhere (as imgproxy allows), so every tail of the path
    after the options is tried joined; one that decodes to a URL with credentials is replaced.
    """
    segments = path.split("/")
    first = next((i for i, segment in enumerate(segments) if i >= 2 and ":" not in segment), None)
    if first is None or segments[first] == "plain":
        return path
    for start in range(first, len(segments)):
        joined = "".join(segments[start:]).split(".", 1)[0].split("@", 1)[0]
        if not _BASE64_SOURCE.fullmatch(joined):
            continue
        text = joined.rstrip("=")
        try:
            decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8", "replace")
        except ValueError:
            continue
        plain = _decoded(decoded)
        if _USERINFO.search(plain) or _QUERY_SECRETS.search(plain):
            return "/".join([*segments[:start], "<source with credentials>"])
    return path


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update(fields)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, separators=(",", ":"), default=str)


class PrettyFormatter(logging.Formatter):
    """``time LEVEL logger: message``, one line per record: a multi-line message (libvips
    warnings, tracebacks) has its line breaks escaped, so a record never spans lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).rstrip("\n").replace("\r", "\\r").replace("\n", "\\n")


def configure_logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
        logging.Formatter.converter = time.gmtime
    else:
        handler.setFormatter(PrettyFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("pyvips").setLevel(logging.WARNING)  # libvips' chatter is not our log
    # Client libraries log full source URLs, credentials included, at INFO: keep them quiet.
    for name in ("httpx", "httpcore", "urllib3", "minio", "redis"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class AccessLog:
    """One line per request, buffered: formatted here and written in batches.

    Python's logging machinery costs more than serving a cache hit, so access lines bypass
    it: they are appended to a buffer that is written with one syscall when it fills or a
    fifth of a second after the first unwritten line, whichever comes first.
    """

    def __init__(self, fmt: str = "pretty", level: str = "info", fd: int = 1) -> None:
        self.json = fmt == "json"
        self.min_level = logging.getLevelName(level.upper()) if level else logging.INFO
        self.fd = fd
        self._buffer: list[str] = []
        self._size = 0
        self._scheduled = False
        self._second = -1  # the wall-clock second the stamps below were made for
        self._stamps = ("", "")
        self._pid = os.getpid()

    def _now(self) -> tuple[str, str]:
        """(local, UTC ISO) time stamps, formatted once per second, not per line."""
        now = time.time()
        if int(now) != self._second:
            self._second = int(now)
            self._stamps = (
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)),
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            )
        return self._stamps

    def write(self, record: RequestRecord, duration: float, prefix: str = "") -> None:
        status = record.status
        if status >= 500:
            level = logging.ERROR
        elif status >= 400 and status != CLIENT_CLOSED:
            level = logging.WARNING
        else:
            level = logging.INFO
        if level < self.min_level:
            return
        line = self._format(record, duration, prefix, level)
        self._buffer.append(line)
        self._size += len(line)
        if self._size >= 64 * 1024:
            self.flush()
        elif not self._scheduled:
            try:
                asyncio.get_running_loop().call_later(0.2, self.flush)
                self._scheduled = True
            except RuntimeError:  # no loop (direct use): write now
                self.flush()

    def _format(self, record: RequestRecord, duration: float, prefix: str, level: int) -> str:
        path = redact_path(record.raw_path, prefix)
        ms = round(duration * 1000, 2)
        if not self.json:
            stamp = self._now()[0]
            extra = f" error={record.error}" if record.error else ""
            if record.analysis:
                extra += f" analysis={record.analysis}"
            if record.experiment:
                extra += f" experiment={record.experiment}"
            return (
                f"{stamp} {logging.getLevelName(level)} access: {record.method} {path} {record.status} "
                f"{ms}ms {record.cache.value if record.cache is not None else '-'} id={record.request_id}{extra}\n"
            )
        fields: dict[str, Any] = {
            "time": self._now()[1],
            "level": logging.getLevelName(level).lower(),
            "msg": "request",
            "request_id": record.request_id,
            "method": record.method,
            "path": path,
            "status": record.status,
            "duration_ms": ms,
        }
        if record.cache is not None:
            fields["cache"] = record.cache.value
        if record.source_bytes:
            fields["source_bytes"] = record.source_bytes
        if record.result_bytes:
            fields["result_bytes"] = record.result_bytes
        if record.analysis:
            fields["analysis"] = record.analysis
        if record.spans:
            fields["spans_ms"] = {k: round(v * 1000, 2) for k, v in record.spans.items()}
        if record.experiment:
            fields["experiment"] = record.experiment
        if record.error:
            fields["error"] = record.error
            fields["detail"] = redact_text(record.detail)[:300]
        fields["pid"] = self._pid
        return json.dumps(fields, separators=(",", ":")) + "\n"

    def flush(self) -> None:
        self._scheduled = False
        if not self._buffer:
            return
        data = "".join(self._buffer).encode("utf-8", "replace")
        self._buffer.clear()
        self._size = 0
        try:
            while data:
                written = os.write(self.fd, data)
                data = data[written:]
        except OSError:
            pass  # a closed or full stdout must not take requests down


def start_metrics_server(host: str, port: int, registry: CollectorRegistry | None = None) -> None:
    """Serve /metrics on its own listener (a daemon thread): ``registry`` (the one server
    process's), else every server process's values aggregated (multiprocess mode)."""
    from prometheus_client import multiprocess, start_http_server

    if registry is None:
        registry = CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=host, registry=registry)
