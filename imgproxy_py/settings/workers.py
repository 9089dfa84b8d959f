"""The libvips worker pool, its queue and the allocator."""

from __future__ import annotations

import os
from dataclasses import dataclass

from imgproxy_py.errors import SettingsError
from imgproxy_py.settings.env import _Env


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    malloc: str = "auto"  # IMGPROXY_MALLOC: auto | jemalloc | glibc
    free_memory_interval: float = 10.0  # seconds between malloc_trim calls (glibc); 0: never
    workers: int = 4
    queue_size: int = 0

    @classmethod
    def from_env(cls, env: _Env) -> WorkerSettings:
        malloc = env.get_str("IMGPROXY_MALLOC", "auto").lower()
        if malloc not in ("auto", "jemalloc", "glibc", "malloc"):
            raise SettingsError("IMGPROXY_MALLOC: expected auto, jemalloc or glibc")
        return cls(
            malloc="glibc" if malloc == "malloc" else malloc,
            free_memory_interval=env.get_float("IMGPROXY_FREE_MEMORY_INTERVAL", 10.0, min_value=0),
            workers=env.get_int("IMGPROXY_WORKERS", 2 * (os.cpu_count() or 1), min_value=1, max_value=1024),
            queue_size=env.get_int("IMGPROXY_REQUESTS_QUEUE_SIZE", 0, min_value=0),
        )
