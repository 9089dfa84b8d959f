"""Stills from video sources (IMGPROXY_ENABLE_VIDEO_THUMBNAILS), with clips the test encodes itself.

Each clip is made with PyAV (the same FFmpeg the server uses): frame ``i`` is a flat colour
whose red channel is ``RED_STEP * i``, so the decoded still tells which moment it came from.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from benchmarks.codec_seeds import encode_clip
from imgproxy_py.errors import BrokenImageError, ImgproxyError, InvalidImageError, SourceResolutionError
from imgproxy_py.imagetype import ImageFormat, sniff_video
from imgproxy_py.processing import Limits, ProcessingConfig
from imgproxy_py.processing.describe import image_info
from tests.codec_samples import decode_any
from tests.processing.process_helpers import run
from tests.support import missing_prerequisite

FPS = 10
RED_STEP = 10
ON = ProcessingConfig(video_thumbnails=True)


def clip(
    container: str = "mp4",
    codec: str = "libx264",
    seconds: float = 2.0,
    size: tuple[int, int] = (160, 120),
    gop: int = 5,
) -> bytes:
    width, height = size

    def frames() -> Iterator[av.VideoFrame]:
        for i in range(int(seconds * FPS)):
            pixels = np.zeros((height, width, 3), np.uint8)
            pixels[:, :, 0] = min(255, RED_STEP * i)
            pixels[:, :, 2] = 80
            yield av.VideoFrame.from_ndarray(pixels, format="rgb24")

    return encode_clip(frames(), size, container, codec, rate=FPS, gop=gop)


def red(data: bytes) -> float:
    img = decode_any(data)
    return float(img[0].avg())


@pytest.fixture(scope="module")
def mp4() -> bytes:
    return clip()


def test_video_is_refused_unless_enabled(mp4: bytes) -> None:
    with pytest.raises(InvalidImageError):
        run(mp4, "rs:fill:64:48")


def test_still_goes_through_the_pipeline(mp4: bytes) -> None:
    result = run(mp4, "rs:fill:64:36/g:sm/f:webp", ON)
    assert result.format is ImageFormat.WEBP and (result.width, result.height) == (64, 36)
    assert (result.source_width, result.source_height) == (160, 120)
    assert red(result.data) < RED_STEP  # the first keyframe: frame 0
    default = run(mp4, "rs:fit:80:80", ON)
    assert default.format is ImageFormat.JPEG  # a still counts as a JPEG source


@pytest.mark.parametrize(("second", "frame"), [(1.0, 10), (0.7, 7), (1.5, 15), (60.0, 19)])
def test_video_thumbnail_second(mp4: bytes, second: float, frame: int) -> None:
    result = run(mp4, f"vts:{second}/f:png", ON)
    assert abs(red(result.data) - RED_STEP * frame) < RED_STEP / 2  # past the end: the last frame


@pytest.mark.parametrize(
    ("container", "codec"),
    [("webm", "libvpx-vp9"), ("webm", "libvpx"), ("mov", "mpeg4"), ("matroska", "libx264")],
    ids=["webm-vp9", "webm-vp8", "mov-mpeg4", "mkv-h264"],
)
def test_containers_and_codecs(container: str, codec: str) -> None:
    data = clip(container, codec, seconds=1.0, size=(96, 64))
    assert sniff_video(data) is not None
    result = run(data, "vts:0.5/rs:fit:48:48/f:png", ON)
    assert (result.width, result.height) == (48, 32)
    assert abs(red(result.data) - RED_STEP * 5) < RED_STEP / 2


def test_info_reports_duration_codec_and_size(mp4: bytes) -> None:
    info = image_info(mp4, 50_000_000, video_thumbnails=True)
    assert (info["format"], info["mime_type"]) == ("mp4", "video/mp4")
    assert (info["width"], info["height"]) == (160, 120)
    assert info["video"]["codec"] == "h264"
    assert info["video"]["duration"] == pytest.approx(2.0, abs=0.15)
    with pytest.raises(InvalidImageError):
        image_info(mp4, 50_000_000)  # off by default


def test_limits_are_checked_before_decoding(mp4: bytes) -> None:
    with pytest.raises(SourceResolutionError):
        run(mp4, "f:png", ProcessingConfig(video_thumbnails=True, limits=Limits(max_src_resolution=100 * 100)))
    with pytest.raises(InvalidImageError):
        run(mp4, "f:png", ProcessingConfig(video_thumbnails=True, max_video_duration=1.0))


def test_codec_outside_the_allow_list_is_422() -> None:
    data = clip("matroska", "ffv1", seconds=0.3, size=(32, 32))
    with pytest.raises(InvalidImageError) as info:
        run(data, "f:png", ON)
    assert info.value.status_code == 422


@pytest.mark.parametrize("cut", [0.05, 0.3, 0.6])
def test_truncated_clip_is_422_or_an_earlier_frame(mp4: bytes, cut: float) -> None:
    data = mp4[: int(len(mp4) * cut)]
    try:
        result = run(data, "vts:1/f:png", ON)
    except ImgproxyError as exc:
        assert exc.status_code == 422
    else:
        assert result.width == 160  # what was there decoded; nothing invented


@pytest.mark.parametrize(
    "data",
    [
        b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",
        b"ffconcat version 1.0\nfile '/etc/passwd'\n",
        b"\x00\x00\x00\x18ftypisom\x00\x00\x00\x00isomhttp://127.0.0.1:1/x.m3u8",
    ],
    ids=["hls", "concat", "mp4-header-only"],
)
def test_playlists_and_references_are_not_followed(data: bytes) -> None:
    start = time.monotonic()
    with pytest.raises((InvalidImageError, BrokenImageError)):
        run(data, "f:png", ON)
    assert time.monotonic() - start < 2


def test_deadline_stops_the_demux_loop(mp4: bytes) -> None:
    from imgproxy_py.cancel import CancelToken, current_token
    from imgproxy_py.errors import RequestTimeoutError

    token = CancelToken(deadline=time.monotonic() - 1)
    reset = current_token.set(token)
    try:
        with pytest.raises(RequestTimeoutError):
            run(mp4, "vts:1/f:png", ON)
    finally:
        current_token.reset(reset)


def _rotated_with_ffmpeg(data: bytes, tmp: Path) -> bytes:
    """``data`` remuxed by the ffmpeg CLI with a 90° display rotation (counter-clockwise), as phones record."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        missing_prerequisite("the ffmpeg CLI is not installed (.ci/run installs it)")
    src, dst = tmp / "in.mp4", tmp / "out.mp4"
    src.write_bytes(data)
    attempts = [  # ffmpeg 5 takes the rotate tag, ffmpeg 6+ the display_rotation input option
        [ffmpeg, "-loglevel", "error", "-y", "-i", str(src), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(dst)],
        [ffmpeg, "-loglevel", "error", "-y", "-display_rotation", "90", "-i", str(src), "-c", "copy", str(dst)],
    ]
    for command in attempts:
        if subprocess.run(command, capture_output=True, timeout=60).returncode == 0:
            with av.open(str(dst)) as box:
                if round(next(box.decode(video=0)).rotation) % 360:
                    return dst.read_bytes()
    pytest.skip("this ffmpeg cannot write a display rotation")


