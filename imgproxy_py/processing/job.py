"""One image to process: the source, the options, the negotiated formats, the deadline and
what is already known about the source. The worker thread's cancel token travels in its
context (imgproxy_py.cancel), not here: libvips checks it wherever it evaluates."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from imgproxy_py.analysis.detector import Detection
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.options.model import ProcessingOptions
from imgproxy_py.processing.format_choice import NO_CLIENT_FORMATS, ClientFormats
from imgproxy_py.processing.streamed import StreamedInput


@dataclass(frozen=True, slots=True)
class Known:
    """Analysis stored for this source (the feature store): reused instead of recomputed."""

    faces: tuple[Detection, ...] | None = None  # stored frame; skips the face detector
    qualities: Mapping[str, int] | None = None  # auto-quality choices by "<bucket>:<format>:<params>"


NOTHING_KNOWN = Known()


class ResultSink(Protocol):
    """Where a large result's bytes go while it is encoded, called on the worker thread: ``begin``
    once the pixels are computed (every decode error has happened by then), then ``write`` per
    chunk libvips produces. The complete bytes are still returned in the ProcessResult."""

    def begin(self, fmt: ImageFormat) -> None: ...

    def write(self, chunk: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class Job:
    source: bytes | StreamedInput  # whole bytes, or a JPEG/PNG still downloading (processing/streamed.py)
    options: ProcessingOptions
    client: ClientFormats = NO_CLIENT_FORMATS  # what the Accept header allows
    deadline: float = math.inf  # time.monotonic() value
    source_key: str | None = None  # source identity + version: reuse of decoded intermediates
    known: Known = NOTHING_KNOWN
    output: ResultSink | None = None  # stream a large PNG result here as it is encoded (processing/output.py)
