"""Cancellation that reaches into libvips: a per-transform token read from a context variable.

The server sets a token for each transform; the worker thread inherits it (WorkerPool.run
copies the context), and the libvips evaluation polls it from its progress callback and
kills itself once the deadline passes or every client waiting for the result has gone.
Checking only between pipeline steps would miss the one step that takes the time: the save.
"""

from __future__ import annotations

import math
import time
from contextvars import ContextVar
from dataclasses import dataclass

from imgproxy_py.errors import ClientClosedError, ImgproxyError, RequestTimeoutError


@dataclass(slots=True)
class CancelToken:
    deadline: float = math.inf  # time.monotonic() value
    cancelled: bool = False  # set from the event loop; read from worker threads (a plain bool is enough)

    def should_stop(self) -> bool:
        return self.cancelled or time.monotonic() > self.deadline

    def error(self) -> ImgproxyError:
        if self.cancelled:
            return ClientClosedError("every client waiting for this image went away")
        return RequestTimeoutError("processing deadline exceeded")


current_token: ContextVar[CancelToken | None] = ContextVar("imgproxy_cancel_token", default=None)
