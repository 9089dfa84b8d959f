"""Mutation fuzzing of the whole image pipeline: fixture images, randomly damaged, in and out.

    .venv/bin/python -m benchmarks.fuzz --seconds N [--seed S] [--max-cases C] [--workers K]
        [--fixtures DIR] [--out benchmarks/out] [--asgi-every M] [--case-timeout S]
    .venv/bin/python -m benchmarks.fuzz --replay benchmarks/out/fuzz-crashes/<finding>
    .venv/bin/python -m benchmarks.fuzz --seconds 20 --seed 1 --self-check --case-timeout 8

Every case takes one fixture image, applies one to four random mutations (bit flips, byte
runs, interesting integers, header field rewrites, truncation, chunk duplication, deletion,
insertion, splicing with another fixture) and runs it through ``processing.process`` with
a few realistic option sets, through ``/info``'s ``image_info``, and for one case in
``--asgi-every`` through the real ASGI app as a ``local:///`` source (``/<sig>/<options>/…``
and ``/info/…``), exactly as the server would, each with the server's 10 s deadline.

Cases run in spawned child processes, one case at a time per child: a libvips crash
(segfault, abort) kills only that child, is recorded with the case that caused it and the
child is replaced; a case that runs past ``--case-timeout`` is a hang, and its child is
killed. Findings (a crash, a hang, an exception that is not an ImgproxyError, a 5xx, an
error body that leaks internals) are written to OUT/fuzz-crashes/<kind>-<seed>-<case>/
as ``input.bin`` + ``case.json`` (mutations, options, outcome, traceback) so that
``--replay`` reproduces them; slow (> 5 s) and memory-hungry (> 500 MB) cases are kept
there too as ``slow-…``/``memory-…`` for a look, but are not counted as failures. A child
whose case raised is replaced, so one case that corrupts libvips' process-wide state is one
finding, not a cascade.

``--self-check`` proves the harness itself: cases 1, 2 and 3 abort their child, hang and raise
a ValueError, and must come out as exactly one crash, one hang and one exception.

The summary (cases, outcome counts per channel and status or exception, findings, the
slowest case, per-case peak RSS growth and the children's RSS high-water mark) is printed
and written to OUT/fuzz-summary.json. The same seed gives the same cases.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import multiprocessing
import os
import random
import re
import shutil
import struct
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

from benchmarks import progress

REPO = Path(__file__).resolve().parent.parent
DEFAULT_FIXTURES = (REPO / ".." / "shared" / "fixtures").resolve()
DEFAULT_OUT = REPO / "benchmarks" / "out"
DEADLINE = 10.0  # the server's default IMGPROXY_TIMEOUT, per processing call
SLOW_SECONDS = 5.0
MEMORY_MB = 500
MAX_INPUT = 4 * 1024 * 1024
WORKER_RSS_LIMIT_MB = 1500  # a child above this after a case is replaced (retained heap)
IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".png", ".webp", ".gif", ".avif", ".svg", ".tif", ".tiff", ".ico", ".heic", ".jxl", ".bmp",
}  # fmt: skip

# Realistic option sets (imgproxy URL syntax). Deliberately no gigapixel enlargements: those
# are an options problem (tests/security/test_hostile_inputs.py), not an input one.
OPTION_SETS = [
    "rs:fit:300:300",
    "rs:fill:100:100/g:sm",
    "rs:fill-down:640:480/g:ce",
    "rs:force:50:80",
    "rs:auto:200:200/el:1",
    "w:120",
    "h:90/q:40",
    "q:50/f:webp",
    "f:png",
    "f:avif/rs:fit:200:200",
    "f:gif/rs:fit:64:64",
    "f:ico/rs:fit:32:32",
    "f:tiff/rs:fit:100:100",
    "f:jpg/q:95/sm:0",
    "bl:2/rs:fit:200:200",
    "sh:1.5/rs:fit:200:200",
    "pix:8/rs:fit:160:160",
    "t:10/rs:fit:200:200",
    "ar:0/rot:90",
    "rot:270/fl:1:1",
    "pd:10/bg:ff0000/rs:fit:100:100",
    "c:100:100:ce",
    "c:0.5:0.5/g:nowe:10:10",
    "ex:1/rs:fit:500:500",
    "exar:1/rs:fill:300:100",
    "z:0.5",
    "dpr:2/w:100",
    "mb:2000/rs:fit:400:400",
    "scp:0/kcr:1/sm:0",
    "eth:1/rs:fit:100:100",
    "skp:jpg:png:gif/f:jpg",
    "",
]
EXTENSIONS = ["jpg", "png", "webp", "gif", "avif", "svg", "tiff", "bin", ""]
INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
LEAKS = (b"Traceback", b'File "', b"site-packages", b".py", b"/tmp", str(REPO).encode(), b"libvips")


# --- mutations ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fixture:
    name: str
    data: bytes


def _pos(rng: random.Random, data: bytearray, header_bias: float = 0.5) -> int:
    if not data:
        return 0
    if rng.random() < header_bias:
        return rng.randrange(min(len(data), 256))
    return rng.randrange(len(data))


def m_bit_flips(rng: random.Random, data: bytearray, _: Sequence[Fixture]) -> str:
    count = rng.choice([1, 1, 2, 4, 8, 32])
    for _i in range(count):
        if data:
            data[_pos(rng, data)] ^= 1 << rng.randrange(8)
    return f"bit_flips({count})"


def m_byte_run(rng: random.Random, data: bytearray, _: Sequence[Fixture]) -> str:
    if not data:
        return "byte_run(empty)"
    at, length = _pos(rng, data), rng.choice([1, 4, 16, 256, 4096])
    fill = rng.choice([0x00, 0xFF, 0x80, None])
    run = rng.randbytes(length) if fill is None else bytes([fill]) * length
    data[at : at + length] = run[: max(0, len(data) - at)]
    return f"byte_run(at={at}, len={length}, fill={fill})"


def m_interesting(rng: random.Random, data: bytearray, _: Sequence[Fixture]) -> str:
    if len(data) < 4:
        return "interesting(short)"
    at = _pos(rng, data, 0.8)
    size, order = rng.choice([1, 2, 4]), rng.choice("<>")
    value = rng.choice(INTERESTING) & ((1 << (8 * size)) - 1)
    packed = struct.pack(order + {1: "B", 2: "H", 4: "I"}[size], value)
    data[at : at + size] = packed[: max(0, len(data) - at)]
    return f"interesting(at={at}, {order}{size}={value:#x})"


def m_truncate(rng: random.Random, data: bytearray, _: Sequence[Fixture]) -> str:
    cut = rng.randrange(len(data) + 1) if rng.random() < 0.7 else rng.randrange(min(len(data), 512) + 1)
    del data[cut:]
    return f"truncate({cut})"


def m_duplicate(rng: random.Random, data: bytearray, _: Sequence[Fixture]) -> str:
    if not data:
        return "duplicate(empty)"
    start = rng.randrange(len(data))
    chunk = bytes(data[start : start + rng.choice([8, 64, 1024, 16384])])
    times, at = rng.choice([1, 2, 16, 100]), rng.randrange(len(data) + 1)
    data[at:at] = chunk * times
    return f"duplicate({start}+{len(chunk)} x{times} -> {at})"


def m_delete(rng: random.Random, data: bytearray, _: Sequence[Fixture]) -> str:
    if not data:
        return "delete(empty)"
    at, length = _pos(rng, data), rng.choice([1, 2, 16, 512, 8192])
    del data[at : at + length]
    return f"delete({at}+{length})"


def m_insert(rng: random.Random, data: bytearray, _: Sequence[Fixture]) -> str:
    at, length = _pos(rng, data), rng.choice([1, 3, 16, 512])
    data[at:at] = rng.randbytes(length)
    return f"insert({at}+{length})"


def m_splice(rng: random.Random, data: bytearray, others: Sequence[Fixture]) -> str:
    other = rng.choice(others)
    if not other.data:
        return "splice(empty)"
    a = rng.randrange(len(data) + 1)
    b = rng.randrange(len(other.data))
    mode = rng.choice(["tail", "chunk"])
    if mode == "tail":  # our head, their tail
        data[a:] = other.data[b:]
    else:
        data[a:a] = other.data[b : b + rng.choice([64, 1024, 65536])]
    return f"splice({mode}, {other.name}, at={a}, from={b})"


def m_header_field(rng: random.Random, data: bytearray, _: Sequence[Fixture]) -> str:
    """Rewrite a size, depth or count field where the format keeps it (CRC fixed or not)."""
    value = rng.choice([0, 1, 2, 7, 255, 256, 4096, 16383, 16384, 32768, 65500, 65535, 100_000, 2**31 - 1, 2**32 - 1])
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 33:
        field_at, size = rng.choice([(16, 4), (20, 4), (24, 1), (25, 1), (28, 1)])
        data[field_at : field_at + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "big")
        if rng.random() < 0.7:
            data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
        return f"png_ihdr({field_at}={value})"
    if data[:2] == b"\xff\xd8":
        sof = next((m.start() for m in re.finditer(rb"\xff[\xc0-\xc3\xc5-\xc7\xc9-\xcb\xcd-\xcf]", bytes(data))), -1)
        if sof >= 0 and sof + 10 <= len(data):
            field_at, size = rng.choice([(sof + 4, 1), (sof + 5, 2), (sof + 7, 2), (sof + 9, 1)])
            data[field_at : field_at + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "big")
            return f"jpeg_sof({field_at}={value})"
    if data[:3] == b"GIF" and len(data) >= 13:
        field_at = rng.choice([6, 8])
        data[field_at : field_at + 2] = (value & 0xFFFF).to_bytes(2, "little")
        return f"gif_screen({field_at}={value})"
    if data[:4] == b"RIFF" and data[12:16] == b"VP8X" and len(data) >= 30:
        field_at = rng.choice([24, 27])
        data[field_at : field_at + 3] = (value & 0xFFFFFF).to_bytes(3, "little")
        return f"webp_canvas({field_at}={value})"
    at = bytes(data).find(b"ispe")
    if at > 0 and at + 16 <= len(data):
        data[at + 8 : at + 16] = struct.pack(">II", value & 0xFFFFFFFF, rng.choice([value, 1, 100]) & 0xFFFFFFFF)
        return f"avif_ispe({value})"
    match = re.search(rb'(width|height)="[^"]*"', bytes(data[:4096]))
    if match:
        data[match.start() : match.end()] = match.group(1) + f'="{value}"'.encode()
        return f"svg_{match.group(1).decode()}({value})"
    return m_interesting(rng, data, ())


MUTATIONS: list[Callable[[random.Random, bytearray, Sequence[Fixture]], str]] = [
    m_bit_flips,
    m_bit_flips,
    m_byte_run,
    m_interesting,
    m_truncate,
    m_duplicate,
    m_delete,
    m_insert,
    m_splice,
    m_header_field,
    m_header_field,
]


@dataclass(slots=True)
class Case:
    seed: int
    index: int
    fixture: str
    mutations: list[str]
    options: list[str]
    asgi: bool
    extension: str
    data: bytes = field(repr=False)
    inject: str = ""  # --self-check: "crash", "hang" or "exception" instead of a real problem


SELF_CHECK = {1: "crash", 2: "hang", 3: "exception"}


def make_case(seed: int, index: int, fixtures: Sequence[Fixture], asgi_every: int, self_check: bool = False) -> Case:
    rng = random.Random(f"{seed}:{index}")
    base = rng.choice(fixtures)
    data = bytearray(base.data)
    applied = [rng.choice(MUTATIONS)(rng, data, fixtures) for _ in range(rng.choice([1, 1, 2, 3, 4]))]
    del data[MAX_INPUT:]
    options = rng.sample(OPTION_SETS, 2)
    asgi = asgi_every > 0 and index % asgi_every == 0
    inject = SELF_CHECK.get(index, "") if self_check else ""
    return Case(seed, index, base.name, applied, options, asgi, rng.choice(EXTENSIONS), bytes(data), inject)


def where(detail: str) -> str:
    """Where a traceback ends: the innermost frame of our code, then the innermost one ('-': none)."""
    frames = [
        f"{path.replace(str(REPO) + '/', '')}:{line}"
        for path, line in re.findall(r'File "([^"]+)", line (\d+)', detail)
    ]
    if not frames:
        return "-"
    ours = [f for f in frames if f.startswith("imgproxy_py/")]
    return " > ".join(dict.fromkeys([*ours[-1:], frames[-1]]))


def describe(case: Case) -> str:
    return f"case {case.index} ({case.fixture}; {', '.join(case.mutations)})"


def load_fixtures(root: Path, only: Sequence[str] = ()) -> list[Fixture]:
    """Every fixture image, plus an ICO (no fixture has one) wrapping the smallest PNG and the
    generated HEIC, JPEG XL, BMP and video seeds (benchmarks/codec_seeds.py); ``only`` keeps
    the fixtures whose name ends with one of those suffixes (``--only .heic,.jxl``)."""
    files = sorted(p for d in (root / "images", root / "faces") if d.is_dir() for p in d.iterdir())
    fixtures = [Fixture(p.name, p.read_bytes()) for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    pngs = sorted((f for f in fixtures if f.data[:4] == b"\x89PNG" and len(f.data) >= 33), key=lambda f: len(f.data))
    if pngs:
        png = pngs[0]
        width, height = struct.unpack(">II", png.data[16:24])
        entry = struct.pack("<BBBBHHII", width % 256, height % 256, 0, 0, 1, 32, len(png.data), 22)
        fixtures.append(Fixture(f"{png.name}.ico", struct.pack("<HHH", 0, 1, 1) + entry + png.data))
    photo = next((f for f in fixtures if f.name == "320x240.jpg"), None)  # a small, intact photo
    if photo is not None:
        from benchmarks import codec_seeds

        fixtures += [Fixture(name, data) for name, data in codec_seeds.seeds(photo.data).items()]
    if only:
        fixtures = [f for f in fixtures if f.name.lower().endswith(tuple(only))]
    return fixtures


# --- the child: runs cases --------------------------------------------------------------------


def _status_mb(name: str) -> int:
    try:
        with open("/proc/self/status") as status:
            match = re.search(rf"^{name}:\s+(\d+) kB", status.read(), re.MULTILINE)
    except OSError:
        return 0
    return int(match.group(1)) // 1024 if match else 0


def _reset_hwm() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


@dataclass(slots=True)
class Outcome:
    channel: str  # process, info, asgi, asgi-info
    options: str
    result: str  # "200", "422 BrokenImageError", "EXCEPTION ValueError", ...
    seconds: float
    finding: str = ""  # exception, 5xx, leak: what makes this a failure
    detail: str = ""


class Runner:
    """Everything one child needs, built once: libvips, the parser, the config, an app."""

    def __init__(self, root: Path) -> None:
        from imgproxy_py.options.parser import Parser
        from imgproxy_py.processing import ProcessingConfig, vips
        from imgproxy_py.server.app import create_app
        from imgproxy_py.settings import OptionSettings, Settings

        vips.init()
        self.root = root
        self.parser = Parser(OptionSettings())
        self.config = ProcessingConfig(video_thumbnails=True)  # video sources reach FFmpeg, too
        env = {
            "IMGPROXY_ENABLE_VIDEO_THUMBNAILS": "true",
            "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(root),
            "IMGPROXY_WORKERS": "1",
            "IMGPROXY_LOG_LEVEL": "error",
            "IMGPROXY_TIMEOUT": str(int(DEADLINE)),
        }
        self.app = create_app(Settings.from_env(env))
        self.loop = asyncio.new_event_loop()
        self._lifespan = self.app.router.lifespan_context(self.app)
        self.loop.run_until_complete(self._lifespan.__aenter__())

    def close(self) -> None:
        self.loop.run_until_complete(self._lifespan.__aexit__(None, None, None))
        self.loop.close()

    def run(self, case: Case) -> list[Outcome]:
        if case.inject == "crash":
            os.abort()  # what a segfault in libvips looks like from here: the child dies
        if case.inject == "hang":
            time.sleep(3600)
        outcomes = [self._process(case.data, opts, case.inject == "exception") for opts in case.options]
        outcomes.append(self._info(case.data))
        if case.asgi:
            outcomes += self._asgi(case)
        return outcomes

    def _process(self, data: bytes, opts: str, inject: bool = False) -> Outcome:
        from imgproxy_py.cancel import CancelToken, current_token
        from imgproxy_py.errors import ImgproxyError
        from imgproxy_py.processing import Job, Processor

        started = time.monotonic()
        deadline = started + DEADLINE
        token = current_token.set(CancelToken(deadline=deadline))
        try:
            po = self.parser.parse(f"/{opts}/plain/local:///x" if opts else "/plain/local:///x").options
            if inject:
                raise ValueError("injected by --self-check")
            result = Processor(self.config).process(Job(data, po, deadline=deadline))
            return Outcome("process", opts, "200", time.monotonic() - started, detail=result.format.value)
        except ImgproxyError as exc:
            seconds = time.monotonic() - started
            finding = "5xx" if exc.status_code >= 500 else ""
            return Outcome("process", opts, f"{exc.status_code} {type(exc).__name__}", seconds, finding, exc.detail)
        except Exception as exc:
            seconds = time.monotonic() - started
            return Outcome(
                "process", opts, f"EXCEPTION {type(exc).__name__}", seconds, "exception", traceback.format_exc()
            )
        finally:
            current_token.reset(token)

    def _info(self, data: bytes) -> Outcome:
        from imgproxy_py.errors import ImgproxyError
        from imgproxy_py.processing.describe import info_json

        started = time.monotonic()
        try:
            info_json(data, self.config.limits.max_src_resolution, True)
            return Outcome("info", "", "200", time.monotonic() - started)
        except ImgproxyError as exc:
            finding = "5xx" if exc.status_code >= 500 else ""
            seconds = time.monotonic() - started
            return Outcome("info", "", f"{exc.status_code} {type(exc).__name__}", seconds, finding, exc.detail)
        except Exception as exc:
            seconds = time.monotonic() - started
            return Outcome("info", "", f"EXCEPTION {type(exc).__name__}", seconds, "exception", traceback.format_exc())

    def _asgi(self, case: Case) -> list[Outcome]:
        import httpx

        name = f"case-{case.seed}-{case.index}" + (f".{case.extension}" if case.extension else "")
        path = self.root / name
        path.write_bytes(case.data)
        urls = [
            ("asgi", case.options[0], f"/insecure/{case.options[0]}/plain/local:///{name}".replace("//plain", "/plain"))
        ]
        urls.append(("asgi-info", "", f"/info/insecure/plain/local:///{name}"))

        async def fetch(url: str) -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://fuzz") as client:
                return await client.get(url)

        outcomes = []
        try:
            for channel, opts, url in urls:
                started = time.monotonic()
                try:
                    response = self.loop.run_until_complete(fetch(url))
                except Exception as exc:
                    seconds = time.monotonic() - started
                    detail = traceback.format_exc()
                    outcomes.append(
                        Outcome(channel, opts, f"EXCEPTION {type(exc).__name__}", seconds, "exception", detail)
                    )
                    continue
                seconds = time.monotonic() - started
                status = response.status_code
                finding, detail = "", response.text[:300] if status >= 400 else ""
                if status >= 500:
                    finding = "5xx"
                elif status >= 400 and any(leak in response.content for leak in LEAKS):
                    finding = "leak"
                outcomes.append(Outcome(channel, opts, str(status), seconds, finding, detail))
        finally:
            path.unlink(missing_ok=True)
        return outcomes


def child_main(conn: Connection, root: str) -> None:
    """A pool child: receive a case, run it, answer with the outcomes and memory figures."""
    runner = Runner(Path(root))
    conn.send({"ready": True, "rss_mb": _status_mb("VmRSS")})
    try:
        while True:
            message = conn.recv()
            if message is None:
                break
            case = Case(**message)
            before = _status_mb("VmRSS")
            _reset_hwm()
            outcomes = runner.run(case)
            peak = _status_mb("VmHWM")
            conn.send({"outcomes": [asdict(o) for o in outcomes], "rss_before_mb": before, "peak_mb": peak})
    finally:
        runner.close()


# --- the parent: schedules cases, watches children ---------------------------------------------


@dataclass
class Child:
    process: SpawnProcess
    conn: Connection
    root: Path
    case: Case | None = None
    started: float = 0.0
    rss_mb: int = 0


@dataclass
class Stats:
    seed: int
    seconds_requested: float
    workers: int
    fixtures: int
    cases: int = 0
    calls: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    findings: Counter[str] = field(default_factory=Counter)
    signatures: Counter[str] = field(default_factory=Counter)  # finding, result and innermost frame
    finding_dirs: list[str] = field(default_factory=list)
    max_call_seconds: float = 0.0
    max_call: str = ""
    max_case_seconds: float = 0.0
    max_case_growth_mb: int = 0
    max_case_growth: str = ""
    child_rss_high_water_mb: int = 0
    child_restarts: int = 0
    elapsed_seconds: float = 0.0

    @property
    def failures(self) -> int:
        return sum(n for kind, n in self.findings.items() if kind not in ("slow", "memory"))


class Fuzzer:
    def __init__(self, args: argparse.Namespace, fixtures: list[Fixture]) -> None:
        self.args = args
        self.fixtures = fixtures
        self.out = Path(args.out)
        self.crash_dir = self.out / "fuzz-crashes"
        self.ctx = multiprocessing.get_context("spawn")
        self.stats = Stats(seed=args.seed, seconds_requested=args.seconds, workers=args.workers, fixtures=len(fixtures))
        self.scratch = Path(tempfile.mkdtemp(prefix="imgproxy-fuzz-"))
        self.next_index = 0
        self.found: set[Path] = set()

    def _spawn(self) -> Child:
        root = Path(tempfile.mkdtemp(dir=self.scratch))
        parent_conn, child_conn = self.ctx.Pipe()
        # By module name, not __main__: the child imports benchmarks.fuzz and runs child_main there.
        target = importlib.import_module("benchmarks.fuzz").child_main
        process = self.ctx.Process(target=target, args=(child_conn, str(root)), daemon=True)
        process.start()
        child_conn.close()
        if not parent_conn.poll(120):
            raise RuntimeError("a fuzz child did not start within 120 s")
        hello = parent_conn.recv()
        return Child(process, parent_conn, root, rss_mb=int(hello["rss_mb"]))

    def _replace(self, child: Child) -> Child:
        if child.process.is_alive():
            child.process.kill()
        child.process.join(10)
        child.conn.close()
        shutil.rmtree(child.root, ignore_errors=True)
        self.stats.child_restarts += 1
        return self._spawn()

    def _dispatch(self, child: Child) -> None:
        case = make_case(self.args.seed, self.next_index, self.fixtures, self.args.asgi_every, self.args.self_check)
        self.next_index += 1
        child.case, child.started = case, time.monotonic()
        child.conn.send(asdict(case))  # a plain dict: the child builds its own Case

    def run(self) -> Stats:
        started = time.monotonic()
        stop_at = started + self.args.seconds
        children = [self._spawn() for _ in range(self.args.workers)]
        total = round(self.args.seconds)
        bar = progress.bar(total, "fuzz", unit="s")
        shown = 0
        try:
            while True:
                elapsed = min(round(time.monotonic() - started), total)
                bar.update(elapsed - shown)
                shown = elapsed
                bar.set_postfix(cases=self.stats.cases, findings=sum(self.stats.findings.values()), refresh=False)
                if time.monotonic() < stop_at:
                    for child in children:
                        if child.case is None and not (self.args.max_cases and self.next_index >= self.args.max_cases):
                            self._dispatch(child)
                busy = [c for c in children if c.case is not None]
                if not busy:
                    break
                wait([c.conn for c in busy] + [c.process.sentinel for c in busy], 1.0)
                for i, child in enumerate(children):
                    if child.case is not None:
                        children[i] = self._check(child)
        finally:
            bar.close()
            for child in children:
                with contextlib.suppress(OSError):
                    child.conn.send(None)
            for child in children:
                child.process.join(20)
                if child.process.is_alive():
                    child.process.kill()
                    child.process.join(5)
            shutil.rmtree(self.scratch, ignore_errors=True)
        self.stats.elapsed_seconds = round(time.monotonic() - started, 1)
        return self.stats

    def _check(self, child: Child) -> Child:
        """Collect a finished case, or notice a dead or hung child; return the child to keep."""
        case = child.case
        assert case is not None
        now = time.monotonic()
        if child.conn.poll():
            try:
                reply: dict[str, Any] | None = child.conn.recv()
            except (EOFError, OSError):
                reply = None
            if reply is not None:
                child.case = None
                failed = self._record(case, reply, now - child.started)
                # A fresh child after an exception: libvips state a bad case leaves behind (its
                # global error buffer) must not turn every later case into a finding too.
                return self._replace(child) if failed or int(reply["peak_mb"]) > WORKER_RSS_LIMIT_MB else child
        if not child.process.is_alive():
            code = child.process.exitcode
            self._finding("crash", case, {"exitcode": code, "signal": -code if code and code < 0 else None})
            self.stats.cases += 1
            return self._replace(child)
        if now - child.started > self.args.case_timeout:
            self._finding("hang", case, {"seconds": round(now - child.started, 1)})
            self.stats.cases += 1
            return self._replace(child)
        return child

    def _record(self, case: Case, reply: dict[str, Any], seconds: float) -> bool:
        """Count one finished case; True if it raised something other than an ImgproxyError."""
        stats = self.stats
        stats.cases += 1
        outcomes = [Outcome(**o) for o in reply["outcomes"]]
        failed = False
        for outcome in outcomes:
            stats.calls += 1
            stats.outcomes[f"{outcome.channel}: {outcome.result}"] += 1
            if outcome.seconds > stats.max_call_seconds:
                stats.max_call_seconds = round(outcome.seconds, 3)
                stats.max_call = f"{describe(case)} {outcome.channel} {outcome.options!r}"
            if outcome.finding:
                self._finding(outcome.finding, case, asdict(outcome))
                stats.signatures[f"{outcome.finding}: {outcome.result} at {where(outcome.detail)}"] += 1
                failed |= outcome.finding == "exception"
        stats.max_case_seconds = round(max(stats.max_case_seconds, seconds), 3)
        peak, before = int(reply["peak_mb"]), int(reply["rss_before_mb"])
        stats.child_rss_high_water_mb = max(stats.child_rss_high_water_mb, peak)
        growth = peak - before
        if growth > stats.max_case_growth_mb:
            stats.max_case_growth_mb = growth
            stats.max_case_growth = describe(case)
        if growth > MEMORY_MB:
            self._finding("memory", case, {"growth_mb": growth, "outcomes": reply["outcomes"]})
        if seconds > SLOW_SECONDS:
            self._finding("slow", case, {"seconds": round(seconds, 2), "outcomes": reply["outcomes"]})
        return failed

    def _finding(self, kind: str, case: Case, detail: dict[str, Any]) -> None:
        folder = self.crash_dir / f"{kind}-{case.seed}-{case.index}"
        if folder in self.found:
            return  # one finding per case and kind
        self.found.add(folder)
        self.stats.findings[kind] += 1
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "input.bin").write_bytes(case.data)
        record = {k: v for k, v in asdict(case).items() if k != "data"}
        record.update(kind=kind, detail=detail, replay=f"python -m benchmarks.fuzz --replay {folder}")
        (folder / "case.json").write_text(json.dumps(record, indent=2, default=str))
        self.stats.finding_dirs.append(str(folder))
        progress.say(f"[fuzz] {kind}: {describe(case)} -> {folder}")


def replay(folder: Path) -> int:
    """Run a saved case in this process (a crash will crash it: that is the reproduction)."""
    record = json.loads((folder / "case.json").read_text())
    data = (folder / "input.bin").read_bytes()
    case = Case(
        seed=record["seed"],
        index=record["index"],
        fixture=record["fixture"],
        mutations=record["mutations"],
        options=record["options"],
        asgi=True,
        extension=record["extension"],
        data=data,
    )
    root = Path(tempfile.mkdtemp(prefix="imgproxy-fuzz-replay-"))
    runner = Runner(root)
    try:
        started = time.monotonic()
        for outcome in runner.run(case):
            line = f"{outcome.channel:9s} {outcome.options!r:40s} {outcome.result:32s} {outcome.seconds:6.2f}s"
            print(line + (f"  FINDING {outcome.finding}" if outcome.finding else ""))
            if outcome.finding == "exception":
                print(outcome.detail)
        print(f"total {time.monotonic() - started:.2f}s, peak RSS {_status_mb('VmHWM')} MB")
    finally:
        runner.close()
        shutil.rmtree(root, ignore_errors=True)
    return 0


def print_summary(stats: Stats) -> None:
    print(f"\nfuzz: seed {stats.seed}, {stats.workers} children, {stats.fixtures} fixtures, {stats.elapsed_seconds} s")
    print(f"cases {stats.cases}, calls {stats.calls}, child restarts {stats.child_restarts}")
    print("outcomes:")
    for key, count in sorted(stats.outcomes.items()):
        print(f"  {count:8d}  {key}")
    print("findings: " + (", ".join(f"{k}={v}" for k, v in sorted(stats.findings.items())) or "none"))
    for signature, count in stats.signatures.most_common():
        print(f"  {count:8d}  {signature}")
    print(f"slowest call {stats.max_call_seconds} s: {stats.max_call}")
    print(f"slowest case {stats.max_case_seconds} s")
    print(f"largest per-case RSS growth {stats.max_case_growth_mb} MB: {stats.max_case_growth}")
    print(f"children's RSS high-water mark {stats.child_rss_high_water_mb} MB")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-cases", type=int, default=0, help="stop after this many cases too (0: no limit)")
    parser.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    parser.add_argument("--fixtures", default=str(DEFAULT_FIXTURES))
    parser.add_argument("--only", default="", help="fuzz only fixtures ending with these suffixes: .heic,.jxl")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--asgi-every", type=int, default=8, help="every Nth case also goes through the app (0: none)")
    parser.add_argument("--case-timeout", type=float, default=60.0, help="seconds before a case counts as a hang")
    parser.add_argument("--replay", default=None, help="run one saved finding in this process")
    parser.add_argument(
        "--self-check",
        action="store_true",
        help="cases 1, 2 and 3 abort, hang and raise: the harness must record exactly those three",
    )
    args = parser.parse_args(argv)
    if args.replay:
        return replay(Path(args.replay))
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**31)
    only = [s.strip().lower() for s in args.only.split(",") if s.strip()]
    fixtures = load_fixtures(Path(args.fixtures), only)
    if not fixtures:
        print(f"no fixture images under {args.fixtures}", file=sys.stderr)
        return 2
    stats = Fuzzer(args, fixtures).run()
    print_summary(stats)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {f.name: getattr(stats, f.name) for f in fields(stats)}
    counters = {
        "outcomes": dict(stats.outcomes),
        "findings": dict(stats.findings),
        "signatures": dict(stats.signatures),
    }
    summary |= counters | {"failures": stats.failures}
    (out / "fuzz-summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return 1 if stats.failures else 0


if __name__ == "__main__":
    sys.exit(main())
