"""``imgproxy-py doctor`` as a container start check: a real process, a real redis-server up and down."""

from __future__ import annotations

import os
import subprocess
import sys

from imgproxy_py.doctor import mask
from tests.cache.memcached_server import running_memcached
from tests.cache.redis_server import running_redis
from tests.support import images_dir

KEY, SALT, SECRET = "943b421c9eb07c830af81030552c8600", "520f986b998545b4785e0defbc4f3c12", "s3cr3t-bearer-token"


def doctor(**env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("IMGPROXY_", "AWS_"))}
    base.update({"IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(images_dir()), **env})
    return subprocess.run(
        [sys.executable, "-m", "imgproxy_py", "doctor"], capture_output=True, text=True, env=base, timeout=120
    )


def test_healthy_with_redis_up_then_unhealthy_with_redis_down() -> None:
    secrets = {
        "IMGPROXY_KEY": KEY,
        "IMGPROXY_SALT": SALT,
        "IMGPROXY_SECRET": SECRET,
        "AWS_SECRET_ACCESS_KEY": "awsss",
        "AWS_ACCESS_KEY_ID": "id",
    }
    with running_redis() as redis:
        up = doctor(IMGPROXY_CACHE_REDIS_URL=redis.url, IMGPROXY_REQUESTS_QUEUE_SIZE="10", **secrets)
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"L2 redis {redis.url}: reachable" in up.stdout
        assert "imgproxy-py 0.1.0: healthy" in up.stdout
        redis.stop()
        down = doctor(IMGPROXY_CACHE_REDIS_URL=redis.url, IMGPROXY_REQUESTS_QUEUE_SIZE="10", **secrets)
    assert down.returncode == 1, down.stdout + down.stderr
    assert f"L2 redis {redis.url}: UNREACHABLE" in down.stdout
    assert "PROBLEM: cache tier L2" in down.stdout
    for report in (up.stdout, down.stdout):
        for secret in (KEY, SALT, SECRET, "awsss"):
            assert secret not in report
        assert "security.keys = ***" in report and "server.secret = ***" in report
        assert "jpeg  read/write libjpeg-turbo" in report
        assert "face detection: not installed" in report
        assert "Allocator" in report


def test_risky_settings_warn_and_a_broken_setting_fails() -> None:
    risky = doctor(
        IMGPROXY_BIND="0.0.0.0:8080",
        IMGPROXY_WIDHT="300",
        IMGPROXY_ALLOW_PRIVATE_SOURCE_ADDRESSES="true",
        IMGPROXY_CACHE_REDIS_URL="redis://:hunter2@127.0.0.1:1/0",  # nothing listens on port 1
        IMGPROXY_CACHE_TIMEOUT="0.2",
    )
    assert risky.returncode == 1
    assert risky.stdout.count("warning: listening on 0.0.0.0:8080") == 1  # once, whoever words it
    assert "warning: IMGPROXY_WIDHT is not a known setting" in risky.stdout
    assert "warning: http sources may connect to private addresses" in risky.stdout
    assert "warning: IMGPROXY_REQUESTS_QUEUE_SIZE=0" in risky.stdout
    assert "hunter2" not in risky.stdout + risky.stderr and "redis://***@127.0.0.1:1/0" in risky.stdout

    broken = doctor(IMGPROXY_PRESETS="thumb=nope:1")
    assert broken.returncode == 1
    assert "PROBLEM: the server would not start" in broken.stdout

    quiet = doctor(IMGPROXY_REQUESTS_QUEUE_SIZE="10", IMGPROXY_CACHE_MEMORY_SIZE="0")
    assert quiet.returncode == 0 and "ok: nothing risky found" in quiet.stdout
    assert "none configured" in quiet.stdout


def test_mask() -> None:
    assert mask("keys", (b"\x01",)) == "***"
    assert mask("secret", "") == "(not set)"
    assert mask("redis_url", "redis://u:p@h:1/0") == "redis://***@h:1/0"
    assert mask("data", b"\x00" * 10) == "'<10 bytes>'"
    assert mask("max_src_file_size", 5) == "5"


def test_memcached_tier_is_named_and_probed() -> None:
    with running_memcached() as memcached:
        up = doctor(IMGPROXY_CACHE_MEMCACHED_URL=memcached.url, IMGPROXY_REQUESTS_QUEUE_SIZE="10")
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"L2 memcached {memcached.url}: reachable" in up.stdout
