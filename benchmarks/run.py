"""Benchmark harness: this server against the libvips ceiling, thumbor, ipx and a bare endpoint.

Run everything (installs matplotlib into .venv, thumbor and ipx into benchmarks/.peers/):

    make bench

which is ``.venv/bin/python -m benchmarks.run --duration 15 --concurrency 8,64``. Options:

    .venv/bin/python -m benchmarks.run [--duration S] [--warmup S] [--concurrency 8,64]
        [--workloads W1,W2,W3,W4,W1cold,W5] [--systems ceiling,server,thumbor,ipx,bare[,floor]]
        [--server-env K=V ...] [--ceiling-threads 1,2,4] [--out benchmarks/out] [--no-plot]

Needs wrk (``apt-get install wrk``) and, for ipx, node + npm. Prints one markdown table
(and writes it with the headline ratios to OUT/results.md), OUT/results.json with the raw
numbers and OUT/results.png (throughput and p99 per system per workload).

Systems, one after another on the same cores, each started fresh for every cell on a free
loopback port, warmed up, loaded by wrk (one thread, fixed connections, fixed duration)
and stopped:

- ceiling: ``benchmarks/ceiling.py``, the same shrink-on-load + resize + save in a pyvips
  loop, no HTTP, nothing reused between items, with 1, 2 and 4 threads (the best is reported);
- server: ``imgproxy-py serve`` with its default configuration (plus ``--server-env``);
- thumbor: PyPI thumbor, PIL engine, file loader, ENGINE_THREADPOOL_SIZE = cores;
- ipx: npm ipx 3 (sharp) behind node:http;
- bare: ``benchmarks/bare_app.py``, starlette returning fixed bytes under the same uvicorn flags.
- floor (only when named; W1, W1cold): ``benchmarks/floor_app.py``, uvicorn + a raw ASGI app doing
  the ceiling's item on a thread per request: what HTTP and one thread hand-over cost.

Workloads (``benchmarks/workloads.py``): W1 cache-miss JPEG q80 at widths 200-599 (this
server gets a cachebuster so nothing repeats); W2-webp / W2-avif the same to WebP q79 and
AVIF q63; W3 one URL repeated (server vs bare); W4 a Zipf mix over 25 fixtures x 201
variants with caches on (hit ratio from ``X-Cache``, beside an unbounded cache's); W1cold:
W1 over 256 byte-distinct copies of the photo, with intermediate reuse switched off; W5
(W5-heic, W5-jxl, W5-video) the formats decoded or encoded outside libvips, against this
server and a same-library loop only (see benchmarks/ceiling.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import loadgen, progress, report, systems
from benchmarks.report import Row
from benchmarks.workloads import (
    ALL_SYSTEMS,
    DEFAULT_SYSTEMS,
    PATH_BUILDERS,
    PHOTO,
    W4_FIXTURES,
    Op,
    Workload,
    cold_name,
    ideal_hit_ratio,
    prepare_root,
    select,
)

SHARED_IMAGES = (systems.REPO / ".." / "shared" / "fixtures" / "images").resolve()


def log(message: str) -> None:
    progress.say(f"[bench {time.strftime('%H:%M:%S')}] {message}")


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of measured load per cell")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before each measurement")
    parser.add_argument("--concurrency", type=_csv, default=["8", "64"], help="wrk connections, e.g. 8,64")
    parser.add_argument("--workloads", type=_csv, default=["W1", "W2", "W3", "W4", "W1cold", "W5"])
    parser.add_argument("--systems", type=_csv, default=list(DEFAULT_SYSTEMS))
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="K=V", help="extra environment for this server"
    )
    parser.add_argument("--ceiling-threads", type=_csv, default=["1", "2", "4"])
    parser.add_argument("--ceiling-vips-concurrency", default="1", help="VIPS_CONCURRENCY for the ceiling")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=30.0, help="wrk's per-request timeout")
    parser.add_argument("--fixtures", type=Path, default=SHARED_IMAGES, help="the shared fixture images")
    parser.add_argument("--out", type=Path, default=systems.BENCH_DIR / "out")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    unknown = set(args.systems) - set(ALL_SYSTEMS)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))} (known: {', '.join(ALL_SYSTEMS)})")
    try:
        args.workload_list = select(args.workloads)
    except ValueError as exc:
        parser.error(str(exc))
    args.concurrency = [int(c) for c in args.concurrency]
    args.ceiling_threads = [int(t) for t in args.ceiling_threads]
    env = {}
    for item in args.server_env:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--server-env expects K=V, got {item!r}")
        env[key] = value
    args.server_env_map = env
    return args


# --- one cell ----------------------------------------------------------------------------


def _sniff(body: bytes) -> str:
    if body[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return "webp"
    if body[4:12] in (b"ftypavif", b"ftypavis"):
        return "avif"
    if body[:2] == b"\xff\x0a" or body[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return "jxl"
    return "other"


def _decoded_size(body: bytes) -> str:
    try:
        import pyvips

        img = pyvips.Image.new_from_buffer(body, "")
        return f"{img.width}x{img.height}"
    except Exception as exc:  # a peer's output we cannot read: shown, never fatal here
        return f"undecodable ({str(exc).splitlines()[0][:40]})"


def preflight_op(wl: Workload) -> Op:
    if wl.kind == "hit":
        return wl.ops()[0]
    if wl.kind == "cold":
        return Op(cold_name(0), 400, wl.fmt)
    if wl.kind == "mix":
        return Op(PHOTO, 401, "jpeg")  # W4 uses multiples of 16 only: the probe primes no cache entry
    return Op(wl.source, 400, wl.fmt)


def preflight(running: systems.Running, wl: Workload, system: str, token: str) -> tuple[str | None, dict[str, Any]]:
    """One request of the workload's operation: status, format and size must be right."""
    op = preflight_op(wl)
    path = PATH_BUILDERS[system](op, f"{token}pf")
    status, _, body = systems.fetch(running.base_url + path)
    fmt = _sniff(body)
    sample = {
        "workload": wl.name,
        "system": system,
        "path": path,
        "status": status,
        "format": fmt,
        "bytes": len(body),
        "size": _decoded_size(body) if status == 200 else "",
    }
    if status != 200:
        return f"pre-flight request answered {status}", sample
    if fmt != op.fmt:
        return f"pre-flight answer is {fmt}, not {op.fmt}", sample
    if wl.kind == "mix":  # every fixture once, at a width W4 never uses
        failed = []
        for image in W4_FIXTURES:
            probe = PATH_BUILDERS[system](Op(image, 301, "jpeg"), f"{token}pf")
            code, _, _ = systems.fetch(running.base_url + probe)
            if code != 200:
                failed.append(f"{image}: {code}")
        sample["fixture_failures"] = failed
    return None, sample


