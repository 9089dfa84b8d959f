"""Scale-out drills on loopback with the real engines, one table at the end.

    python -m benchmarks.cluster [--quick] [--seconds 12] [--spike-seconds 30] [--only NAME,NAME] [--logs DIR]

Starts Varnish (deploy/varnish/default.vcl, the CDN stand-in; two instances as two PoPs) → HAProxy (round robin,
health checks, retries of idempotent GETs on connection failures) → 3 ``imgproxy-py serve``
replicas sharing a Redis Cluster (3 masters + 3 replicas, L2 and the coalescing lock) and an
S3 endpoint (moto's server behind a delay proxy, L3), fetching from an HTTP origin with a
delay knob. Then, each for a few seconds, with an asyncio load generator:

- ``zipf``: a Zipf workload through the Varnish PoPs; the share answered by Varnish, L1, L2, L3, processing;
- ``coalesce``: N concurrent requests for one new variant through the balancer (all replicas);
- ``kill``: closed-loop load through the balancer, one replica SIGKILLed mid-run;
- ``spike``: open-loop AVIF misses through a Varnish PoP at a base rate for 10 s, then 10× for
  ``--spike-seconds`` (30 s, as issue 14 states the drill), then the base rate again for 10 s,
  from a load generator in a process of its own; admitted and refused latencies apart, where
  a 429 spent its time (HAProxy's timers, the replica's access log), replica RSS, recovery;
- ``redis-down`` / ``s3-slow`` / ``origin-slow``: Redis nodes stopped (SIGSTOP), S3 delayed,
  the origin slower than the download timeout (stale-if-error answers).

Needs redis-server/redis-cli, varnishd and haproxy (Debian packages, see .ci/run). The
services are the test suite's own helpers (tests/), so drills and tests start them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import multiprocessing
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h11
import httpx

from tests.cache.redis_cluster import RedisCluster, running_cluster
from tests.s3_server import ACCESS_KEY, SECRET_KEY, S3Server, running_moto
from tests.support import REPO, Origin, env_for, free_port, images_dir, run_origin

SOURCES = [f"Landscape_{i}.jpg" for i in range(1, 9)] + [f"Portrait_{i}.jpg" for i in range(1, 9)]
WIDTHS = [64 + 16 * i for i in range(12)]


# --- services ---------------------------------------------------------------------------


class DelayProxy:
    """A TCP proxy that adds ``delay`` seconds before forwarding each client chunk (a slow S3)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.delay = 0.0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, slow: bool) -> None:
            try:
                while chunk := await src.read(65536):
                    if slow and self.delay:
                        await asyncio.sleep(self.delay)
                    dst.write(chunk)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()


