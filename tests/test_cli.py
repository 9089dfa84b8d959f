"""The command line, run as a user would: a real server process on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.support import REPO, env_for, free_port, serving, size_of

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
