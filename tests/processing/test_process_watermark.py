"""The watermark (``wm:``) and its start-up loading from IMGPROXY_WATERMARK_DATA / _PATH / _URL.

A red 40×20 watermark on a flat grey 200×100 image makes positions exact: the expected
top-left corners follow calcPosition (geometry spec §3.1, overflow allowed) and
imgproxy's watermark docs (scale is relative to the result, offsets follow the dpr).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pyvips

from imgproxy_py.errors import SettingsError
from imgproxy_py.processing import ProcessingConfig, Processor, vips
from imgproxy_py.processing.watermark_image import WatermarkImage, load_watermark
from imgproxy_py.server.app import build_sources
from imgproxy_py.server.watermark_source import watermark_bytes
from imgproxy_py.settings import Settings, WatermarkSettings
from tests.processing.process_helpers import fixture_bytes, run_image
from tests.support import Origin, env_for, images_dir, load, run_origin

RED = [255, 0, 0]
GREY = [128, 128, 128]


def png(img: Any) -> bytes:
    return bytes(img.pngsave_buffer())


def flat(width: int, height: int, rgb: list[int]) -> Any:
    return (vips.Image.black(width, height) + rgb).cast("uchar").copy(interpretation="srgb")


WM_PNG = png(flat(40, 20, RED))
BASE = png(flat(200, 100, GREY))


def config(data: bytes = WM_PNG, opacity: float = 1.0) -> ProcessingConfig:
    wm = load_watermark(WatermarkSettings(data=data, origin="IMGPROXY_WATERMARK_DATA", opacity=opacity))
    return ProcessingConfig(watermark=wm)


CONFIG = config()


def is_red(img: Any, x: int, y: int) -> bool:
    r, g, b = (float(v) for v in img.getpoint(x, y)[:3])
    return r > 240 and g < 15 and b < 15


def is_grey(img: Any, x: int, y: int) -> bool:
    return all(abs(v - 128) < 4 for v in img.getpoint(x, y)[:3])


def red_box(img: Any) -> tuple[int, int, int, int]:
    """(left, top, width, height) of the red pixels."""
    mask = (img[0] > 200) & (img[1] < 50)
    left, top, width, height = (mask.cast("uchar") > 0).ifthenelse(0, 255).find_trim(background=[255], threshold=0)
    return int(left), int(top), int(width), int(height)


@pytest.mark.parametrize(
    ("opts", "box"),
    [
        # centre: RoundToEven((200-40+1)/2 = 80.5) = 80, RoundToEven(40.5) = 40
        ("wm:1", (80, 40, 40, 20)),
        ("wm:1:ce", (80, 40, 40, 20)),
        ("wm:1:nowe", (0, 0, 40, 20)),
        ("wm:1:soea", (160, 80, 40, 20)),
        ("wm:1:no", (80, 0, 40, 20)),
        ("wm:1:so", (80, 80, 40, 20)),
        ("wm:1:ea", (160, 40, 40, 20)),
        ("wm:1:we", (0, 40, 40, 20)),
        ("wm:1:noea", (160, 0, 40, 20)),
        ("wm:1:sowe", (0, 80, 40, 20)),
        # offsets: pixels inward from the edge for compass positions, shifts for the centre
        ("wm:1:soea:10:5", (150, 75, 40, 20)),
        ("wm:1:nowe:10:5", (10, 5, 40, 20)),
        ("wm:1:ce:10:5", (90, 45, 40, 20)),
        ("wm:1:nowe:0.1:0.1", (20, 10, 40, 20)),  # < 1: a fraction of the image size
        # a watermark may hang over the edge (overflow): only the visible part is drawn
        ("wm:1:nowe:-20:0", (0, 0, 20, 20)),
        ("wm:1:soea:-10:-10", (170, 90, 30, 10)),
        # scale: fit into ScaleToEven(200·0.5) × ScaleToEven(100·0.5) = 100×50, enlarging → 100×50
        ("wm:1:nowe:0:0:0.5", (0, 0, 100, 50)),
        ("wm:1:nowe:0:0:0.1", (0, 0, 20, 10)),  # 20×10 box
    ],
)
def test_watermark_position_and_scale(opts: str, box: tuple[int, int, int, int]) -> None:
    result, out = run_image(BASE, opts, CONFIG)
    assert (out.width, out.height) == (200, 100)
    assert red_box(out) == box
    left, top, width, height = box
    assert is_red(out, left + width // 2, top + height // 2)
    assert is_grey(out, (left + width + 5) % 200, (top + height + 5) % 100)


def test_watermark_entirely_outside_is_skipped() -> None:
    _, out = run_image(BASE, "wm:1:nowe:300:0", CONFIG)
    assert red_box(out) == (0, 0, 0, 0) or not is_red(out, 0, 0)
    assert is_grey(out, 100, 50)


def test_offsets_follow_the_dpr() -> None:
    big = png(flat(400, 200, GREY))
    _, out = run_image(big, "rs:fit:200:100/dpr:2/wm:1:nowe:10:5", CONFIG)
    assert (out.width, out.height) == (400, 200)
    assert red_box(out)[:2] == (20, 10)


def test_opacity_mixes_with_the_image() -> None:
    _, half = run_image(BASE, "wm:0.5", CONFIG)
    r, g, b = half.getpoint(100, 50)
    assert abs(r - 191.5) < 3 and abs(g - 64) < 3 and abs(b - 64) < 3
    # IMGPROXY_WATERMARK_OPACITY multiplies: 0.5 × 0.5 = a quarter of the red
    _, quarter = run_image(BASE, "wm:0.5", config(opacity=0.5))
    r, g, b = quarter.getpoint(100, 50)
    assert abs(r - (128 + 127 * 0.25)) < 3 and abs(g - 96) < 3


def test_replicate_tiles_the_whole_image() -> None:
    _, out = run_image(BASE, "wm:1:re", CONFIG)
    assert is_red(out, 0, 0) and is_red(out, 199, 99) and is_red(out, 100, 50)


def test_replicate_with_gaps() -> None:
    """``re`` offsets are the gaps between tiles: a 40×20 gap makes 80×40 tiles (red in the middle).

    Centred tiling: 3×3 tiles (odd counts) = 240×120, cut at (20, 10): red columns
    [0,40) [80,120) [160,200) and rows [0,20) [40,60) [80,100), so 60% × 60% = 36% red.
    """
    _, out = run_image(BASE, "wm:1:re:40:20", CONFIG)
    red = float(((out[0] > 200) & (out[1] < 50)).avg()) / 255
    assert red == pytest.approx(0.36, abs=0.01)
    assert is_red(out, 100, 50) and is_red(out, 0, 0) and is_red(out, 199, 99)
    assert is_grey(out, 60, 50) and is_grey(out, 100, 30)


def test_watermark_comes_after_padding_and_flatten() -> None:
    _, out = run_image(BASE, "pd:30/bg:0000ff/wm:1:nowe", CONFIG)
    assert (out.width, out.height) == (260, 160)
    assert is_red(out, 5, 5)  # over the blue padding: the watermark is the last step
    assert out.getpoint(10, 50)[2] > 240  # padding is blue


def test_watermark_on_a_photo_keeps_size_and_format() -> None:
    result, out = run_image(fixture_bytes("Landscape_1.jpg"), "rs:fit:300:300/wm:1:soea:0:0:0.2", CONFIG)
    assert (out.width, out.height) == (300, 225)
    assert result.format.value == "jpeg"
    # scale 0.2: a 60×45 box → the 40×20 watermark becomes 60×30, at the south-east corner
    assert is_red(out, 299 - 30, 224 - 15)


def test_watermark_on_an_image_with_alpha_keeps_alpha() -> None:
    _, out = run_image(fixture_bytes("with-alpha.png"), "wm:1:nowe", CONFIG)
    assert out.hasalpha()
    assert out.getpoint(10, 10)[3] == 255  # opaque watermark
    assert out.getpoint(100, 100)[3] == 168


def test_without_a_configured_watermark_the_option_does_nothing() -> None:
    _, plain = run_image(BASE, "", ProcessingConfig())
    _, out = run_image(BASE, "wm:1", ProcessingConfig())
    assert red_box(out) == red_box(plain)
    assert is_grey(out, 100, 50)


def test_watermark_with_alpha_and_exif_orientation() -> None:
    """A transparent watermark only covers where it is opaque; its EXIF orientation is applied."""
    wm = flat(40, 20, RED).bandjoin_const([255]).draw_rect([0, 0, 0, 0], 0, 0, 20, 20, fill=True)
    cfg = config(png(wm))
    _, out = run_image(BASE, "wm:1:nowe", cfg)
    assert is_grey(out, 5, 5) and is_red(out, 30, 5)
    rotated = vips.Image.new_from_buffer(png(flat(40, 20, RED)), "").copy()
    rotated.set_type(pyvips.GValue.gint_type, "orientation", 6)  # stored 40×20, displayed 20×40
    jpeg = bytes(rotated.jpegsave_buffer(keep="exif"))
    _, out = run_image(BASE, "wm:1:nowe", config(jpeg))
    assert red_box(out)[2:] == (20, 40)


# --- loading at start-up -------------------------------------------------------------------------


def test_watermark_from_data_and_path(tmp_path: Path) -> None:
    data_settings = Settings.from_env(env_for(IMGPROXY_WATERMARK_DATA=base64.b64encode(WM_PNG).decode()))
    from_data = ProcessingConfig.from_settings(data_settings).watermark
    path = tmp_path / "wm.png"
    path.write_bytes(WM_PNG)
    path_settings = Settings.from_env(env_for(IMGPROXY_WATERMARK_PATH=str(path), IMGPROXY_WATERMARK_OPACITY="0.5"))
    from_path = ProcessingConfig.from_settings(path_settings).watermark
    assert isinstance(from_data, WatermarkImage) and isinstance(from_path, WatermarkImage)
    assert (from_data.image.width, from_data.image.height) == (40, 20)
    assert from_data.digest == from_path.digest  # same picture, same cache identity
    assert (from_data.opacity, from_path.opacity) == (1.0, 0.5)
    assert ProcessingConfig.from_settings(Settings.from_env(env_for())).watermark is None


def test_data_wins_over_path(tmp_path: Path) -> None:
    path = tmp_path / "other.png"
    path.write_bytes(png(flat(10, 10, GREY)))
    env = env_for(IMGPROXY_WATERMARK_DATA=base64.b64encode(WM_PNG).decode(), IMGPROXY_WATERMARK_PATH=str(path))
    wm = ProcessingConfig.from_settings(Settings.from_env(env)).watermark
    assert wm is not None and wm.image.width == 40


def test_watermark_changes_the_settings_fingerprint() -> None:
    other = config(png(flat(40, 20, [0, 0, 255])))
    assert repr(CONFIG) != repr(other)
    assert "digest" in repr(CONFIG) and len(repr(CONFIG)) < 2000  # no pixel data in the repr


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"IMGPROXY_WATERMARK_DATA": base64.b64encode(b"not an image at all").decode()}, "IMGPROXY_WATERMARK_DATA"),
        ({"IMGPROXY_WATERMARK_DATA": base64.b64encode(WM_PNG[:60]).decode()}, "IMGPROXY_WATERMARK_DATA"),
    ],
)
def test_broken_watermark_stops_start_up(env: dict[str, str], name: str) -> None:
    settings = Settings.from_env(env_for(**env))
    with pytest.raises(SettingsError, match=name):
        ProcessingConfig.from_settings(settings)


@pytest.mark.parametrize("fmt", [".jpg", ".png", ".webp"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_watermark_stops_start_up(fmt: str, keep: float) -> None:
    """Headers intact, pixels cut off: once accepted, and drawn as a flat grey block."""
    photo = load(fixture_bytes("2569067123_aca715a2ee_o.jpg")).thumbnail_image(400)
    data = photo.write_to_buffer(fmt)
    truncated = data[: int(len(data) * keep)]
    env = {"IMGPROXY_WATERMARK_DATA": base64.b64encode(truncated).decode()}
    with pytest.raises(SettingsError, match="IMGPROXY_WATERMARK_DATA"):
        ProcessingConfig.from_settings(Settings.from_env(env_for(**env)))
    ProcessingConfig.from_settings(Settings.from_env(env_for(IMGPROXY_WATERMARK_DATA=base64.b64encode(data).decode())))


def test_broken_watermark_file_names_the_path_variable(tmp_path: Path) -> None:
    path = tmp_path / "wm.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    settings = Settings.from_env(env_for(IMGPROXY_WATERMARK_PATH=str(path)))
    with pytest.raises(SettingsError, match="IMGPROXY_WATERMARK_PATH"):
        ProcessingConfig.from_settings(settings)


def test_create_app_refuses_a_broken_watermark(tmp_path: Path) -> None:
    from imgproxy_py.server.app import create_app

    path = tmp_path / "wm.txt"
    path.write_text("hello")
    with pytest.raises(SettingsError, match="IMGPROXY_WATERMARK_PATH"):
        create_app(Settings.from_env(env_for(IMGPROXY_WATERMARK_PATH=str(path))))


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    yield from run_origin(images_dir())


def url_settings(url: str, **env: str) -> Settings:
    """The origin is on loopback: allowed here as for any loopback source (the default refuses it)."""
    return Settings.from_env(
        env_for(IMGPROXY_WATERMARK_URL=url, IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES="true", **env)
    )


def from_url(settings: Settings) -> WatermarkImage | None:
    """The server's start-up: fetched through the source layer, then decoded by processing."""
    return Processor.from_settings(settings, watermark=watermark_bytes(settings, build_sources)).watermark


