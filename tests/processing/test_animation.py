"""Animations keep every frame, their timing and loop count; stills take the first frame."""

from __future__ import annotations

from typing import Any

import pytest

from imgproxy_py.errors import InvalidImageError
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.options.parser import Parser
from imgproxy_py.processing import Job, Limits, ProcessingConfig, Processor, vips
from imgproxy_py.settings import OptionSettings
from tests.support import fixture_path, mean_abs_diff

ANIMATIONS = ["rotating-squares.gif", "animated-loop-3.gif", "animated-loop-3.webp"]
_parser = Parser(OptionSettings())


def run(name: str, options: str, config: ProcessingConfig | None = None) -> tuple[Any, ImageFormat]:
    vips.init()
    data = fixture_path(name).read_bytes()
    po = _parser.parse(f"/{options}/plain/local:///{name}").options
    result = Processor(config or ProcessingConfig()).process(Job(data, po))
    return vips.open_source(result.data, n=-1) if result.format.supports_animation else vips.open_source(
        result.data
    ), result.format


def meta(img: Any, name: str) -> Any:
    return img.get(name) if img.get_typeof(name) != 0 else None


def frames_of(img: Any) -> list[Any]:
    pages = meta(img, "n-pages") or 1
    height = img.height // pages
    return [img.extract_area(0, i * height, img.width, height) for i in range(pages)]


@pytest.mark.parametrize("name", ANIMATIONS)
@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_fill_keeps_frames_delays_and_loop(name: str, fmt: str) -> None:
    source = vips.open_source(fixture_path(name).read_bytes(), n=-1)
    out, result_format = run(name, f"rs:fill:40:40/f:{fmt}")
    assert result_format.value == fmt
    assert out.width == 40
    assert meta(out, "loop") == meta(source, "loop")
    if fmt == "webp" and name == "rotating-squares.gif":
        # libwebp merges identical consecutive frames (this source repeats each frame 3-4 times)
        # and adds their delays up: the same animation, fewer frames, total duration intact.
        assert sum(meta(out, "delay")) == sum(meta(source, "delay"))
        return
    assert meta(out, "n-pages") == meta(source, "n-pages")
    assert out.height == 40 * meta(source, "n-pages")
    assert list(meta(out, "delay")) == list(meta(source, "delay"))


@pytest.mark.parametrize("name", ANIMATIONS)
def test_every_frame_is_its_own_source_frame_resized(name: str) -> None:
    source = vips.open_source(fixture_path(name).read_bytes(), n=-1)
    out, _ = run(name, "rs:fill:40:40/f:gif")
    for original, produced in zip(frames_of(source), frames_of(out), strict=True):
        expected = original.thumbnail_image(40, height=40, crop="centre")
        assert mean_abs_diff(produced, expected) < 12


def test_geometry_applies_per_frame() -> None:
    out, _ = run("animated-loop-3.gif", "rs:fit:100:100/rot:90/f:gif")
    source = vips.open_source(fixture_path("animated-loop-3.gif").read_bytes(), n=-1)
    pages = meta(source, "n-pages")
    assert meta(out, "n-pages") == pages
    frame_h = source.height // pages
    expected_w, expected_h = round(frame_h * 100 / source.width), 100  # rotated: the old height is the width
    assert (out.width, out.height // pages) == (expected_w, expected_h)
    rotated = frames_of(source)[3].rot("d90")
    assert mean_abs_diff(frames_of(out)[3], rotated) < 12


@pytest.mark.parametrize("name", ANIMATIONS)
def test_still_formats_take_the_first_frame(name: str) -> None:
    source = vips.open_source(fixture_path(name).read_bytes(), n=-1)
    out, fmt = run(name, "rs:fill:40:40/f:png")
    assert fmt is ImageFormat.PNG
    assert (out.width, out.height) == (40, 40)
    assert mean_abs_diff(out, frames_of(source)[0].thumbnail_image(40, height=40, crop="centre")) < 12


def test_frame_limit_truncates_and_one_frame_means_still() -> None:
    five, _ = run(
        "rotating-squares.gif", "rs:fill:40:40/f:gif", ProcessingConfig(limits=Limits(max_animation_frames=5))
    )
    assert meta(five, "n-pages") == 5 and len(meta(five, "delay")) == 5
    still, _ = run(
        "rotating-squares.gif", "rs:fill:40:40/f:gif", ProcessingConfig(limits=Limits(max_animation_frames=1))
    )
    assert (meta(still, "n-pages") or 1) == 1 and still.height == 40


def test_resolution_limit_counts_all_frames() -> None:
    # 80×80 × 30 frames = 192 000 px: over a 100 000 px limit as an animation, fine as a still.
    config = ProcessingConfig(limits=Limits(max_src_resolution=100_000))
    with pytest.raises(InvalidImageError):
        run("rotating-squares.gif", "rs:fill:40:40/f:gif", config)
    still, _ = run("rotating-squares.gif", "rs:fill:40:40/f:png", config)
    assert still.width == 40


def test_default_output_of_an_animated_webp_is_an_animated_gif() -> None:
    out, fmt = run("animated-loop-3.webp", "rs:fill:40:40")
    assert fmt is ImageFormat.GIF  # WebP is not in the preferred formats; GIF is the first that animates
    assert meta(out, "n-pages") == 10


@pytest.mark.parametrize("name", ANIMATIONS)
async def test_round_trip_through_the_server(client: Any, name: str) -> None:
    ext = name.rsplit(".", 1)[1]
    response = await client.get(f"/_/rs:fill:40:40/plain/local:///{name}@{ext}")
    assert response.status_code == 200
    assert response.headers["content-type"] == f"image/{ext}"
    source = vips.open_source(fixture_path(name).read_bytes(), n=-1)
    out = vips.open_source(response.content, n=-1)
    assert meta(out, "n-pages") == meta(source, "n-pages")
    assert list(meta(out, "delay")) == list(meta(source, "delay"))
    assert meta(out, "loop") == meta(source, "loop")
    assert out.width == 40 and out.height == 40 * meta(source, "n-pages")
