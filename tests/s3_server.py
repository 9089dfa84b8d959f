"""A real S3 endpoint for the tests: moto's standalone server on a free loopback port.

One server runs per test session (tests/conftest.py: ``s3_server``); every test makes its
own bucket with a unique name, so tests never see each other's objects.
"""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
from minio import Minio
from minio.commonconfig import ENABLED
from minio.versioningconfig import VersioningConfig

from imgproxy_py.s3conn import S3Target
from tests.support import free_port

ACCESS_KEY = "AKIAIMGPROXYPYTEST01"
SECRET_KEY = "imgproxy-py-test-secret-key-0123456789ab"
REGION = "us-east-1"


@dataclass
class S3Server:
    endpoint: str  # http://127.0.0.1:<port>

    def target(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> S3Target:
        return S3Target(self.endpoint, REGION, True, access_key, secret_key)

    def env(self, **overrides: str) -> dict[str, str]:
        """The settings that point the app's ``s3://`` source at this server."""
        env = {
            "IMGPROXY_USE_S3": "true",
            "IMGPROXY_S3_ENDPOINT": self.endpoint,
            "IMGPROXY_S3_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }
        env.update(overrides)
        return env

    def client(self) -> Minio:
        return self.target().client(timeout=10)

    def new_bucket(self, files: Iterable[Path] = (), *, versioned: bool = False) -> str:
        """A fresh bucket holding ``files`` under their base names."""
        name = f"t-{uuid.uuid4().hex[:20]}"
        client = self.client()
        client.make_bucket(name)
        if versioned:
            client.set_bucket_versioning(name, VersioningConfig(ENABLED))
        for path in files:
            self.put(name, path.name, path.read_bytes())
        return name

    def put(self, bucket: str, key: str, data: bytes) -> str | None:
        """Upload ``data``; returns the new version id when the bucket is versioned."""
        result = self.client().put_object(bucket, key, io.BytesIO(data), len(data))
        return result.version_id

    def unprivileged_keys(self) -> tuple[str, str]:
        """Access keys of a new IAM user with no policy: every S3 call is AccessDenied once auth is on."""
        user = f"nobody-{uuid.uuid4().hex[:8]}"
        # Auth is off while this runs, so moto takes any signature; it reads the service from the scope.
        scope = f"{ACCESS_KEY}/20260101/{REGION}/iam/aws4_request"
        auth = f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=0"
        for action in ("CreateUser", "CreateAccessKey"):
            response = httpx.post(
                self.endpoint + "/",
                data={"Action": action, "UserName": user, "Version": "2010-05-08"},
                headers={"Authorization": auth},
            )
            response.raise_for_status()
        key = re.search(r"<AccessKeyId>([^<]+)</AccessKeyId>", response.text)
        secret = re.search(r"<SecretAccessKey>([^<]+)</SecretAccessKey>", response.text)
        assert key and secret, response.text
        return key.group(1), secret.group(1)

    @contextmanager
    def enforcing_auth(self) -> Iterator[None]:
        """IAM checks on for the duration (moto's switch is server-wide: tests run one at a time)."""
        httpx.post(self.endpoint + "/moto-api/reset-auth", content=b"0").raise_for_status()
        try:
            yield
        finally:
            httpx.post(self.endpoint + "/moto-api/reset-auth", content=b"inf").raise_for_status()


@contextmanager
def running_moto() -> Iterator[S3Server]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_", "INITIAL_NO_AUTH"))}
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=log,
            env=env,
        )
        try:
            server = S3Server(f"http://127.0.0.1:{port}")
            _wait_until_up(server, proc, log)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _wait_until_up(server: S3Server, proc: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            httpx.get(server.endpoint + "/moto-api/data.json", timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    log.seek(0)
    output = log.read()[-2000:]
    raise RuntimeError(f"moto server did not start (exit code {proc.poll()}): {output.decode(errors='replace')}")


@contextmanager
def blackhole() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` that accepts connections (the kernel does) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def closed_port_endpoint() -> str:
    """An endpoint nothing listens on: connections are refused at once."""
    return f"http://127.0.0.1:{free_port()}"
