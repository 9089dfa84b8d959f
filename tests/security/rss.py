"""Peak resident memory of this process around a block of code (Linux /proc)."""

from __future__ import annotations

import re
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


def _status_mb(field: str, pid: int | str = "self") -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            match = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) // 1024 if match else None


def _reset_high_water_mark() -> bool:
    """Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def _maxrss_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


@dataclass
class Peak:
    before_mb: int = 0
    peak_mb: int = 0

    @property
    def growth_mb(self) -> int:
        return max(0, self.peak_mb - self.before_mb)


@contextmanager
def peak_rss() -> Iterator[Peak]:
    """How far the process's resident set rose above where it was, at its highest, inside the block.

    With a resettable VmHWM this is exact; otherwise it is the rise of the lifetime maximum
    (an underestimate when the process once peaked higher).
    """
    peak = Peak()
    current = _status_mb("VmRSS")
    if current is not None and _reset_high_water_mark():
        peak.before_mb = current
        yield peak
        peak.peak_mb = _status_mb("VmHWM") or current
        return
    peak.before_mb = _maxrss_mb()
    yield peak
    peak.peak_mb = _maxrss_mb()


def process_peak_mb(pid: int) -> int | None:
    """Another process's peak RSS so far (VmHWM), or None where /proc cannot tell."""
    return _status_mb("VmHWM", pid)


def process_rss_mb(pid: int) -> int | None:
    """Another process's resident set now (VmRSS), or None where /proc cannot tell."""
    return _status_mb("VmRSS", pid)
