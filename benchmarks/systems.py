"""The systems under test: how to install, start, probe and stop each one.

Everything a peer needs goes into ``benchmarks/.peers/`` (ignored by git): thumbor into its
own virtualenv, ipx into an npm folder. Each system is started on a free loopback port
in its own session (process group) and stopped by that group's id.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from benchmarks.workloads import PHOTO, QUALITY, W3_WIDTH, Op, Workload, ipx_path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PEERS = BENCH_DIR / ".peers"

THUMBOR_VERSION = "7.8.0"
IPX_VERSION = "3.1.1"

# Encoder settings matched to this server's defaults (baseline JPEG with optimised Huffman
# tables and 4:2:0; WebP effort 4; AVIF 8-bit 4:2:0 at libvips effort 1 = AVIF speed 8).
THUMBOR_AVIF_SPEED = 8
IPX_SHARP_OPTIONS = '{"jpegProgressive": false, "heifEffort": 1, "heifChromaSubsampling": "4:2:0"}'


class StartError(RuntimeError):
    """A system could not be installed or started."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], log: Path, cwd: Path | None = None) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise StartError(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}); see {log}")


# --- installation ------------------------------------------------------------------------


def thumbor_venv() -> Path:
    return PEERS / "thumbor-venv"


def install_thumbor() -> Path:
    """thumbor from PyPI into benchmarks/.peers/thumbor-venv (once; a stamp records the version)."""
    venv = thumbor_venv()
    stamp = venv / ".bench-installed"
    if stamp.exists() and stamp.read_text().strip() == THUMBOR_VERSION:
        return venv
    PEERS.mkdir(parents=True, exist_ok=True)
    log = PEERS / "thumbor-install.log"
    print(f"[bench] installing thumbor {THUMBOR_VERSION} into {venv} (log: {log})", flush=True)
    base_python = getattr(sys, "_base_executable", sys.executable)
    _run([base_python, "-m", "venv", "--clear", str(venv)], log)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run([*pip, f"thumbor=={THUMBOR_VERSION}"], log)
    stamp.write_text(THUMBOR_VERSION + "\n")
    return venv


def ipx_dir() -> Path:
    return PEERS / "ipx"


def install_ipx() -> Path:
    """ipx (and sharp's prebuilt libvips) from npm into benchmarks/.peers/ipx (once)."""
    folder = ipx_dir()
    stamp = folder / ".bench-installed"
    if not (stamp.exists() and stamp.read_text().strip() == IPX_VERSION):
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            raise StartError("node and npm are needed for ipx")
        folder.mkdir(parents=True, exist_ok=True)
        log = PEERS / "ipx-install.log"
        print(f"[bench] installing ipx {IPX_VERSION} into {folder} (log: {log})", flush=True)
        (folder / "package.json").write_text(
            '{"name": "ipx-bench-peer", "private": true, "type": "module", '
            f'"dependencies": {{"ipx": "{IPX_VERSION}"}}}}\n'
        )
        _run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"], log, cwd=folder)
        stamp.write_text(IPX_VERSION + "\n")
    # The server script must sit next to node_modules for Node's module resolution.
    shutil.copyfile(BENCH_DIR / "ipx_server.mjs", folder / "server.mjs")
    return folder


