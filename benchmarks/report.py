"""Results: the rows, the markdown table, the headline ratios, the JSON and the plot."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SYSTEM_ORDER = ("ceiling", "server", "thumbor", "ipx", "bare", "floor")
SYSTEM_LABEL = {
    "ceiling": "libvips ceiling (pyvips loop)",
    "server": "imgproxy-py",
    "thumbor": "thumbor (PIL)",
    "ipx": "ipx (sharp)",
    "bare": "bare starlette",
    "floor": "floor (uvicorn + the loop's item)",
}


@dataclass(slots=True)
class Row:
    workload: str
    system: str
    concurrency: int  # 0 for the ceiling (threads are in ``threads``)
    ok: bool = True
    error: str = ""
    rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    requests: int = 0
    errors: int = 0
    peak_rss_mb: float = 0.0
    cpu_ms_per_req: float = 0.0
    kb_per_resp: float = 0.0
    hit_ratio: float | None = None  # from X-Cache, None when the system sends none
    ideal_hit_ratio: float | None = None  # an unbounded cache on the same request sequence (W4)
    threads: int = 0
    load_before: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _fmt(value: float, digits: int = 1) -> str:
    if value == 0:
        return "0"
    if value >= 100:
        return f"{value:,.0f}"
    if value < 1:
        return f"{value:.2f}"
    return f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def sort_key(row: Row, workload_order: list[str]) -> tuple[int, int, int]:
    w = workload_order.index(row.workload) if row.workload in workload_order else len(workload_order)
    return (w, SYSTEM_ORDER.index(row.system), row.concurrency)


def table(rows: list[Row], workload_order: list[str]) -> str:
    head = (
        "| workload | system | conc | req/s | p50 ms | p99 ms | errors | peak RSS MB | CPU ms/req | KB/resp "
        "| hit ratio (X-Cache / ideal) |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    lines = []
    for r in sorted(rows, key=lambda r: sort_key(r, workload_order)):
        conc = f"{r.threads} thr" if r.system == "ceiling" else str(r.concurrency)
        if not r.ok:
            lines.append(f"| {r.workload} | {SYSTEM_LABEL[r.system]} | {conc} | FAILED: {r.error} ||||||||")
            continue
        hit = ""
        if r.ideal_hit_ratio is not None or r.hit_ratio is not None:
            hit = f"{_pct(r.hit_ratio)} / {_pct(r.ideal_hit_ratio)}"
        lines.append(
            f"| {r.workload} | {SYSTEM_LABEL[r.system]} | {conc} | {_fmt(r.rps)} | {_fmt(r.p50_ms)} | {_fmt(r.p99_ms)} "
            f"| {r.errors} | {_fmt(r.peak_rss_mb, 0)} | {_fmt(r.cpu_ms_per_req)} | {_fmt(r.kb_per_resp)} | {hit} |"
        )
    return head + "\n".join(lines) + "\n"


def _ratio(a: Row | None, b: Row | None) -> str:
    if a is None or b is None or not a.ok or not b.ok or b.rps <= 0:
        return "–"
    return f"{a.rps / b.rps:.2f}×"


def ratios(rows: list[Row], workload_order: list[str]) -> str:
    """Throughput ratios of this server to each peer, per workload and concurrency."""
    by: dict[tuple[str, str, int], Row] = {(r.workload, r.system, r.concurrency): r for r in rows}
    ceilings = {r.workload: r for r in rows if r.system == "ceiling"}
    concs = sorted({r.concurrency for r in rows if r.system == "server"})
    out = [
        "| workload | conc | server/ceiling | server/ipx | server/thumbor | server/bare | server/floor |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for wl in workload_order:
        for c in concs:
            server = by.get((wl, "server", c))
            if server is None:
                continue
            out.append(
                f"| {wl} | {c} | {_ratio(server, ceilings.get(wl))} | {_ratio(server, by.get((wl, 'ipx', c)))} "
                f"| {_ratio(server, by.get((wl, 'thumbor', c)))} | {_ratio(server, by.get((wl, 'bare', c)))} "
                f"| {_ratio(server, by.get((wl, 'floor', c)))} |"
            )
    return "\n".join(out) + "\n"


def parity(samples: dict[str, dict[str, Any]]) -> str:
    """The pre-flight sample of each system and workload: proof that every URL asks for the same thing."""
    if not samples:
        return ""
    out = ["| workload | system | sample request | status | format | size | bytes |", "|---|---|---|---:|---|---|---:|"]
    for key in sorted(samples):
        s = samples[key]
        out.append(
            f"| {s['workload']} | {SYSTEM_LABEL[s['system']]} | `{s['path']}` | {s['status']} | {s['format']} "
            f"| {s['size']} | {s['bytes']:,} |"
        )
    return "\n".join(out) + "\n"


def write_json(path: Path, meta: dict[str, Any], rows: list[Row], samples: dict[str, dict[str, Any]]) -> None:
    data = {"meta": meta, "rows": [asdict(r) for r in rows], "samples": samples}
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def plot(path: Path, rows: list[Row], workload_order: list[str]) -> str | None:
    """Grouped bars (log scale): throughput and p99 per system, per workload x concurrency."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'); no plot"

    ok = [r for r in rows if r.ok]
    concs = sorted({r.concurrency for r in ok if r.system != "ceiling"}) or [0]
    groups = [(wl, c) for wl in workload_order for c in concs if any(r.workload == wl for r in ok)]
    systems = [s for s in SYSTEM_ORDER if any(r.system == s for r in ok)]
    if not groups or not systems:
        return "nothing to plot"

    def value(wl: str, conc: int, system: str, attr: str) -> float:
        for r in ok:
            if r.workload == wl and r.system == system and (system == "ceiling" or r.concurrency == conc):
                return float(getattr(r, attr))
        return math.nan

    present = [[s for s in systems if not math.isnan(value(wl, c, s, "rps"))] for wl, c in groups]
    widest = max(len(p) for p in present)
    width = 0.8 / widest
    colours = {s: f"C{i}" for i, s in enumerate(SYSTEM_ORDER)}
    fig, axes = plt.subplots(2, 1, figsize=(min(18.0, max(8.0, 0.25 * sum(map(len, present)) + 2)), 8.5), sharex=True)
    xs = list(range(len(groups)))
    panels = ((axes[0], "rps", "throughput (req/s; ceiling: img/s)"), (axes[1], "p99_ms", "p99 latency (ms)"))
    for ax, attr, label in panels:
        for x, (wl, c), systems_here in zip(xs, groups, present, strict=True):
            for i, system in enumerate(systems_here):
                pos = x - width * len(systems_here) / 2 + width * (i + 0.5)
                bars = ax.bar([pos], [value(wl, c, system, attr)], width, color=colours[system])
                ax.bar_label(bars, fmt="%.0f", fontsize=6)
        ax.set_yscale("log")
        bottom, top = ax.get_ylim()
        ax.set_ylim(bottom, top * 2)  # room for the value labels
        ax.set_ylabel(label)
        ax.grid(axis="y", which="both", alpha=0.3)
    handles = [Patch(color=colours[s]) for s in systems]
    labels = [SYSTEM_LABEL[s] for s in systems]
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.955), fontsize=8, ncols=len(systems))
    axes[1].set_xticks(xs, [f"{wl}\nc={c}" for wl, c in groups], fontsize=8)
    fig.suptitle("imgproxy-py benchmark (ceiling p99 is per item, not per HTTP request)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
