"""Secrets never reach the logs, whatever the encoding of the source URL; every JSON line is JSON.

Redaction runs on the percent-decoded URL, so a token hidden behind ``%3D``, ``%253D`` or a
percent-encoded ``@`` is masked like a plain one (Hypothesis varies the encoding).
"""

from __future__ import annotations

import base64
import json
import logging
import string
from urllib.parse import quote, unquote

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from imgproxy_py.observability import PrettyFormatter, redact_path, redact_text
from tests.support import REPO, serving

SECRET = st.text(string.ascii_letters + string.digits + "-_.~", min_size=6, max_size=20).map(lambda s: "Zq9" + s)
PARAM = st.sampled_from(
    ["token", "access_token", "X-Amz-Signature", "X-Amz-Credential", "api_key", "password", "sig", "Auth", "secret"]
)


@st.composite
def secret_urls(draw: st.DrawFn) -> tuple[str, str]:
    secret = draw(SECRET)
    shape = draw(st.integers(0, 3))
    if shape == 0:  # a query value may hold '/' and '+' (base64 tokens)
        secret += draw(st.sampled_from(["", "/x+y", "=="]))
        url = f"https://img.example.com/a/b.jpg?{draw(PARAM)}={secret}&w=1"
    elif shape == 1:
        url = f"https://img.example.com/b.jpg?w=1&{draw(PARAM)}={secret}"
    elif shape == 2:
        url = f"http://user:{secret}@img.example.com/b.jpg"
    else:
        url = f"s3://{secret}@bucket/b.jpg"
    return url, secret


@st.composite
def encoded(draw: st.DrawFn, url: str) -> str:
    """The URL as a client might write it in a plain-URL path: some characters percent-encoded
    (any of them, in either case of hex), possibly encoded again."""
    out = []
    for char in url:
        if char == "?" or char == "#" or draw(st.booleans()):  # '?' unescaped would start the query
            hexed = "".join(f"%{b:02X}" for b in char.encode())
            out.append(hexed.lower() if draw(st.booleans()) else hexed)
        else:
            out.append(char)
    text = "".join(out)
    for _ in range(draw(st.integers(0, 2))):
        text = quote(text, safe=draw(st.sampled_from(["", "/", ":/", ":/@="])))
    return text


def _hidden(secret: str, logged: str) -> bool:
    return secret not in logged and secret not in unquote(unquote(logged))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_plain_source_secrets_are_masked_in_any_encoding(data: st.DataObject) -> None:
    url, secret = data.draw(secret_urls())
    path = f"/signature/rs:fit:100:100/plain/{data.draw(encoded(url))}" + data.draw(st.sampled_from(["", "@webp"]))
    logged = redact_path(path)
    assert _hidden(secret, logged), logged
    assert logged.startswith("/-/rs:fit:100:100/plain/")


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_base64_source_secrets_are_masked(data: st.DataObject) -> None:
    url, secret = data.draw(secret_urls())
    b64 = base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    cut = data.draw(st.integers(0, len(b64) - 1))
    if cut:  # imgproxy allows splitting the base64 with '/'
        b64 = f"{b64[:cut]}/{b64[cut:]}"
    logged = redact_path(f"/sig/w:10/{b64}.png")
    assert _hidden(secret, logged) and b64.replace("/", "") not in logged.replace("/", "")


def test_a_path_without_secrets_is_logged_as_received() -> None:
    path = "/sig/rs:fit:10:10/plain/https://example.com/a%20b.jpg%3Fw%3D1@webp"
    assert redact_path(path) == "/-/rs:fit:10:10/plain/https://example.com/a%20b.jpg%3Fw%3D1@webp"


def test_error_details_are_redacted_and_one_line() -> None:
    detail = "cannot fetch https://h/x.jpg?access_token%3DZq9SECRET%26x%3D1\nsecond line"
    cleaned = redact_text(detail)
    assert "Zq9SECRET" not in cleaned and "\n" not in cleaned


def test_a_multi_line_record_is_one_pretty_line() -> None:
    record = logging.LogRecord("pyvips", logging.WARNING, __file__, 1, "VIPS: first\nsecond\r\nthird", None, None)
    line = PrettyFormatter().format(record)
    assert "\n" not in line and "\r" not in line and "first\\nsecond" in line


def test_a_real_server_logs_json_only_and_no_secret_in_any_encoding() -> None:
    """The issue's check: JSON logs parsed line by line, secrets hunted for across URL encodings."""
    env = {
        "IMGPROXY_LOG_FORMAT": "json",
        "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(REPO / "examples" / "images"),  # prints the example URL
        "IMGPROXY_TIMEOUTT": "1",  # a start-up warning
        "IMGPROXY_DOWNLOAD_TIMEOUT": "1",
    }
    secret = "Zq9TopSecretValue"
    sources = [
        f"https://127.0.0.1:1/a.jpg%3Faccess_token%3D{secret}%26x%3D1",
        f"https://127.0.0.1:1/a.jpg%253Faccess_token%253D{secret}%2526x%253D1",
        f"http://user:{secret}%40127.0.0.1:1/a.jpg",
        f"http://user:{secret}@127.0.0.1:1/a.jpg",  # an unescaped '@': the tail once leaked via `detail`
        f"http%3A%2F%2Fuser%3A{secret}%40127.0.0.1%3A1%2Fa.jpg",
        f"https://127.0.0.1:1/a.jpg%3Fx%3D1%26X-Amz-Signature%3D{secret}@png",
    ]
    with serving(env=env) as (base, proc):
        with httpx.Client(timeout=20) as client:
            for source in sources:
                assert client.get(f"{base}/insecure/w:10/plain/{source}").status_code == 404
            # a libvips/GLib warning (sigma out of range) must come through logging too
            assert client.get(f"{base}/insecure/sh:50/w:10/plain/local:///flowers.jpeg").status_code == 200
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    lines = [line for line in output.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line, or this raises
    assert all(isinstance(r, dict) for r in records)
    startup = [r for r in records if r.get("event") == "startup"]
    assert len(startup) == 1 and "/plain/local:///" in startup[0]["example_url"]
    assert any("IMGPROXY_TIMEOUTT" in r["msg"] for r in records)
    assert any("GLib" in r["msg"] for r in records)
    requests = [r for r in records if r.get("msg") == "request"]
    assert len(requests) == len(sources) + 1
    assert secret not in output and secret.lower() not in unquote(unquote(output)).lower()