def thumbor_config(path: Path, root: Path, result_storage: Path | None) -> Path:
    lines = [
        "# written by benchmarks/systems.py",
        "LOADER = 'thumbor.loaders.file_loader'",
        f"FILE_LOADER_ROOT_PATH = {str(root)!r}",
        "STORAGE = 'thumbor.storages.no_storage'",
        "ALLOW_UNSAFE_URL = True",
        f"ENGINE_THREADPOOL_SIZE = {os.cpu_count() or 1}",
        f"QUALITY = {QUALITY['jpeg']}",
        f"WEBP_QUALITY = {QUALITY['webp']}",
        f"AVIF_QUALITY = {QUALITY['avif']}",
        f"AVIF_SPEED = {THUMBOR_AVIF_SPEED}",
        "PROGRESSIVE_JPEG = False",
        "MAX_AGE = 0",
    ]
    if result_storage is None:
        lines.append("RESULT_STORAGE = None")
    else:
        lines += [
            "RESULT_STORAGE = 'thumbor.result_storages.file_storage'",
            f"RESULT_STORAGE_FILE_STORAGE_ROOT_PATH = {str(result_storage)!r}",
            "RESULT_STORAGE_STORES_UNSAFE = True",
            "RESULT_STORAGE_EXPIRATION_SECONDS = 0",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- running -----------------------------------------------------------------------------


@dataclass(slots=True)
class Running:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    cmd: list[str]
    env: dict[str, str]
    ready_path: str
    cwd: Path | None = None


def launch_spec(
    system: str, port: int, root: Path, workload: Workload, server_env: Mapping[str, str], workdir: Path
) -> LaunchSpec:
    # This server runs with its defaults: no IMGPROXY_* from the caller's environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGPROXY_")}
    if system == "server":
        env.update(IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(root))
        env.update(workload.server_env)
        env.update(server_env)
        cmd = [sys.executable, "-m", "imgproxy_py", "serve", "--bind", f"127.0.0.1:{port}"]
        return LaunchSpec(cmd, env, "/health", cwd=REPO)
    if system == "bare":
        cmd = [sys.executable, "-m", "benchmarks.bare_app", "--port", str(port)]
        cmd += ["--photo", str(root / PHOTO), "--width", str(W3_WIDTH)]
        return LaunchSpec(cmd, env, "/", cwd=REPO)
    if system == "floor":
        env.update(server_env)  # FLOOR_LOOP_PYTHON_US (benchmarks/floor_app.py)
        cmd = [sys.executable, "-m", "benchmarks.floor_app", "--port", str(port), "--root", str(root)]
        return LaunchSpec(cmd, env, "/health", cwd=REPO)
    if system == "thumbor":
        venv = install_thumbor()
        storage = None
        if workload.kind == "mix":  # "cache on": thumbor's own file result storage
            storage = workdir / "thumbor-result-storage"
            shutil.rmtree(storage, ignore_errors=True)
        conf = thumbor_config(workdir / "thumbor.conf", root, storage)
        cmd = [str(venv / "bin" / "thumbor"), "-p", str(port), "-i", "127.0.0.1", "-c", str(conf), "-l", "error"]
        return LaunchSpec(cmd, env, "/healthcheck")
    if system == "ipx":
        folder = install_ipx()
        env.update(IPX_BENCH_DIR=str(root), IPX_BENCH_PORT=str(port), IPX_BENCH_SHARP_OPTIONS=IPX_SHARP_OPTIONS)
        node = shutil.which("node") or "node"
        ready = ipx_path(Op("320x240.jpg", 16, "jpeg"))
        return LaunchSpec([node, str(folder / "server.mjs")], env, ready, cwd=folder)
    raise ValueError(f"unknown system {system!r}")


def start(spec: LaunchSpec, name: str, port: int, log: Path, ready_timeout: float = 60.0) -> Running:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            spec.cmd,
            env=spec.env,
            cwd=spec.cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole, by its id
        )
    running = Running(name, proc, port, log)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StartError(f"{name} exited with {proc.returncode} before it was ready; see {log}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(running.base_url + spec.ready_path, timeout=5) as resp,
        ):
            if resp.status == 200:
                return running
        time.sleep(0.2)
    stop(running)
    raise StartError(f"{name} was not ready within {ready_timeout:.0f} s; see {log}")


def stop(running: Running, grace: float = 5.0) -> None:
    proc = running.proc
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # Whatever the leader left behind in its group (uvicorn workers, node helpers).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_system(
    system: str, root: Path, workload: Workload, server_env: Mapping[str, str], workdir: Path
) -> Iterator[Running]:
    port = free_port()
    spec = launch_spec(system, port, root, workload, server_env, workdir)
    running = start(spec, system, port, workdir / f"{system}.log")
    try:
        yield running
    finally:
        stop(running)


def fetch(url: str, timeout: float = 60.0) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()