@dataclass
class Replica:
    port: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "imgproxy_py", "serve", "--bind", f"127.0.0.1:{self.port}"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env_for(**self.env),
                cwd=REPO,
                start_new_session=True,
            )

    def wait_healthy(self, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"replica on {self.port} did not start; see {self.log}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def rss_mb(self) -> float:
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0


def _haproxy_config(port: int, replicas: list[Replica]) -> str:
    servers = "\n".join(f"  server r{i} 127.0.0.1:{r.port} check" for i, r in enumerate(replicas))
    return f"""global
  maxconn 4096
  # One line per request on stdout (the drill's haproxy.log): status, then the timers the
  # spike drill reads: TR (request head), Tw (queue), Tc (connect), Tr (server), Ta (total).
  log stdout format raw local0 info
defaults
  mode http
  log global
  log-format "%ST %TR %Tw %Tc %Tr %Ta %s %HU"
  timeout connect 1s
  timeout client 30s
  timeout server 20s
  retries 2
  option redispatch 1
  # Idempotent GETs are retried on another replica when one dies under them.
  retry-on conn-failure empty-response response-timeout
frontend fe
  bind 127.0.0.1:{port}
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /health
  default-server inter 500ms fall 2 rise 2
{servers}
"""


@contextlib.contextmanager
def _daemon(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _wait_http(url: str, within: float = 30) -> None:
    """Until ``url`` answers 200 (Varnish answers 503 until its health probe passes)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


@dataclass
class Stack:
    workdir: Path
    cluster: RedisCluster
    s3: S3Server
    s3_proxy: DelayProxy
    origin: Origin
    replicas: list[Replica]
    balancer: str  # http://127.0.0.1:<haproxy>
    cdns: list[str]  # http://127.0.0.1:<varnish>, one per CDN "PoP"


@contextlib.asynccontextmanager
async def running_stack(workdir: Path) -> AsyncIterator[Stack]:
    for tool in ("haproxy", "varnishd", "redis-server", "redis-cli"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is not installed (apt-get install varnish haproxy redis-server)")
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(running_cluster())
        s3 = stack.enter_context(running_moto())
        origin = stack.enter_context(contextlib.contextmanager(run_origin)(images_dir()))
        bucket = s3.new_bucket()
        proxy = DelayProxy(int(s3.endpoint.rsplit(":", 1)[1]))
        await proxy.start()
        env = {
            "IMGPROXY_CACHE_REDIS_URL": cluster.url,
            "IMGPROXY_CACHE_TIMEOUT": "0.3",
            "IMGPROXY_CACHE_RETRY_AFTER": "2",
            "IMGPROXY_CACHE_MEMORY_SIZE": "32",
            "IMGPROXY_CACHE_S3_BUCKET": bucket,
            "IMGPROXY_CACHE_S3_ENDPOINT": f"http://127.0.0.1:{proxy.port}",
            "IMGPROXY_CACHE_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "IMGPROXY_CACHE_S3_SECRET_ACCESS_KEY": SECRET_KEY,
            "IMGPROXY_CACHE_S3_REGION": "us-east-1",
            "IMGPROXY_CACHE_TTL": "8",  # short, so the degradation drills see expired entries
            "IMGPROXY_CACHE_STALE_IF_ERROR": "3600",
            "IMGPROXY_TTL": "3",  # Varnish revalidates every 3 s, so the origin's tiers see traffic too
            "IMGPROXY_DOWNLOAD_TIMEOUT": "2",
            "IMGPROXY_TIMEOUT": "10",
            "IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES": "true",
            "IMGPROXY_WORKERS": "1",
            "IMGPROXY_REQUESTS_QUEUE_SIZE": "4",
            "IMGPROXY_LOG_LEVEL": "warn",
            "IMGPROXY_MALLOC": "glibc",
        }
        replicas = [Replica(free_port(), env, workdir / f"replica{i}.log") for i in range(3)]
        for replica in replicas:
            replica.start()
            stack.callback(replica.kill)
        for replica in replicas:
            replica.wait_healthy()
        # One image through each replica before any drill: its Redis Cluster client discovers
        # the slots and its S3 client connects now, not inside the first burst's 0.3 s
        # IMGPROXY_CACHE_TIMEOUT (which, timed out under load, bypassed L2 and with it the
        # cross-replica lock for IMGPROXY_CACHE_RETRY_AFTER: a second fetch in the coalescing
        # drill). Then past that bypass window, in case a warm-up call still timed out.
        for i, replica in enumerate(replicas):
            warm = f"/_/rs:fit:{40 + i}:{40 + i}/plain/{origin.base}/{SOURCES[0]}"
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"http://127.0.0.1:{replica.port}{warm}", timeout=30)
        time.sleep(2.5)

        lb_port = free_port()
        cfg = workdir / "haproxy.cfg"
        cfg.write_text(_haproxy_config(lb_port, replicas))
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        stack.enter_context(_daemon([haproxy, "-db", "-f", str(cfg)], workdir / "haproxy.log"))
        _wait_http(f"http://127.0.0.1:{lb_port}/health")

        vcl_dir = Path(tempfile.mkdtemp(prefix="imgproxy-py-varnish-"))
        stack.callback(shutil.rmtree, vcl_dir, True)
        os.chmod(vcl_dir, 0o755)  # varnishd reads it as its own user
        vcl = (REPO / "deploy" / "varnish" / "default.vcl").read_text()
        vcl = vcl.replace('.host = "imgproxy";', '.host = "127.0.0.1";').replace(
            '.port = "8080";', f'.port = "{lb_port}";'
        )
        (vcl_dir / "default.vcl").write_text(vcl)
        (vcl_dir / "default.vcl").chmod(0o644)
        varnishd = shutil.which("varnishd") or "/usr/sbin/varnishd"
        cdns = []
        for pop in range(2):  # two CDN points of presence: each is cold for what the other has seen
            cdn_port = free_port()
            stack.enter_context(
                _daemon(
                    [
                        varnishd,
                        "-F",
                        "-n",
                        str(vcl_dir / f"pop{pop}"),
                        "-a",
                        f"127.0.0.1:{cdn_port}",
                        "-f",
                        str(vcl_dir / "default.vcl"),
                        "-s",
                        "malloc,64m",
                    ],  # fmt: skip
                    workdir / f"varnish{pop}.log",
                )
            )
            _wait_http(f"http://127.0.0.1:{cdn_port}/health")
            cdns.append(f"http://127.0.0.1:{cdn_port}")
        try:
            yield Stack(workdir, cluster, s3, proxy, origin, replicas, f"http://127.0.0.1:{lb_port}", cdns)
        finally:
            await proxy.stop()


# --- load ---------------------------------------------------------------------------------


@dataclass
class Sample:
    start: float
    latency: float
    status: int  # 0: transport error
    via: str  # X-CDN HIT → "CDN", else the origin's X-Cache
    retry_after: bool = False


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)

    def count(self, pred: Callable[[Sample], bool]) -> int:
        return sum(1 for s in self.samples if pred(s))

    def ok(self) -> list[Sample]:
        return [s for s in self.samples if 200 <= s.status < 300]

    @staticmethod
    def pct(values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        values = sorted(values)
        return values[min(len(values) - 1, int(q * len(values)))] * 1000


async def _one(client: httpx.AsyncClient, url: str, run: Run, t0: float) -> None:
    start = time.monotonic()
    try:
        response = await client.get(url)
        via = "CDN" if response.headers.get("x-cdn") == "HIT" else response.headers.get("x-cache", "-")
        run.samples.append(
            Sample(start - t0, time.monotonic() - start, response.status_code, via, "retry-after" in response.headers)
        )
    except httpx.HTTPError:
        run.samples.append(Sample(start - t0, time.monotonic() - start, 0, "error"))


def zipf_paths(n: int, rng: random.Random, s: float = 1.1) -> list[str]:
    variants = [(src, w) for src in SOURCES for w in WIDTHS]
    rng.shuffle(variants)
    weights = [1 / (rank + 1) ** s for rank in range(len(variants))]
    return [f"/_/rs:fit:{w}:{w}/plain/{{origin}}/{src}" for src, w in rng.choices(variants, weights, k=n)]


async def closed_loop(base: str | list[str], paths: list[str], seconds: float, concurrency: int, origin: Origin) -> Run:
    """``concurrency`` clients, each sending its next request when the last one is answered;
    with several bases (CDN PoPs) each request goes to one of them at random."""
    run = Run()
    t0 = time.monotonic()
    cursor = iter(range(10**9))
    bases = [base] if isinstance(base, str) else base
    rng = random.Random(3)

    async def worker(client: httpx.AsyncClient) -> None:
        while time.monotonic() - t0 < seconds:
            path = paths[next(cursor) % len(paths)].replace("{origin}", origin.base)
            await _one(client, rng.choice(bases) + path, run, t0)

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=concurrency)) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return run


async def _get_once(host: str, port: int, path: str, timeout: float) -> tuple[int, dict[str, str]]:
    """One GET on a connection of its own (h11 over asyncio streams): (status, headers).

    Not httpx here: its connection pool does Python work proportional to the open connections
    for every request, so with hundreds in flight (a spike) the client's own queueing took
    seconds and the drill measured the load generator instead of the service.
    """
    conn = h11.Connection(h11.CLIENT)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        request = h11.Request(method="GET", target=path, headers=[("host", f"{host}:{port}"), ("connection", "close")])
        writer.write(conn.send(request) + conn.send(h11.EndOfMessage()))
        status, headers = 0, {}
        async with asyncio.timeout(timeout):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
                elif isinstance(event, h11.EndOfMessage):
                    return status, headers
    finally:
        writer.close()


async def _one_raw(base: str, path: str, run: Run, t0: float) -> None:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    start = time.monotonic()
    try:
        status, headers = await _get_once(host, int(port), path, 30)
        via = "CDN" if headers.get("x-cdn") == "HIT" else headers.get("x-cache", "-")
        run.samples.append(Sample(start - t0, time.monotonic() - start, status, via, "retry-after" in headers))
    except (OSError, TimeoutError, h11.ProtocolError):
        run.samples.append(Sample(start - t0, time.monotonic() - start, 0, "error"))


async def open_loop(base: str, phases: list[tuple[float, float]], origin_base: str) -> Run:
    """Requests at ``rate``/s for ``seconds``, phase after phase, whatever the answers take."""
    run = Run()
    t0 = time.monotonic()
    tasks: list[asyncio.Task[None]] = []
    n = 0
    phase_start = 0.0
    for rate, seconds in phases:
        for i in range(int(rate * seconds)):
            due = t0 + phase_start + i / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            n += 1
            # every request a new variant: a miss for the replicas (the worst case)
            # AVIF: the costliest encoder (~40 CPU ms a miss in benchmarks/RESULTS.md)
            size = f"{200 + n % 400}:{200 + n // 400}"
            path = f"/_/rs:fit:{size}/plain/{origin_base}/{SOURCES[n % len(SOURCES)]}@avif"
            tasks.append(asyncio.ensure_future(_one_raw(base, path, run, t0)))
        phase_start += seconds
    await asyncio.gather(*tasks)
    return run


def _open_loop_samples(base: str, phases: list[tuple[float, float]], origin_base: str) -> list[Sample]:
    return asyncio.run(open_loop(base, phases, origin_base)).samples


async def open_loop_in_child(base: str, phases: list[tuple[float, float]], origin_base: str) -> Run:
    """``open_loop`` in a process of its own: this one also runs the origin (threads) and the S3
    delay proxy, whose work during a spike would otherwise delay the client's own clock and
    inflate every latency it measures."""
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
        samples = await asyncio.get_running_loop().run_in_executor(pool, _open_loop_samples, base, phases, origin_base)
    return Run(samples)


# --- scenarios -------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    run: Run
    result: str

    def cells(self) -> list[str]:
        r = self.run
        ok = r.ok()
        total = len(r.samples)
        n429 = r.count(lambda s: s.status == 429)
        n5xx = r.count(lambda s: s.status >= 500 or s.status == 0)
        return [
            self.scenario,
            str(total),
            f"{100 * len(ok) / total:.1f}%" if total else "-",
            str(n429),
            str(n5xx),
            f"{Run.pct([s.latency for s in ok], 0.5):.0f}",
            f"{Run.pct([s.latency for s in ok], 0.99):.0f}",
            self.result,
        ]


def _shares(run: Run) -> str:
    names = Counter(s.via for s in run.ok())
    total = sum(names.values()) or 1
    order = ["CDN", "HIT-L1", "HIT-L2", "HIT-L3", "HIT-COALESCED", "MISS", "STALE"]
    label = {"CDN": "Varnish", "HIT-L1": "L1", "HIT-L2": "L2", "HIT-L3": "L3", "MISS": "processing",
             "HIT-COALESCED": "coalesced", "STALE": "stale"}  # fmt: skip
    shares = ", ".join(f"{label[k]} {100 * names[k] / total:.0f}%" for k in order if names[k])
    failed = Counter(s.status for s in run.samples if not 200 <= s.status < 300)
    return shares + (f"; failed: {dict(failed)}" if failed else "")


async def zipf(stack: Stack, seconds: float) -> Row:
    paths = zipf_paths(5000, random.Random(7))
    run = await closed_loop(stack.cdns, paths, seconds, 6, stack.origin)
    return Row("Zipf (s=1.1, 192 variants) via 2 Varnish PoPs", run, _shares(run))


async def coalesce(stack: Stack, seconds: float) -> Row:
    source = "Landscape_2.jpg"
    path = f"/_/rs:fill:333:222/q:71/plain/{stack.origin.base}/{source}"
    before = sum(1 for p in stack.origin.requests if p.endswith(source))
    stack.origin.delay = 0.5  # the first fetch is slow: everyone else arrives while it runs
    run = Run()
    t0 = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=60)) as client:
            await asyncio.gather(*(_one(client, stack.balancer + path, run, t0) for _ in range(30)))
    finally:
        stack.origin.delay = 0.0
    fetches = sum(1 for p in stack.origin.requests if p.endswith(source)) - before
    vias = Counter(s.via for s in run.samples)
    return Row(
        "coalescing: 30 at once, 3 replicas",
        run,
        f"source fetches {fetches}, transforms (MISS) {vias['MISS']}; "
        + ", ".join(f"{k} {v}" for k, v in sorted(vias.items())),
    )


async def kill(stack: Stack, seconds: float) -> Row:
    paths = zipf_paths(3000, random.Random(11))
    victim = stack.replicas[1]
    kill_at = seconds / 3

    async def killer() -> None:
        await asyncio.sleep(kill_at)
        victim.kill()

    run, _ = await asyncio.gather(closed_loop(stack.balancer, paths, seconds, 6, stack.origin), killer())
    # Errors: 5xx and transport failures; a 429 (a full queue on the survivors) is a refusal.
    errors = [s for s in run.samples if s.status >= 500 or s.status == 0]
    refused = sum(1 for s in run.samples if s.status == 429)
    after = [s for s in errors if s.start > kill_at + 1.0]
    per_s = Counter(int(s.start) for s in run.ok())
    before_rate = statistics.mean(per_s[i] for i in range(1, int(kill_at)) or [0])
    after_rate = statistics.mean(per_s[i] for i in range(int(kill_at) + 2, int(seconds)) or [0])
    victim.start()
    victim.wait_healthy()
    return Row(
        "replica SIGKILL mid-load",
        run,
        f"errors {len(errors)} ({len(after)} after the first second), 429 {refused}; "
        f"{before_rate:.0f} req/s before, {after_rate:.0f} after on 2 replicas",
    )


async def spike(stack: Stack, seconds: float) -> Row:
    """Open-loop AVIF misses: a calm phase, ``seconds`` at ten times the rate, a calm phase again."""
    base_rate = 5.0
    calm = min(10.0, max(3.0, seconds / 3))
    spike_end = calm + seconds
    rss_before = max(r.rss_mb() for r in stack.replicas)
    rss_max = rss_before

    async def sample_rss() -> None:
        nonlocal rss_max
        while True:
            rss_max = max(rss_max, max(r.rss_mb() for r in stack.replicas))
            await asyncio.sleep(0.2)

    logs = [stack.workdir / "haproxy.log", *(r.log for r in stack.replicas)]
    marks = {log: log.stat().st_size if log.exists() else 0 for log in logs}
    sampler = asyncio.ensure_future(sample_rss())
    try:
        run = await open_loop_in_child(
            stack.cdns[0],  # through the whole chain: Varnish passes the misses and the 429s
            [(base_rate, calm), (10 * base_rate, seconds), (base_rate, calm)],
            stack.origin.base,
        )
    finally:
        sampler.cancel()
    await asyncio.sleep(0.5)  # the replicas flush their access logs every 0.2 s
    hops = _hop_times(marks)
    rejected = [s.latency for s in run.samples if s.status == 429]
    admitted = [s.latency for s in run.samples if calm <= s.start < spike_end and 200 <= s.status < 300]
    before = [s.latency for s in run.samples if 1.0 <= s.start < calm and 200 <= s.status < 300]
    # Back to normal: from then on every request is a 2xx no slower than twice the calm p99.
    normal = 2 * Run.pct(before, 0.99) / 1000
    late = [
        s.start - spike_end for s in run.samples if s.start >= spike_end and (s.status != 200 or s.latency > normal)
    ]
    n5xx = sum(1 for s in run.samples if s.status >= 500 or s.status == 0)
    return Row(
        f"10x spike ({base_rate:.0f} → {10 * base_rate:.0f} AVIF misses/s for {seconds:.0f} s)",
        run,
        f"in the spike: {len(admitted)} admitted, p50 {Run.pct(admitted, 0.5):.0f} / p99 "
        f"{Run.pct(admitted, 0.99):.0f} ms; {len(rejected)} × 429, p50 {Run.pct(rejected, 0.5):.0f} / p99 "
        f"{Run.pct(rejected, 0.99):.0f} ms, Retry-After on all: "
        f"{all(s.retry_after for s in run.samples if s.status == 429)} ({hops}); 5xx {n5xx}; "
        f"replica RSS peak {rss_max:.0f} MB ({rss_before:.0f} before); "
        f"normal again {max(late, default=0.0):.1f} s after the spike (calm p99 {1000 * normal / 2:.0f} ms)",
    )


def _tail(log: Path, offset: int) -> list[str]:
    with open(log, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace").splitlines()


def _hop_times(marks: dict[Path, int]) -> str:
    """Where a refused request spent its time: HAProxy's timers (all of them to stderr) and the
    replicas' own durations (their access log), against what the client measured."""
    lb: dict[str, list[list[int]]] = {}
    replica: list[float] = []
    for log, offset in marks.items():
        for line in _tail(log, offset):
            if "@avif" not in line:
                continue
            if log.name == "haproxy.log":
                parts = line.split()
                if len(parts) >= 6 and all(p.lstrip("-").isdigit() for p in parts[:6]):
                    lb.setdefault(parts[0], []).append([int(p) for p in parts[1:6]])
            elif (m := re.search(r" access: \S+ \S+ 429 ([\d.]+)ms ", line)) is not None:
                replica.append(float(m.group(1)) / 1000)
    for status, rows in sorted(lb.items()):
        timers = " ".join(
            f"{name} p99 {Run.pct([v / 1000 for v in col], 0.99):.0f}"
            for name, col in zip(["TR", "Tw", "Tc", "Tr", "Ta"], zip(*rows, strict=True), strict=True)
        )
        print(f"   haproxy {status} ×{len(rows)}: {timers} ms", file=sys.stderr)
    at_lb = [row[4] / 1000 for row in lb.get("429", [])]
    return f"429 p99 at HAProxy {Run.pct(at_lb, 0.99):.0f} ms, in the replica {Run.pct(replica, 0.99):.1f} ms"


async def _degraded(
    stack: Stack, seconds: float, name: str, start: Callable[[], None], stop: Callable[[], None]
) -> Row:
    paths = zipf_paths(2000, random.Random(5))
    warm = await closed_loop(stack.balancer, paths, 2, 4, stack.origin)  # noqa: F841 - warms the tiers
    await asyncio.sleep(1)
    start()
    try:
        run = await closed_loop(stack.balancer, paths, seconds, 4, stack.origin)
    finally:
        stop()
    return Row(name, run, _shares(run))


def _signal_cluster(stack: Stack, sig: signal.Signals) -> None:
    for proc in stack.cluster.procs.values():
        if proc.poll() is None:
            proc.send_signal(sig)


async def redis_down(stack: Stack, seconds: float) -> Row:
    return await _degraded(
        stack, seconds, "Redis down (all nodes SIGSTOP)",
        lambda: _signal_cluster(stack, signal.SIGSTOP), lambda: _signal_cluster(stack, signal.SIGCONT),
    )  # fmt: skip


async def s3_slow(stack: Stack, seconds: float) -> Row:
    def start() -> None:
        stack.s3_proxy.delay = 1.0

    def stop() -> None:
        stack.s3_proxy.delay = 0.0

    return await _degraded(stack, seconds, "S3 slow (+1 s per chunk)", start, stop)


async def origin_slow(stack: Stack, seconds: float) -> Row:
    def start() -> None:
        stack.origin.delay = 3.0  # past IMGPROXY_DOWNLOAD_TIMEOUT=2: expired entries answer STALE

    def stop() -> None:
        stack.origin.delay = 0.0

    await asyncio.sleep(8)  # let the short cache TTL (8 s) expire what the earlier drills stored
    return await _degraded(stack, seconds, "origin slow (3 s > 2 s timeout)", start, stop)


SCENARIOS = {
    "zipf": zipf,
    "coalesce": coalesce,
    "kill": kill,
    "spike": spike,
    "redis-down": redis_down,
    "s3-slow": s3_slow,
    "origin-slow": origin_slow,
}


def render(rows: list[Row]) -> str:
    head = ["scenario", "requests", "2xx", "429", "5xx/err", "p50 ms", "p99 ms", "result"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


async def main(seconds: float, only: list[str], spike_seconds: float = 30.0, logs: Path | None = None) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="imgproxy-py-drill-") as tmp:
        try:
            async with running_stack(Path(tmp)) as stack:
                for name in only:
                    print(f"-- {name}", file=sys.stderr, flush=True)
                    rows.append(await SCENARIOS[name](stack, spike_seconds if name == "spike" else seconds))
        finally:
            if logs is not None:  # HAProxy's per-request timers, the replicas' access logs, Varnish
                logs.mkdir(parents=True, exist_ok=True)
                for log in Path(tmp).glob("*.log"):
                    shutil.copy(log, logs / log.name)
    return rows


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="length of each timed scenario but the spike")
    parser.add_argument("--spike-seconds", type=float, default=30.0, help="length of the 10x spike (the issue's 30 s)")
    parser.add_argument("--quick", action="store_true", help="a short run: 6 s scenarios, a 6 s spike")
    parser.add_argument("--logs", type=Path, help="keep the services' logs in this directory")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated: " + ", ".join(SCENARIOS))
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.spike_seconds = 6.0, 6.0
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    started = time.monotonic()
    load = os.getloadavg()[0]
    rows = asyncio.run(main(args.seconds, only, args.spike_seconds, args.logs))
    print(render(rows))
    print(
        f"\n({time.monotonic() - started:.0f} s; {os.cpu_count()} cores, load average {load:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end; --seconds {args.seconds:g} --spike-seconds {args.spike_seconds:g})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