def test_recorded_rotation_is_applied(tmp_path: Path) -> None:
    width, height = 96, 64
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2, 0] = 255  # left half red, right half blue
    pixels[:, width // 2 :, 2] = 255
    frames = (av.VideoFrame.from_ndarray(pixels, format="rgb24") for _ in range(3))
    rotated = _rotated_with_ffmpeg(encode_clip(frames, (width, height), "mp4", "libx264", rate=FPS), tmp_path)
    result = run(rotated, "f:png", ON)
    assert (result.width, result.height) == (height, width)  # portrait, as the player shows it
    img = decode_any(result.data)
    top, bottom = img.crop(0, 0, height, 8), img.crop(0, width - 8, height, 8)
    # A display matrix of +90° turns the picture counter-clockwise (as ffmpeg and players show it):
    # the left half ends up at the bottom.
    assert top[2].avg() > 200 and bottom[0].avg() > 200
    info = image_info(rotated, 50_000_000, video_thumbnails=True)
    assert (info["width"], info["height"]) == (height, width)


def test_video_thumbnail_second_setting_is_the_default(mp4: bytes) -> None:
    from imgproxy_py.options.parser import Parser
    from imgproxy_py.processing import Job, Processor
    from imgproxy_py.settings import Settings

    settings = Settings.from_env({"IMGPROXY_VIDEO_THUMBNAIL_SECOND": "1", "IMGPROXY_ENABLE_VIDEO_THUMBNAILS": "1"})
    parser = Parser(settings.options)
    config = ProcessingConfig.from_settings(settings)
    assert config.video_thumbnails
    at_one = Processor(config).process(Job(mp4, parser.parse("/f:png/plain/local:///a.mp4").options))
    assert abs(red(at_one.data) - RED_STEP * 10) < RED_STEP / 2
    first = Processor(config).process(Job(mp4, parser.parse("/vts:0/f:png/plain/local:///a.mp4").options))
    assert red(first.data) < RED_STEP / 2  # the URL's vts wins
