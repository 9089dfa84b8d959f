"""Processing's own cost on a cold miss: ``Processor.process`` against the bare pyvips item, no HTTP.

    VIPS_CONCURRENCY=1 python -m benchmarks.processing_overhead [--items 60] [--rounds 3] [--small] [--profile]

W1cold's operation (benchmarks/workloads.py): the benchmark photo, byte-distinct per item
(a JPEG comment, as W1cold's files), fit to a width from W1_WIDTHS, JPEG q80. Each round
times the processor and then the ceiling's item (benchmarks/ceiling.py: shrink-on-load,
resize, save) over the same items on one thread; CPU per item is the comparable number on a
shared machine (wall clock follows the neighbours). ``--small`` uses a 300-pixel source, so
libvips' share is small and what is left is the per-request Python work; ``--profile``
prints cProfile's top functions for the processor loop.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.workloads import PHOTO, W1_WIDTHS
from imgproxy_py.options.parser import Parser
from imgproxy_py.processing import Job, Processor, vips
from imgproxy_py.settings import Settings

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "images"
SAVE = {"Q": 80, "optimize_coding": True, "interlace": False, "subsample_mode": "auto", "keep": "none"}


def _distinct(data: bytes, count: int) -> list[bytes]:
    """``count`` copies that differ in a JPEG comment segment right after SOI."""
    return [data[:2] + b"\xff\xfe\x00\x08" + i.to_bytes(6, "big") + data[2:] for i in range(count)]


def bare_item(data: bytes, width: int) -> int:
    img = vips.Image.new_from_buffer(data, "", access="sequential")
    shrink = next((k for k in (8, 4, 2) if img.width / width >= k), 1)
    if shrink > 1:
        img = vips.Image.new_from_buffer(data, "", access="sequential", shrink=shrink)
    return len(img.resize(width / img.width).write_to_buffer(".jpg", **SAVE))


def per_item(run: Callable[[int], int], count: int) -> tuple[float, float]:
    """(wall ms, CPU ms) per item."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(count):
        run(i)
    return (time.perf_counter() - wall) / count * 1e3, (time.process_time() - cpu) / count * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="a 300-pixel source: the per-request overhead")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    vips.init()
    photo = (FIXTURES / PHOTO).read_bytes()
    widths = list(W1_WIDTHS)
    if args.small:
        photo = bytes(vips.Image.new_from_buffer(photo, "").thumbnail_image(300).write_to_buffer(".jpg", Q=90))
        widths = [64 + w % 200 for w in widths]
    count = args.items
    sources = _distinct(photo, count)
    settings = Settings.from_env({})
    url = Parser(settings.options)
    options = [url.parse(f"/rs:fit:{w}:0/q:80/plain/local:///x.jpg@jpg").options for w in widths[:count]]
    processor = Processor.from_settings(settings)

    def ours(i: int) -> int:
        return len(processor.process(Job(sources[i], options[i])).data)

    def bare(i: int) -> int:
        return bare_item(sources[i], widths[i])

    for i in range(min(5, count)):  # warm up both
        ours(i), bare(i)
    print("round | processor wall / CPU ms | bare wall / CPU ms | CPU ratio bare/processor")
    for r in range(args.rounds):
        ow, oc = per_item(ours, count)
        bw, bc = per_item(bare, count)
        print(f"{r} | {ow:.2f} / {oc:.2f} | {bw:.2f} / {bc:.2f} | {bc / oc:.3f}")
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(per_item, ours, count)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
