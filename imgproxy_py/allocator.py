"""Keep the process's memory from creeping: the allocator settings libvips servers need.

glibc's malloc gives every thread its own arenas and rarely returns freed pages, so a
long-running multithreaded libvips process grows by fragmentation, not leaks (measured:
`benchmarks/soak.py`, 3000 mixed requests: glibc +190 MB, jemalloc flat). The CLI prefers
jemalloc when the library is installed (IMGPROXY_MALLOC=jemalloc|glibc|auto, imgproxy's
docker image has the same switch); with glibc, arenas are capped and freed memory is handed
back periodically with malloc_trim, as imgproxy does every IMGPROXY_FREE_MEMORY_INTERVAL.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from collections.abc import Sequence

JEMALLOC_PATHS = (
    "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
    "/usr/lib64/libjemalloc.so.2",
    "/usr/local/lib/libjemalloc.so.2",
)
JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000,narenas:4"
_M_ARENA_MAX = -8


def jemalloc_path() -> str | None:
    return next((p for p in JEMALLOC_PATHS if os.path.exists(p)), None)


def using_jemalloc() -> bool:
    return "jemalloc" in os.environ.get("LD_PRELOAD", "")


def reexec_with_jemalloc(mode: str, argv: Sequence[str]) -> None:
    """Replace this process with itself under jemalloc, when asked and possible (never returns then)."""
    if mode == "glibc" or using_jemalloc() or os.environ.get("IMGPROXY_PY_NO_REEXEC"):
        return
    path = jemalloc_path()
    if path is None:
        if mode == "jemalloc":
            print("imgproxy-py: IMGPROXY_MALLOC=jemalloc but libjemalloc.so.2 was not found", file=sys.stderr)
        return
    env = dict(os.environ)
    env["LD_PRELOAD"] = f"{path} {env['LD_PRELOAD']}".strip() if env.get("LD_PRELOAD") else path
    env.setdefault("MALLOC_CONF", JEMALLOC_CONF)
    env["IMGPROXY_PY_NO_REEXEC"] = "1"
    os.execve(sys.executable, [sys.executable, "-m", "imgproxy_py", *argv], env)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def tune_glibc(arena_max: int = 2) -> None:
    """Cap glibc's malloc arenas (before the worker threads start); no-op under jemalloc."""
    libc = _libc()
    if libc is not None and not using_jemalloc() and hasattr(libc, "mallopt"):
        libc.mallopt(_M_ARENA_MAX, arena_max)


def trim() -> None:
    """Hand freed heap pages back to the OS (glibc); no-op elsewhere."""
    libc = _libc()
    if libc is not None and not using_jemalloc() and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
