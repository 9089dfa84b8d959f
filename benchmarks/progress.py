"""Progress bars for the long-running commands (benchmarks, fuzzing, soak), on stderr.

tqdm draws them (a well-kept library rather than hand-written carriage returns); with
``disable=None`` it stays silent when stderr is not a terminal (CI logs, the test suite).
Messages go through ``say`` so they print above the bar instead of breaking it.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def bar(total: float, desc: str, unit: str = "it") -> tqdm[Any]:
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=None, dynamic_ncols=True, leave=True)


def say(message: str) -> None:
    tqdm.write(message, file=sys.stderr)
