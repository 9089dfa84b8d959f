"""Purge: every variant of a source, from every tier and every process (two real server
processes sharing Redis, each with its own L1), by the CLI and by the admin endpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from imgproxy_py import keys
from imgproxy_py.cache.base import CacheEntry
from imgproxy_py.cache.s3 import S3Tier
from tests.cache.redis_server import RedisServer
from tests.conftest import ClientFactory
from tests.s3_server import S3Server
from tests.support import REPO, Origin, env_for, free_port, missing_prerequisite, serving

PHOTO = "2569067123_aca715a2ee_o.jpg"
ADMIN = "purge-secret-for-tests"


def _get(base: str, path: str) -> httpx.Response:
    response = httpx.get(base + path, timeout=20)
    assert response.status_code == 200
    return response


def _until(base: str, path: str, expected: tuple[str, ...]) -> httpx.Response:
    """The response once its X-Cache is one of ``expected`` (remote writes happen after the response)."""
    deadline = time.monotonic() + 10
    while True:
        response = _get(base, path)
        if response.headers["x-cache"] in expected or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def test_purge_reaches_every_tier_and_process(redis_server: RedisServer, origin: Origin) -> None:
    source = origin.url(PHOTO)
    tag = keys.source_tag(source)
    paths = [f"/_/rs:fit:{w}:{w}/plain/{source}" for w in (50, 60)]
    env = {
        "IMGPROXY_CACHE_REDIS_URL": redis_server.url,
        "IMGPROXY_CACHE_TIMEOUT": "3",
        "IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES": "true",
        "IMGPROXY_WORKERS": "2",
        "IMGPROXY_ADMIN_SECRET": ADMIN,
    }
    with serving(env=env) as (a, _), serving(env=env) as (b, _):

        def warm() -> None:
            """Both variants in L2 and in both processes' L1."""
            for path in paths:
                _get(a, path)
                assert _until(b, path, ("HIT-L2", "HIT-L1")).headers["x-cache"] in ("HIT-L2", "HIT-L1")
                assert _get(a, path).headers["x-cache"] == "HIT-L1"
                assert _get(b, path).headers["x-cache"] == "HIT-L1"

        def assert_purged(fetches_before: int) -> None:
            time.sleep(0.5)  # the broadcast reaches the other process's subscriber
            for path in paths:
                assert _get(a, path).headers["x-cache"] == "MISS"
                assert _get(b, path).headers["x-cache"] != "HIT-L1"  # L2 again at most, refilled by a
            assert len(origin.requests) > fetches_before

        warm()
        first = _get(a, paths[0])
        assert first.headers["surrogate-key"] == tag and first.headers["cache-tag"] == tag

        # 1. The command line, from a third process.
        fetches = len(origin.requests)
        cli = subprocess.run(
            [sys.executable, "-m", "imgproxy_py", "purge", source],
            capture_output=True,
            text=True,
            env=env_for(**env),
            cwd=REPO,
            timeout=60,
            check=False,
        )
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout) == {"tag": tag, "purged": {"L2": 2}}
        assert_purged(fetches)

        # 2. The admin endpoint of one process purges the other's L1 too.
        warm()
        assert httpx.post(f"{b}/_admin/purge", json={"url": source}, timeout=10).status_code == 401
        wrong = httpx.post(
            f"{b}/_admin/purge", json={"url": source}, headers={"Authorization": "Bearer nope"}, timeout=10
        )
        assert wrong.status_code == 401
        fetches = len(origin.requests)
        done = httpx.post(
            f"{b}/_admin/purge", json={"tag": tag}, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10
        )
        assert done.status_code == 200
        assert done.json() == {"tag": tag, "purged": {"L1": 2, "L2": 2}}
        assert_purged(fetches)


async def test_admin_endpoint_is_off_without_its_secret_and_checks_input(client_factory: ClientFactory) -> None:
    async with client_factory() as client:
        assert (await client.post("/_admin/purge", json={"tag": "0" * 16})).status_code in (404, 405)
    async with client_factory(IMGPROXY_ADMIN_SECRET=ADMIN, IMGPROXY_SECRET="other") as client:
        auth = {"Authorization": f"Bearer {ADMIN}"}
        assert (await client.post("/_admin/purge", json={"tag": "0" * 16})).status_code == 401
        assert (await client.post("/_admin/purge", content=b"{not json", headers=auth)).status_code == 400
        assert (await client.post("/_admin/purge", json={"tag": "../../x"}, headers=auth)).status_code == 400
        assert (await client.post("/_admin/purge", content=b"x" * 100_000, headers=auth)).status_code == 413
        ok = await client.post("/_admin/purge", json={"url": "http://example.com/a.jpg"}, headers=auth)
        assert ok.status_code == 200 and ok.json()["tag"] == keys.source_tag("http://example.com/a.jpg")
        # The image routes still need IMGPROXY_SECRET, not the admin one.
        assert (await client.get("/_/w:10/plain/local:///a.jpg", headers=auth)).status_code == 403


