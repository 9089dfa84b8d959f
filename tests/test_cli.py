"""The command line, run as a user would: a real server process on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import REPO, env_for, free_port, missing_prerequisite, serving, size_of

KEY = "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881"
SALT = "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5"


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imgproxy_py", *args],
        capture_output=True,
        text=True,
        env=env_for(**env),
        timeout=60,
        cwd=REPO,
    )


def test_sign_prints_the_docs_signature() -> None:
    result = run_cli(
        "sign", "/rs:fit:300:300/plain/http://img.example.com/pretty/image.jpg", IMGPROXY_KEY=KEY, IMGPROXY_SALT=SALT
    )
    assert result.returncode == 0, result.stderr
    expected = (
        "/m3k5QADfcKPDj-SDI2AIogZbC3FlAXszuwhtWXYqavc/rs:fit:300:300/plain/http://img.example.com/pretty/image.jpg"
    )
    assert result.stdout.strip() == expected


def test_sign_without_key_uses_a_placeholder() -> None:
    result = run_cli("sign", "rs:fit:10:10/plain/local:///a.jpg")
    assert result.stdout.strip() == "/insecure/rs:fit:10:10/plain/local:///a.jpg"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("IMGPROXY_QUALITY", "high"),
        ("IMGPROXY_WORKERS", "0"),
        ("IMGPROXY_KEY", "not-hex"),
        ("IMGPROXY_AUTO_WEBP", "perhaps"),
        ("IMGPROXY_PRESETS", "broken"),
        ("IMGPROXY_LOCAL_FILESYSTEM_ROOT", "/definitely/not/here"),
    ],
)
def test_bad_settings_stop_the_server_naming_the_variable(variable: str, value: str) -> None:
    result = run_cli("serve", "--bind", f"127.0.0.1:{free_port()}", **{variable: value})
    assert result.returncode == 2
    assert variable in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def server() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    with serving(env={"IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(REPO / "examples" / "images")}) as running:
        yield running


def test_serve_prints_a_working_example(server: tuple[str, subprocess.Popen[str]]) -> None:
    base, proc = server
    proc.terminate()
    output, _ = proc.communicate(timeout=15)
    example = next(line.split("try: ", 1)[1] for line in output.splitlines() if "try: " in line)
    assert example.startswith("http://127.0.0.1:")
    assert example.endswith("@webp")
    assert proc.returncode == 0


def test_serve_answers_over_real_http(server: tuple[str, subprocess.Popen[str]]) -> None:
    base, _ = server
    url = f"{base}/insecure/rs:fill:300:200/g:sm/plain/local:///flowers.jpeg@webp"
    with httpx.Client(timeout=10) as client:
        response = client.get(url)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/webp"
        assert size_of(response.content) == (300, 200)
        head = client.head(url)
        assert head.status_code == 200 and head.content == b""
        assert client.get(f"{base}/insecure/rs:fill:300:200/plain/local:///nope.jpg").status_code == 404
    assert os.path.isdir(REPO / "examples" / "images")


# --- the container health check ---------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [
        {"IMGPROXY_PATH_PREFIX": "/img"},
        {"IMGPROXY_HEALTH_CHECK_PATH": "/healthz", "IMGPROXY_PATH_PREFIX": "/img"},
        {},
    ],
    ids=["prefix", "custom-path", "plain"],
)
def test_health_command_follows_the_configured_bind_and_path(env: dict[str, str]) -> None:
    """The Dockerfile's HEALTHCHECK runs this with the container's settings (another port here, a prefix)."""
    path = env.get("IMGPROXY_HEALTH_CHECK_PATH") or env.get("IMGPROXY_PATH_PREFIX", "") + "/health"
    with serving(env=env, health=path) as (base, _):
        port = base.rsplit(":", 1)[1]  # a free port, not 8080
        env = {**env, "IMGPROXY_BIND": f"127.0.0.1:{port}"}
        assert run_cli("health", **env).returncode == 0
        if "IMGPROXY_PATH_PREFIX" in env:
            # what the old fixed check (127.0.0.1:8080/health) would have asked: not the health path
            assert httpx.get(f"{base}/health").status_code != 200
    failed = run_cli("health", **env)  # the server has stopped
    assert failed.returncode == 1 and f"127.0.0.1:{port}{path}" in failed.stderr


def test_health_command_on_all_interfaces_asks_loopback() -> None:
    from imgproxy_py.cli import health_url
    from imgproxy_py.settings import Settings

    assert health_url(Settings.from_env({"IMGPROXY_BIND": ":9000"})) == "http://127.0.0.1:9000/health"
    assert health_url(Settings.from_env({"IMGPROXY_BIND": "[::]:9000"})) == "http://[::1]:9000/health"


def test_dockerfile_checks_health_with_the_cli_and_leaves_the_allocator_to_it() -> None:
    """No docker daemon in CI: the Dockerfile is checked as text. LD_PRELOAD of an x86_64 path
    broke arm64 images and forced jemalloc over IMGPROXY_MALLOC=glibc; the CLI picks instead."""
    dockerfile = (REPO / "Dockerfile").read_text()
    healthcheck = next(line for line in dockerfile.splitlines() if line.startswith("HEALTHCHECK"))
    assert '"imgproxy-py", "health"' in healthcheck and "8080" not in healthcheck
    instructions = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    assert not any("LD_PRELOAD" in line or "x86_64" in line for line in instructions)
    assert "libjemalloc2" in dockerfile


def test_glibc_is_honoured_and_jemalloc_chosen_otherwise() -> None:
    """IMGPROXY_MALLOC decides at start-up, on any architecture the library path list covers."""
    from imgproxy_py import allocator

    if allocator.jemalloc_path() is None:
        missing_prerequisite("libjemalloc2 is not installed (apt-get install libjemalloc2; .ci/run does)")
    for malloc, expected in (("glibc", False), ("auto", True), ("jemalloc", True)):
        env = {"IMGPROXY_MALLOC": malloc, "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(REPO / "examples" / "images")}
        with serving(env=env) as (_, proc):
            maps = Path(f"/proc/{proc.pid}/maps").read_text()
            assert ("libjemalloc" in maps) is expected, malloc


# --- start-up warnings ------------------------------------------------------------------


def test_serve_warns_about_unknown_settings_and_an_open_unsigned_bind() -> None:
    # A preset that stops start-up after the warnings are logged: nothing listens on every interface.
    env = {"IMGPROXY_TIMEOUTT": "3", "IMGPROXY_USE_GCS": "true", "IMGPROXY_PRESETS": "broken"}
    result = run_cli("serve", "--bind", f"0.0.0.0:{free_port()}", **env)
    assert result.returncode == 2
    out = result.stdout
    assert "did you mean IMGPROXY_TIMEOUT?" in out and "IMGPROXY_USE_GCS" in out and "WITHOUT URL SIGNING" in out


def test_strict_config_stops_the_server() -> None:
    result = run_cli("serve", "--bind", f"127.0.0.1:{free_port()}", IMGPROXY_STRICT_CONFIG="1", IMGPROXY_TIMEOUTT="3")
    assert result.returncode == 2 and "IMGPROXY_TIMEOUTT" in result.stderr
