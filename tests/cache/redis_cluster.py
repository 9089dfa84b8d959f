"""A real Redis Cluster on loopback: six redis-server nodes (3 masters, 3 replicas) joined by
``redis-cli --cluster create``, started and stopped by the tests (and the cluster drill).

Node timeout is short (1 s) so a killed master fails over within seconds, and
``cluster-require-full-coverage no`` keeps the surviving shards answering meanwhile.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import free_port


class ClusterUnavailable(RuntimeError):
    """redis-server or redis-cli is not installed."""


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _cli(port: int, *args: str) -> str:
    cli = shutil.which("redis-cli")
    assert cli is not None
    return subprocess.run(
        [cli, "-h", "127.0.0.1", "-p", str(port), *args], capture_output=True, text=True, timeout=30, check=False
    ).stdout


@dataclass
class RedisCluster:
    ports: list[int]
    workdir: Path
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    bus_ports: dict[int, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL naming every node (the client needs only one to discover the rest)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def _start_node(self, port: int) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        node_dir = self.workdir / str(port)
        node_dir.mkdir(exist_ok=True)
        self.procs[port] = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--cluster-port",
                str(self.bus_ports[port]),  # port+10000 may be past 65535
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(node_dir / "nodes.conf"),
                "--cluster-node-timeout",
                "1000",
                "--cluster-require-full-coverage",
                "no",
                "--cluster-replica-validity-factor",
                "0",  # a replica always takes over
                "--dir",
                str(node_dir),
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self) -> None:
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            raise ClusterUnavailable("redis-server/redis-cli not installed (apt-get install redis-server)")
        for port in self.ports:
            self._start_node(port)
        deadline = time.monotonic() + 15
        while not all(_ping(p) for p in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError("redis cluster nodes did not start")
            time.sleep(0.05)
        cli = shutil.which("redis-cli")
        assert cli is not None
        create = subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if create.returncode != 0:
            raise RuntimeError("redis-cli --cluster create failed: " + create.stdout[-500:] + create.stderr[-500:])
        self.wait_ok()

    def wait_ok(self, within: float = 30) -> None:
        """Until every live node reports cluster_state:ok (all slots served)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            live = [p for p, proc in self.procs.items() if proc.poll() is None]
            if live and all("cluster_state:ok" in _cli(p, "cluster", "info") for p in live):
                return
            time.sleep(0.1)
        raise RuntimeError("redis cluster did not reach cluster_state:ok")

    def masters(self) -> list[int]:
        """Ports of the live masters, from a live node's view."""
        live = [p for p, proc in self.procs.items() if proc.poll() is None]
        lines = _cli(live[0], "cluster", "nodes").splitlines()
        result = []
        for line in lines:
            parts = line.split()
            if len(parts) > 2 and "master" in parts[2] and "fail" not in parts[2]:
                result.append(int(parts[1].split("@")[0].rsplit(":", 1)[1]))
        return sorted(result)

    def master_for(self, key: str) -> int:
        """The port of the master serving ``key``'s slot."""
        live = [p for p, proc in self.procs.items() if proc.poll() is None]
        slot = int(_cli(live[0], "cluster", "keyslot", key).strip())
        for line in _cli(live[0], "cluster", "nodes").splitlines():
            parts = line.split()
            if len(parts) < 9 or "master" not in parts[2] or "fail" in parts[2]:
                continue
            for span in parts[8:]:
                lo, _, hi = span.partition("-")
                if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                    return int(parts[1].split("@")[0].rsplit(":", 1)[1])
        raise RuntimeError(f"no master serves slot {slot}")

    def kill(self, port: int) -> None:
        proc = self.procs[port]
        proc.kill()
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def _distinct_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


@contextmanager
def running_cluster() -> Iterator[RedisCluster]:
    with tempfile.TemporaryDirectory(prefix="imgproxy-py-rc-") as workdir:
        ports = _distinct_ports(12)
        cluster = RedisCluster(ports[:6], Path(workdir), bus_ports=dict(zip(ports[:6], ports[6:], strict=True)))
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()