def run_cell(
    wl: Workload, system: str, conc: int, args: argparse.Namespace, root: Path, token: str
) -> tuple[Row, dict[str, Any] | None]:
    row = Row(wl.name, system, conc, load_before=os.getloadavg()[0])
    workdir = args.out / "work" / f"{wl.name}-{system}-c{conc}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    sample: dict[str, Any] | None = None
    try:
        with systems.running_system(system, root, wl, args.server_env_map, workdir) as running:
            problem, sample = preflight(running, wl, system, token)
            if problem:
                row.ok, row.error = False, problem
                return row, sample
            if sample.get("fixture_failures"):
                row.extra["fixture_failures"] = sample["fixture_failures"]
                log(f"  {system}: W4 fixtures that fail: {', '.join(sample['fixture_failures'])}")
            if args.warmup > 0:
                warm = loadgen.write_script(workdir, "warmup", wl.paths(system, token, warmup=True), args.wrk_threads)
                loadgen.run_wrk(
                    running.base_url,
                    warm,
                    duration=args.warmup,
                    connections=conc,
                    threads=args.wrk_threads,
                    timeout=args.timeout,
                )
                row.extra["settle_s"] = round(loadgen.wait_idle(running.proc.pid), 2)
            script = loadgen.write_script(workdir, "measure", wl.paths(system, token), args.wrk_threads)
            cpu_before = loadgen.tree_cpu_seconds(running.proc.pid)
            with loadgen.PeakRSS(running.proc.pid) as rss:
                result = loadgen.run_wrk(
                    running.base_url,
                    script,
                    duration=args.duration,
                    connections=conc,
                    threads=args.wrk_threads,
                    timeout=args.timeout,
                )
            cpu = loadgen.tree_cpu_seconds(running.proc.pid) - cpu_before
            if running.proc.poll() is not None:
                row.ok, row.error = False, f"exited with {running.proc.returncode} during the run"
                return row, sample
    except (systems.StartError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        row.ok, row.error = False, str(exc).splitlines()[0][:160]
        return row, sample
    if result.requests == 0:
        row.ok, row.error = False, f"no request completed in {args.duration:.0f} s (longer --duration?)"
        return row, sample
    row.rps = result.rps
    row.p50_ms, row.p90_ms, row.p99_ms, row.max_ms = result.p50_ms, result.p90_ms, result.p99_ms, result.max_ms
    row.requests, row.errors = result.requests, result.errors
    row.peak_rss_mb = rss.peak / 2**20
    row.cpu_ms_per_req = 1000 * cpu / result.requests if result.requests else 0.0
    row.kb_per_resp = result.bytes / result.requests / 1024 if result.requests else 0.0
    if result.hits + result.misses:
        row.hit_ratio = result.hits / (result.hits + result.misses)
    if wl.kind == "mix":
        # Over every request sent: the ones still unanswered at the end are mostly misses.
        row.ideal_hit_ratio = ideal_hit_ratio(wl.ops(), max(result.issued, result.requests))
    row.extra["wrk"] = result.raw
    return row, sample


def run_ceiling(wl: Workload, args: argparse.Namespace, root: Path) -> Row:
    row = Row(wl.name, "ceiling", 0, load_before=os.getloadavg()[0])
    env = dict(os.environ, VIPS_CONCURRENCY=args.ceiling_vips_concurrency)
    sweep: list[dict[str, Any]] = []
    for threads in args.ceiling_threads:
        cmd = [sys.executable, "-m", "benchmarks.ceiling", "--workload", wl.name, "--root", str(root)]
        cmd += ["--duration", str(args.duration), "--warmup", str(min(args.warmup, 2.0)), "--threads", str(threads)]
        proc = subprocess.Popen(
            cmd, env=env, cwd=systems.REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        with loadgen.PeakRSS(proc.pid) as rss:
            stdout, stderr = proc.communicate(timeout=args.duration + args.warmup + 300)
        line = next((x for x in stdout.splitlines() if x.startswith("CEILING_JSON ")), None)
        if proc.returncode != 0 or line is None:
            row.ok, row.error = False, (stderr.strip().splitlines() or ["no output"])[-1][:160]
            return row
        result = json.loads(line[len("CEILING_JSON ") :])
        result["peak_rss_mb"] = rss.peak / 2**20
        sweep.append(result)
        log(f"  ceiling {wl.name} threads={threads}: {result['rate']:.1f} img/s")
    best = max(sweep, key=lambda r: float(r["rate"]))
    row.threads = int(best["threads"])
    row.rps = float(best["rate"])
    row.p50_ms, row.p90_ms, row.p99_ms = float(best["p50_ms"]), float(best["p90_ms"]), float(best["p99_ms"])
    row.max_ms = float(best["max_ms"])
    row.requests = int(best["items"])
    row.peak_rss_mb = float(best["peak_rss_mb"])
    row.cpu_ms_per_req = 1000 * float(best["cpu_s"]) / row.requests if row.requests else 0.0
    row.kb_per_resp = float(best["avg_out_bytes"]) / 1024
    row.extra["sweep"] = sweep
    return row


# --- the run -----------------------------------------------------------------------------


def _output(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (proc.stdout or proc.stderr).strip()


def machine_info() -> dict[str, Any]:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
        with open("/proc/meminfo") as f:
            mem_kb = int(next(line.split()[1] for line in f if line.startswith("MemTotal")))
    except (OSError, StopIteration):
        mem_kb = 0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def versions(selected: set[str]) -> dict[str, str]:
    import pyvips

    from imgproxy_py import __version__

    found = {
        "imgproxy-py": __version__,
        "git": _output(["git", "describe", "--always", "--dirty"], cwd=systems.REPO),
        "libvips (pyvips)": f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}",
        "wrk": " ".join(_output(["wrk", "--version"]).split()[:2]) if shutil.which("wrk") else "",
    }
    venv_python = systems.thumbor_venv() / "bin" / "python"
    if "thumbor" in selected and venv_python.exists():
        found["thumbor / Pillow"] = _output(
            [str(venv_python), "-c", "import thumbor, PIL; print(thumbor.__version__, '/', PIL.__version__)"]
        )
    if "ipx" in selected and (systems.ipx_dir() / "node_modules").exists():
        found["ipx / sharp / libvips (sharp)"] = _output(
            [
                "node",
                "-e",
                "const s=require('sharp'),f=require('fs');console.log(JSON.parse(f.readFileSync("
                "'node_modules/ipx/package.json')).version,'/',s.versions.sharp,'/',s.versions.vips)",
            ],
            cwd=systems.ipx_dir(),
        )
        found["node"] = _output(["node", "--version"])
    return found


def install_peers(selected: set[str]) -> dict[str, str]:
    """Install what is missing up front, so no cell pays for it; a failure skips that system."""
    failures = {}
    for name, install in (("thumbor", systems.install_thumbor), ("ipx", systems.install_ipx)):
        if name in selected:
            try:
                install()
            except systems.StartError as exc:
                failures[name] = str(exc)
                log(f"{name} unavailable: {exc}")
    return failures


def markdown(meta: dict[str, Any], rows: list[Row], samples: dict[str, dict[str, Any]], order: list[str]) -> str:
    m = meta["machine"]
    lines = [
        "# imgproxy-py benchmark results",
        "",
        f"- date: {meta['date']}",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, Python {m['python']}",
        f"- load average (1 min) at start / end: {meta['load_start']:.2f} / {meta['load_end']:.2f}",
        f"- versions: {'; '.join(f'{k} {v}' for k, v in meta['versions'].items() if v)}",
        f"- command: `{meta['command']}`",
        f"- per cell: {meta['warmup_s']:.0f} s warm-up, {meta['duration_s']:.0f} s measured, "
        f"wrk -t{meta['wrk_threads']}, timeout {meta['timeout_s']:.0f} s",
    ]
    if meta["server_env"]:
        lines.append(f"- server environment: {meta['server_env']}")
    lines += [
        "",
        report.table(rows, order),
        "Ceiling rows: items per second of an in-process pyvips loop (best thread count), latency per item. "
        "CPU ms/req: CPU time of the system's whole process tree over the measured run, per request. "
        "Errors: socket errors + timeouts + non-2xx answers.",
        "",
        "## Headline ratios (throughput)",
        "",
        report.ratios(rows, order),
        "## Pre-flight samples (same operation everywhere)",
        "",
        report.parity(samples),
    ]
    return "\n".join(lines)


def run_cells(
    args: argparse.Namespace,
    root: Path,
    token: str,
    selected: set[str],
    unavailable: dict[str, str],
    rows: list[Row],
    samples: dict[str, dict[str, Any]],
    bar: Any,
) -> None:
    """Every (workload, system, concurrency) cell in order, advancing the progress bar."""
    for wl in args.workload_list:
        for system in wl.systems:
            if system not in selected:
                continue
            if system in unavailable:
                rows.append(Row(wl.name, system, 0, ok=False, error=f"not installed: {unavailable[system][:100]}"))
                bar.update(1)
                continue
            if system == "ceiling":
                log(f"{wl.name} ceiling (threads {args.ceiling_threads})")
                rows.append(run_ceiling(wl, args, root))
                bar.update(1)
                continue
            for conc in args.concurrency:
                log(f"{wl.name} {system} c={conc}")
                bar.set_postfix_str(f"{wl.name} {system} c={conc}")
                row, sample = run_cell(wl, system, conc, args, root, token)
                rows.append(row)
                if sample is not None:
                    samples.setdefault(f"{wl.name}/{report.SYSTEM_ORDER.index(system)}", sample)
                if row.ok:
                    log(f"  {row.rps:.1f} req/s, p99 {row.p99_ms:.0f} ms, errors {row.errors}")
                else:
                    log(f"  FAILED: {row.error}")
                bar.update(1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if loadgen.wrk_binary() is None:
        print("benchmarks: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    if not args.fixtures.is_dir():
        print(f"benchmarks: fixtures not found at {args.fixtures}", file=sys.stderr)
        return 2
    selected = set(args.systems)
    args.out.mkdir(parents=True, exist_ok=True)
    log(f"preparing the fixtures root under {systems.PEERS / 'fixtures'}")
    cold = any(wl.kind == "cold" for wl in args.workload_list)
    root = prepare_root(args.fixtures, systems.PEERS / "fixtures", cold=cold).resolve()
    unavailable = install_peers(selected)
    order = [wl.name for wl in args.workload_list]
    token = secrets.token_hex(4)
    meta: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "versions": versions(selected),
        "command": " ".join([".venv/bin/python -m benchmarks.run", *(sys.argv[1:] if argv is None else argv)]),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "wrk_threads": args.wrk_threads,
        "timeout_s": args.timeout,
        "concurrency": args.concurrency,
        "server_env": " ".join(f"{k}={v}" for k, v in args.server_env_map.items()),
        "load_start": os.getloadavg()[0],
    }
    rows: list[Row] = []
    samples: dict[str, dict[str, Any]] = {}
    cells = sum(
        1 if system in unavailable or system == "ceiling" else len(args.concurrency)
        for wl in args.workload_list
        for system in wl.systems
        if system in selected
    )
    with progress.bar(cells, "bench", unit="cell") as bar:
        run_cells(args, root, token, selected, unavailable, rows, samples, bar)
    meta["load_end"] = os.getloadavg()[0]
    md = markdown(meta, rows, samples, order)
    (args.out / "results.md").write_text(md)
    report.write_json(args.out / "results.json", meta, rows, samples)
    if not args.no_plot:
        problem = report.plot(args.out / "results.png", rows, order)
        if problem:
            log(problem)
    print(report.table(rows, order))
    print(report.ratios(rows, order))
    log(f"wrote {args.out / 'results.md'}, results.json" + ("" if args.no_plot else ", results.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
