"""IMGPROXY_DEVELOPMENT_ERRORS_MODE: error bodies say what was wrong; production bodies stay terse."""

from __future__ import annotations

import pytest

from imgproxy_py.options.appliers import APPLIERS
from imgproxy_py.options.usage import SYNTAX, nearest
from imgproxy_py.url import URLBuilder
from tests.conftest import app_client

KEY, SALT = "ab" * 32, "cd" * 32
DEV = {"IMGPROXY_DEVELOPMENT_ERRORS_MODE": "true"}

# path → (status, production body, what the development body must also say)
CASES: dict[str, tuple[str, int, str, list[str]]] = {
    "typo": (
        "/insecure/rz:fit:100:100/plain/local:///flowers.jpeg",
        404,
        "Invalid URL",
        ["unknown option 'rz'", "did you mean 'rs' (resize: rs:%resizing_type:%width:%height"],
    ),
    "bad-argument": (
        "/insecure/w:abc/plain/local:///flowers.jpeg",
        404,
        "Invalid URL",
        ["width: invalid integer 'abc'", "expected w:%width (integer ≥ 0)"],
    ),
    "too-many-arguments": (
        "/insecure/g:ce:1:2:3/plain/local:///flowers.jpeg",
        404,
        "Invalid URL",
        ["gravity: takes at most 3 arguments, got 4", "expected g:%type[:%x:%y]"],
    ),
    "bad-extension": (
        "/insecure/w:10/plain/local:///flowers.jpeg@jpgg",
        404,
        "Invalid URL",
        ["unknown output extension 'jpgg'", "expected one of jpg, png, webp"],
    ),
    "disabled-source": (
        "/insecure/w:10/plain/s3://bucket/a.jpg",
        404,
        "Unknown or disabled source scheme: s3 (set IMGPROXY_USE_S3 to enable it)",
        ["scheme 's3' is disabled"],
    ),
    "missing-file": (
        "/insecure/w:10/plain/local:///nope.jpg",
        404,
        "Source image is not found",
        ["local file is missing or unreadable", "relative to IMGPROXY_LOCAL_FILESYSTEM_ROOT"],
    ),
    "info-option": (
        "/info/insecure/w:10/plain/local:///flowers.jpeg",
        404,
        "Invalid URL",
        ["unknown info option 'w'", "/info takes only cachebuster (cb) and expires (exp)"],
    ),
    "security-option": (
        "/insecure/msr:1/plain/local:///flowers.jpeg",
        403,
        "Security processing options are not allowed",
        ["IMGPROXY_ALLOW_SECURITY_OPTIONS"],
    ),
}


@pytest.mark.parametrize("name", CASES)
async def test_development_bodies_explain_production_bodies_do_not(name: str) -> None:
    path, status, public, explained = CASES[name]
    async with app_client() as client:
        terse = await client.get(path)
    async with app_client(**DEV) as client:
        verbose = await client.get(path)
    assert terse.status_code == verbose.status_code == status
    assert terse.text == public  # one line, nothing more
    assert verbose.text.splitlines()[0] == public
    for text in explained:
        assert text in verbose.text
        assert text not in terse.text
    assert "cache-control" not in verbose.headers


async def test_signature_errors_explain_without_revealing_the_expected_signature() -> None:
    good = URLBuilder(key=KEY, salt=SALT).width(10).path("local:///flowers.jpeg")
    wrong = URLBuilder(key="12" * 32, salt=SALT).width(10).path("local:///flowers.jpeg")
    async with app_client(IMGPROXY_KEY=KEY, IMGPROXY_SALT=SALT, **DEV) as client:
        assert (await client.get(good)).status_code == 200
        response = await client.get(wrong)
    assert response.status_code == 403
    assert "invalid signature" in response.text and "imgproxy-py sign" in response.text
    assert good.split("/")[1] not in response.text and KEY not in response.text and SALT not in response.text


def test_nearest_option_names() -> None:
    assert nearest("rz", APPLIERS) == "rs"  # a neighbouring key beats the shorter "z"
    assert nearest("widht", APPLIERS) == "width"
    assert nearest("qualty", APPLIERS) == "quality"
    assert nearest("zzzzzzzz", APPLIERS) is None
    assert set(SYNTAX) <= set(APPLIERS)