def test_watermark_from_url(origin: Origin) -> None:
    wm = from_url(url_settings(origin.url("trim-mc.png")))
    assert wm is not None and (wm.image.width, wm.image.height) == (200, 240)
    assert origin.requests.count("/trim-mc.png") == 1  # fetched once, at start-up


@pytest.mark.parametrize("path", ["missing.png", "status/500", "corrupt-header.jpg"])
def test_unusable_watermark_url_stops_start_up(origin: Origin, path: str) -> None:
    with pytest.raises(SettingsError, match="IMGPROXY_WATERMARK_URL"):
        from_url(url_settings(origin.url(path)))


def test_watermark_url_obeys_the_source_address_policy(origin: Origin) -> None:
    """A watermark URL is a download like any other: loopback is refused unless allowed (SSRF)."""
    requests = len(origin.requests)
    refused = Settings.from_env(env_for(IMGPROXY_WATERMARK_URL=origin.url("trim-mc.png")))
    with pytest.raises(SettingsError, match="IMGPROXY_WATERMARK_URL"):
        from_url(refused)
    assert len(origin.requests) == requests  # refused before any connection
    wm = from_url(url_settings(origin.url("trim-mc.png")))
    assert wm is not None and wm.image.width == 200


def test_watermark_url_obeys_the_allowed_sources(origin: Origin) -> None:
    other = url_settings(origin.url("trim-mc.png"), IMGPROXY_ALLOWED_SOURCES="https://images.example.com/")
    with pytest.raises(SettingsError, match="IMGPROXY_WATERMARK_URL"):
        from_url(other)


def test_watermark_url_must_be_fetched_by_the_server() -> None:
    """Processing has no HTTP client: without the fetched bytes a URL watermark is refused, not downloaded."""
    settings = url_settings("http://127.0.0.1:9/wm.png")
    with pytest.raises(SettingsError, match="IMGPROXY_WATERMARK_URL"):
        ProcessingConfig.from_settings(settings)


def test_create_app_refuses_a_watermark_url_on_loopback(origin: Origin) -> None:
    from imgproxy_py.server.app import create_app

    with pytest.raises(SettingsError, match="IMGPROXY_WATERMARK_URL"):
        create_app(Settings.from_env(env_for(IMGPROXY_WATERMARK_URL=origin.url("trim-mc.png"))))
