"""The libvips ceiling: the workload's decode -> resize -> encode in a tight in-process loop, no HTTP.

Run in its own process (the orchestrator samples its RSS), once per thread count:

    VIPS_CONCURRENCY=1 python -m benchmarks.ceiling --workload W1 --root DIR --duration 10 --threads 2

Each item is the least libvips work for the operation, as this server (and imgproxy) does it:
open the JPEG from memory with the largest DCT shrink-on-load (8, 4 or 2) that stays above
the target, ``resize`` (lanczos3) to the width, and save with this server's default encoder
settings (JPEG: optimised Huffman tables, baseline, 4:2:0; WebP effort 4; AVIF 8-bit at
effort 1), metadata stripped, the libvips operation cache off. (``thumbnail_buffer`` makes
the same size but costs about 25% more CPU here: it shrinks less on load, for quality.)
Nothing is reused between items: the sources are read into memory once, and W1cold reads
each item's own file. Prints one ``CEILING_JSON {...}`` line: items/s and per-item latency.

The W5 workloads loop over the same libraries the server uses outside libvips: W5-heic
decodes the HEIC with pillow-heif (one decoder thread, as the server) and resizes/saves with
libvips; W5-jxl shrinks on load and resizes with libvips and encodes with imagecodecs' libjxl
(effort 4, distance from quality 77, one thread); W5-video opens the MP4 with PyAV (named
demuxer), decodes the first keyframe to RGB and resizes/saves with libvips.
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.workloads import WORKLOADS, Op

SAVE: dict[str, tuple[str, dict[str, Any]]] = {
    "jpeg": (".jpg", {"optimize_coding": True, "interlace": False, "subsample_mode": "auto", "keep": "none"}),
    "webp": (".webp", {"effort": 4, "keep": "none"}),
    "avif": (".avif", {"compression": "av1", "effort": 1, "bitdepth": 8, "keep": "none"}),
}


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def run(workload: str, root: Path, duration: float, threads: int, warmup: float) -> dict[str, Any]:
    import pyvips

    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.cache_set_max_files(0)
    wl = WORKLOADS[workload]
    ops = wl.ops()
    cold = wl.kind == "cold"
    sources = {} if cold else {op.image: (root / op.image).read_bytes() for op in ops}

    def one(op: Op) -> int:
        data = (root / op.image).read_bytes() if cold else sources[op.image]
        if op.image.endswith((".heic", ".mp4")) or op.fmt == "jxl":
            return _codec_item(pyvips, data, op)
        return len(item(pyvips, data, op))

    counter = itertools.count()
    latencies: list[list[float]] = [[] for _ in range(threads)]
    out_bytes = [0] * threads
    finished = [0.0] * threads

    def loop(slot: int, until: float, record: bool) -> None:
        while time.monotonic() < until:
            op = ops[next(counter) % len(ops)]
            t0 = time.perf_counter()
            size = one(op)
            if record:
                latencies[slot].append(time.perf_counter() - t0)
                out_bytes[slot] += size
        finished[slot] = time.monotonic()

    def phase(seconds: float, record: bool) -> float:
        start = time.monotonic()
        workers = [threading.Thread(target=loop, args=(i, start + seconds, record)) for i in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        return max(finished) - start

    if warmup > 0:
        phase(warmup, record=False)
    cpu0 = time.process_time()
    elapsed = phase(duration, record=True)
    cpu = time.process_time() - cpu0
    flat = sorted(x for lat in latencies for x in lat)
    items = len(flat)
    return {
        "workload": workload,
        "threads": threads,
        "vips_concurrency": pyvips.concurrency_get() if hasattr(pyvips, "concurrency_get") else None,
        "items": items,
        "elapsed_s": elapsed,
        "rate": items / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(flat, 50) * 1e3,
        "p90_ms": percentile(flat, 90) * 1e3,
        "p99_ms": percentile(flat, 99) * 1e3,
        "max_ms": (flat[-1] if flat else 0.0) * 1e3,
        "avg_out_bytes": sum(out_bytes) / items if items else 0,
        "cpu_s": cpu,
    }


def item(pyvips: Any, data: bytes, op: Op) -> bytes:
    """One JPEG/WebP/AVIF item: shrink on load, resize to the width, save (also the floor's, floor_app.py)."""
    img = pyvips.Image.new_from_buffer(data, "", access="sequential")
    ratio = img.width / op.width
    shrink = next((k for k in (8, 4, 2) if ratio >= k), 1)
    if shrink > 1:
        img = pyvips.Image.new_from_buffer(data, "", access="sequential", shrink=shrink)
    img = img.resize(op.width / img.width)
    suffix, options = SAVE[op.fmt]
    return bytes(img.write_to_buffer(suffix, Q=op.quality, **options))


def _codec_item(pyvips: Any, data: bytes, op: Op) -> int:
    """One W5 item: the codec library for the part libvips cannot do, libvips for the rest."""
    import io

    import numpy as np

    if op.image.endswith(".heic"):
        import pillow_heif

        pillow_heif.options.DECODE_THREADS = 1
        heif = pillow_heif.open_heif(io.BytesIO(data))
        w, h = heif.size
        rows = np.frombuffer(heif.data, np.uint8).reshape(h, heif.stride)[:, : w * 3]  # rows may be padded
        img = pyvips.Image.new_from_memory(np.ascontiguousarray(rows), w, h, 3, "uchar")
    elif op.image.endswith(".mp4"):
        import av

        box: Any = av.open(io.BytesIO(data), format="mov")
        with box:
            stream = box.streams.video[0]
            stream.thread_type = "SLICE"  # as the server: no frame threads decoding ahead
            frame = next(box.decode(stream))
            rgb = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
        img = pyvips.Image.new_from_memory(rgb, rgb.shape[1], rgb.shape[0], 3, "uchar")
    else:  # JPEG -> JPEG XL
        img = pyvips.Image.new_from_buffer(data, "", access="sequential")
        shrink = next((k for k in (8, 4, 2) if img.width / op.width >= k), 1)
        if shrink > 1:
            img = pyvips.Image.new_from_buffer(data, "", access="sequential", shrink=shrink)
    img = img.resize(op.width / img.width)
    if op.fmt != "jxl":
        suffix, options = SAVE[op.fmt]
        return len(img.write_to_buffer(suffix, Q=op.quality, **options))
    import imagecodecs

    arr = np.frombuffer(img.write_to_memory(), np.uint8).reshape(img.height, img.width, img.bands)
    distance = 0.1 + (100 - op.quality) * 0.09
    return len(imagecodecs.jpegxl_encode(arr, effort=4, distance=distance, numthreads=1))


def main() -> None:
    parser = argparse.ArgumentParser(description="libvips ceiling for one workload and thread count")
    choices = [name for name, wl in WORKLOADS.items() if "ceiling" in wl.systems]
    parser.add_argument("--workload", required=True, choices=choices)
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    result = run(args.workload, args.root, args.duration, args.threads, args.warmup)
    print("CEILING_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
