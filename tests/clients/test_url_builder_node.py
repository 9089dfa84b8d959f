"""imgproxy_py.url against imgproxy's official Node builder (``@imgproxy/imgproxy-node``, pinned in
test_imgproxy_node.py): for the same options, source and key/salt, both URLs mean the same to our
parser, and given the Node URL's options in its order ours is the same string, signature included."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from imgproxy_py.options.parser import ParsedURL, Parser, split_signature
from imgproxy_py.security import verify_signature
from imgproxy_py.settings import Settings
from imgproxy_py.url import URLBuilder, Value, build_url
from tests.clients.test_imgproxy_node import ENDPOINT, HELPER, KEY, NODE_DIR, SALT, _clean_env, install_builder

SETTINGS = Settings.from_env({"IMGPROXY_KEY": KEY, "IMGPROXY_SALT": SALT, "IMGPROXY_PRESETS": "small=w:10,big=w:900"})

# (Node builder options, the same in imgproxy_py.url keywords)
CASES: dict[str, tuple[dict[str, Any], dict[str, Value]]] = {
    "resize-fill": (
        {"resize": {"resizing_type": "fill", "width": 300, "height": 200}, "gravity": {"type": "sm"}},
        {"resize": ("fill", 300, 200), "gravity": "sm"},
    ),
    "size-enlarge-dpr": (
        {"size": {"width": 640, "height": 0, "enlarge": 1}, "dpr": 2},
        {"size": (640, 0, True), "dpr": 2},
    ),
    "crop-fp": (
        {"crop": {"width": 0.5, "height": 0.5, "gravity": {"type": "fp", "x": 0.3, "y": 0.7}}, "width": 200},
        {"crop": (0.5, 0.5, "fp", 0.3, 0.7), "width": 200},
    ),
    "extend-padding": (
        {"extend": {"extend": 1, "gravity": {"type": "so"}}, "padding": {"top": 10, "right": 20}, "height": 100},
        {"extend": (True, "so"), "padding": (10, 20), "height": 100},
    ),
    "rotate-flip-filters": (
        {"rotate": 90, "flip": {"horizontal": 1, "vertical": 1}, "blur": 2, "sharpen": 0.5, "pixelate": 4},
        {"rotate": 90, "flip": (True, True), "blur": 2, "sharpen": 0.5, "pixelate": 4},
    ),
    "watermark-quality-format": (
        {
            "watermark": {"opacity": 0.5, "position": "soea", "x_offset": 10, "y_offset": 5, "scale": 0.2},
            "quality": 70,
            "format": "webp",
            "background": "ff8800",
        },
        {"watermark": (0.5, "soea", 10, 5, 0.2), "quality": 70, "format": "webp", "background": "ff8800"},
    ),
    "presets-cachebuster": (
        {"preset": ["small", "big"], "cachebuster": "v3", "strip_metadata": 1},
        {"preset": ["small", "big"], "cachebuster": "v3", "strip_metadata": True},
    ),
}
SOURCES = ["local:///flowers.jpeg", "https://example.com/a/b.jpg"]


def parse(path: str) -> ParsedURL:
    signature, rest = split_signature(path)
    verify_signature(SETTINGS.security, signature, rest)
    return Parser(SETTINGS.options).parse(rest)


@pytest.fixture(scope="module")
def node_paths() -> dict[tuple[str, str, str], str]:
    node = install_builder()
    keys = [(name, src, display) for name in CASES for src in SOURCES for display in ("plain", "base64")]
    requests = [
        {
            "kind": "image",
            "endpoint": ENDPOINT + "/",
            "url": {"value": src, "displayAs": display},
            "options": CASES[name][0],
            "key": KEY,
            "salt": SALT,
        }
        for name, src, display in keys
    ]
    proc = subprocess.run(
        [node, str(HELPER), str(NODE_DIR)],
        input=json.dumps(requests),
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout)["results"]
    paths = {}
    for key, result in zip(keys, results, strict=True):
        assert "url" in result, f"{key}: {result}"
        paths[key] = result["url"].removeprefix(ENDPOINT)
    return paths


@pytest.mark.parametrize("name", CASES)
def test_same_meaning_and_same_string(node_paths: dict[tuple[str, str, str], str], name: str) -> None:
    for src in SOURCES:
        for display in ("plain", "base64"):
            node_path = node_paths[(name, src, display)]
            ours = build_url(src, CASES[name][1], encode=display == "base64", key=KEY, salt=SALT)
            theirs_parsed, ours_parsed = parse(node_path), parse(ours)
            assert ours_parsed == theirs_parsed, f"{ours} vs {node_path}"
            assert ours_parsed.source_url == src
            # The Node URL's own option segments, re-built by ours: the identical string.
            segments = node_path.split("/")[2:]
            end = segments.index("plain") if display == "plain" else len(segments) - 1
            builder = URLBuilder(key=KEY, salt=SALT)
            for segment in segments[:end]:
                option, *args = segment.split(":")
                builder = builder.option(option, *args)
            assert builder.path(src, encode=display == "base64") == node_path