async def test_s3_tier_purges_every_variant_of_one_source(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    tier = S3Tier(s3_server.target(), bucket, "results/", timeout=5)
    try:
        now = time.time()
        entry = CacheEntry(b"x" * 100, "png", None, None, now, now + 60)
        a, b = keys.source_tag("http://o/a.jpg"), keys.source_tag("http://o/b.jpg")
        for name in (f"{a}.{'1' * 40}", f"{a}.{'2' * 40}", f"{b}.{'1' * 40}"):
            await tier.set(name, entry, ttl=60)
        assert await tier.purge(a) == 2
        assert await tier.get(f"{a}.{'1' * 40}") is None and await tier.get(f"{b}.{'1' * 40}") is not None
        assert await tier.purge(a) == 0
    finally:
        await tier.aclose()


def test_a_cdn_purges_by_the_surrogate_key(origin: Origin) -> None:
    """Varnish with deploy/varnish/default.vcl in front of a real server: a PURGE carrying the
    response's Surrogate-Key drops every variant of that source from the CDN, and only those."""
    varnishd = shutil.which("varnishd") or ("/usr/sbin/varnishd" if Path("/usr/sbin/varnishd").exists() else None)
    if varnishd is None:
        missing_prerequisite("varnishd is not installed (CI installs it: apt-get install varnish)")
    env = {"IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES": "true", "IMGPROXY_WORKERS": "2"}
    with serving(env=env) as (base, _), tempfile.TemporaryDirectory() as workdir:
        os.chmod(workdir, 0o755)  # varnishd reads the VCL as its own user
        port = base.rsplit(":", 1)[1]
        vcl = (REPO / "deploy" / "varnish" / "default.vcl").read_text()
        vcl = vcl.replace('.host = "imgproxy";', '.host = "127.0.0.1";')
        vcl = vcl.replace('.port = "8080";', f'.port = "{port}";')
        vcl_file = Path(workdir) / "default.vcl"
        vcl_file.write_text(vcl)
        vcl_file.chmod(0o644)
        cdn_port = free_port()
        cdn = f"http://127.0.0.1:{cdn_port}"
        proc = subprocess.Popen(
            [
                varnishd,
                "-F",
                "-n",
                f"{workdir}/n",
                "-a",
                f"127.0.0.1:{cdn_port}",
                "-f",
                str(vcl_file),
                "-s",
                "malloc,16m",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{cdn}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "varnish did not come up"
                time.sleep(0.2)
            photo = [f"/_/rs:fit:{w}:{w}/plain/{origin.url(PHOTO)}" for w in (30, 40)]
            other = f"/_/rs:fit:30:30/plain/{origin.url('320x240.jpg')}"
            for path in [*photo, other]:
                assert httpx.get(cdn + path, timeout=20).headers["x-cdn"] == "MISS"
                again = httpx.get(cdn + path, timeout=20)
                assert again.headers["x-cdn"] == "HIT"
            first = httpx.get(cdn + photo[0], timeout=20)
            tag = first.headers["surrogate-key"]
            assert tag == keys.source_tag(origin.url(PHOTO))
            purge = httpx.request("PURGE", cdn + "/", headers={"Surrogate-Key": tag}, timeout=10)
            assert purge.status_code == 200
            assert [httpx.get(cdn + p, timeout=20).headers["x-cdn"] for p in photo] == ["MISS", "MISS"]
            assert httpx.get(cdn + other, timeout=20).headers["x-cdn"] == "HIT"
        finally:
            proc.kill()
            proc.wait(timeout=10)


def test_purge_command_refuses_unclear_input(capsys: pytest.CaptureFixture[str]) -> None:
    from imgproxy_py.cli import _purge
    from imgproxy_py.settings import Settings

    assert _purge(Settings(), None, None) == 2
    assert _purge(Settings(), "http://a/b.jpg", "0" * 16) == 2
    assert _purge(Settings(), None, "../etc") == 2
    assert _purge(Settings(), "http://a/b.jpg", None) == 2  # only the in-process L1: nothing shared to purge
    assert "no shared cache tier" in capsys.readouterr().err
