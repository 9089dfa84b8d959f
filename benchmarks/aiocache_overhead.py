"""Per-call cost of aiocache over its own client (aiomcache) and of a network round trip.

Starts a real memcached on loopback, then times N sequential GETs of a 20 kB value three ways:
aiomcache directly, aiocache's MemcachedCache (NullSerializer, raw bytes, its per-call
timeout on and off). ``python -m benchmarks.aiocache_overhead [N]``; numbers in deploy/CAPACITY.md.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiomcache
from aiocache import Cache
from aiocache.serializers import NullSerializer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _per_call(n: int, fn: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await fn()
    return (time.perf_counter() - start) / n * 1e6


async def main(n: int) -> None:
    binary = shutil.which("memcached")
    if binary is None:
        raise SystemExit("memcached is not installed (apt-get install memcached)")
    port = _free_port()
    as_root = ["-u", "nobody"] if os.geteuid() == 0 else []  # memcached refuses to run as root
    proc = subprocess.Popen([binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", *as_root])
    try:
        await asyncio.sleep(0.3)
        value = b"x" * 20_000
        direct = aiomcache.Client("127.0.0.1", port)
        await direct.set(b"k", value)
        with_timeout = Cache(Cache.MEMCACHED, endpoint="127.0.0.1", port=port, serializer=NullSerializer(encoding=None))
        no_timeout = Cache(
            Cache.MEMCACHED, endpoint="127.0.0.1", port=port, serializer=NullSerializer(encoding=None), timeout=None
        )
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "aiomcache.Client.get": lambda: direct.get(b"k"),
            "aiocache MemcachedCache.get (timeout=5, default)": lambda: with_timeout.get("k"),
            "aiocache MemcachedCache.get (timeout=None)": lambda: no_timeout.get("k"),
        }
        samples: dict[str, list[float]] = {label: [] for label in calls}
        for _ in range(5):  # interleaved rounds: a busy machine shifts all three alike; keep each one's best
            for label, fn in calls.items():
                samples[label].append(await _per_call(n // 5, fn))
        best = {label: min(values) for label, values in samples.items()}
        for label, per_call in best.items():
            print(f"{label:<50} {per_call:8.1f} µs/call")
        base = best["aiomcache.Client.get"]
        print(
            "aiocache overhead per call: "
            f"{best['aiocache MemcachedCache.get (timeout=5, default)'] - base:+.1f} µs with its timeout, "
            f"{best['aiocache MemcachedCache.get (timeout=None)'] - base:+.1f} µs without"
        )
        await direct.close()
        await with_timeout.close()
        await no_timeout.close()
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000))
