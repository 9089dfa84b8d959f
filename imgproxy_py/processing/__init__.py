"""Image processing: a ``Processor`` built once at start-up runs each ``Job`` on a worker thread.

processor.py (entry and header checks) → pipeline.py (the fixed step order, steps/) →
output.py (format candidates, auto-quality, encode). See the README's layer map.
"""

from __future__ import annotations

from imgproxy_py.processing.analysers import NO_ANALYSERS, Analysers
from imgproxy_py.processing.configuration import ProcessingConfig
from imgproxy_py.processing.job import NOTHING_KNOWN, Job, Known
from imgproxy_py.processing.limits import Limits
from imgproxy_py.processing.output import ProcessResult
from imgproxy_py.processing.processor import MAX_JPEG_SCANS, Processor, skips_processing
from imgproxy_py.processing.vips import LOADABLE

__all__ = [
    "LOADABLE",
    "MAX_JPEG_SCANS",
    "NOTHING_KNOWN",
    "NO_ANALYSERS",
    "Analysers",
    "Job",
    "Known",
    "Limits",
    "ProcessResult",
    "ProcessingConfig",
    "Processor",
    "skips_processing",
]
