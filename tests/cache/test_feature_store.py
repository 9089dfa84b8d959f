"""The feature store across real server processes sharing a real redis-server.

The first process detects the faces and stores the record after its response; a second
process serving another size of the same source reads the record and runs no detector
(its JSON access line says ``faces:stored``, the first one's ``faces:detected``). A new
detector version recomputes, and a corrupt record is ignored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import redis

from imgproxy_py.analysis.records import record_key, source_digest
from imgproxy_py.cache.base import CacheEntry
from tests.cache.redis_server import RedisServer
from tests.processing.test_faces import detector, face_photo
from tests.support import FIXTURES, serving

FACE_URL = "/_/rs:fill:{size}/g:sm/plain/local:///faces/astronaut.png@jpg"


@contextmanager
def server(redis_url: str, log: Path, **extra: str) -> Iterator[str]:
    env = {
        "IMGPROXY_CACHE_REDIS_URL": redis_url,
        "IMGPROXY_CACHE_TIMEOUT": "3",  # a loaded machine must not turn Redis calls into fallbacks
        "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(FIXTURES),
        "IMGPROXY_LOG_FORMAT": "json",
        "IMGPROXY_WORKERS": "2",
        **extra,
    }
    with log.open("w") as output, serving(env=env, output=output) as (base, _):
        yield base


def analysis_of(log: Path, path_part: str) -> list[str]:
    """The ``analysis`` field of the access lines whose path contains ``path_part``."""
    found: list[str] = []
    deadline = time.monotonic() + 5  # access lines are flushed within 0.2 s
    while time.monotonic() < deadline:
        found = []
        for line in log.read_text().splitlines():
            if line.startswith("{") and '"msg":"request"' in line:
                entry = json.loads(line)
                if path_part in entry.get("path", ""):
                    found.append(entry.get("analysis", ""))
        if found:
            break
        time.sleep(0.1)
    return found


def wait_for_record(client: redis.Redis, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(b"features:" in key for key in client.scan_iter("*")):
            return
        time.sleep(0.05)
    raise AssertionError("no feature record was written")


def test_a_second_process_reuses_the_stored_faces(redis_server: RedisServer, tmp_path: Path) -> None:
    detector()
    face_photo("astronaut.png")
    store = redis.Redis.from_url(redis_server.url)
    with ExitStack() as stack:
        a = stack.enter_context(server(redis_server.url, tmp_path / "a.log"))
        b = stack.enter_context(server(redis_server.url, tmp_path / "b.log"))
        first = httpx.get(a + FACE_URL.format(size="100:400"), timeout=30)
        assert first.status_code == 200
        wait_for_record(store)
        second = httpx.get(b + FACE_URL.format(size="400:100"), timeout=30)  # another result: a miss
        assert second.status_code == 200 and second.headers["x-cache"] == "MISS"
        info = httpx.get(b + "/info/_/plain/local:///faces/astronaut.png", timeout=30).json()
        # Read while the servers live: access lines are written in batches, a fifth of a second later.
        assert analysis_of(tmp_path / "a.log", "100:400") == ["faces:detected:1"]
        assert analysis_of(tmp_path / "b.log", "400:100") == ["faces:stored:1"]
    (face,) = info["faces"]
    assert abs(face["x"] - 178) <= 4 and abs(face["y"] - 63) <= 4 and abs(face["width"] - 89) <= 6
    assert 0.3 < info["focal_point"]["x"] < 0.5


def test_a_new_model_version_recomputes_and_a_corrupt_record_is_ignored(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    detector()
    data, _ = face_photo("astronaut.png")
    store = redis.Redis.from_url(redis_server.url)
    with server(redis_server.url, tmp_path / "a.log") as a:
        assert httpx.get(a + FACE_URL.format(size="100:400"), timeout=30).status_code == 200
        wait_for_record(store)
    # Another threshold is another detector version: the old record is not trusted.
    with server(redis_server.url, tmp_path / "b.log", IMGPROXY_FACE_DETECTION_THRESHOLD="0.6") as b:
        assert httpx.get(b + FACE_URL.format(size="400:100"), timeout=30).status_code == 200
        assert analysis_of(tmp_path / "b.log", "400:100") == ["faces:detected:1"]
    # Overwrite every record with garbage in a valid cache envelope: read as missing, never an error.
    garbage = CacheEntry(b'{"schema":1,"faces":"no"}', "features", None, None, time.time(), time.time() + 600)
    for key in store.scan_iter("*features:*"):
        store.set(key, garbage.to_bytes())
    with server(redis_server.url, tmp_path / "c.log") as c:
        response = httpx.get(c + FACE_URL.format(size="300:120"), timeout=30)
        assert response.status_code == 200
        assert analysis_of(tmp_path / "c.log", "300:120") == ["faces:detected:1"]
    assert record_key(source_digest(data), "x").startswith("features:")
