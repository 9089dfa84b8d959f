"""HEIC (HEVC), JPEG XL and BMP through the codecs outside libvips, in and out.

Each sample is made from a real photo by the codec libraries themselves, then processed like
any source; results are compared with the same photo processed from its JPEG/PNG original,
by size and mean difference, never by bytes.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from imgproxy_py.errors import BrokenImageError, InvalidImageError, SourceResolutionError
from imgproxy_py.imagetype import ImageFormat, sniff
from imgproxy_py.processing import Limits, ProcessingConfig, vips
from imgproxy_py.processing.codecs import jxl as jxl_codec
from imgproxy_py.processing.describe import image_info
from tests import codec_samples as samples
from tests.processing.process_helpers import fixture_bytes, run, source_image
from tests.support import mean_abs_diff

PHOTO = "Landscape_1.jpg"  # 600×450
ALPHA = "with-alpha.png"  # 256×192


def photo(width: int = 160) -> Any:
    """The photo, small (codecs are slow on 2 shared cores), as 8-bit sRGB."""
    return source_image(PHOTO).thumbnail_image(width).copy_memory()


def processed(data: bytes, opts: str, config: ProcessingConfig | None = None) -> tuple[Any, Any]:
    result = run(data, opts, config) if config else run(data, opts)
    out = samples.decode_any(result.data)
    assert (out.width, out.height) == (result.width, result.height)
    return result, out


# --- HEIC ------------------------------------------------------------------------------------


def test_heic_photo_resizes_to_every_output_format() -> None:
    src = photo()
    heic = samples.heic(src)
    assert sniff(heic) is ImageFormat.HEIC
    for fmt in ["jpg", "png", "webp", "avif", "gif", "tiff", "bmp", "heic", "jxl"]:
        result, out = processed(heic, f"rs:fit:80:80/f:{fmt}")
        assert result.source_format is ImageFormat.HEIC
        assert (out.width, out.height) == (80, 60), fmt
        assert mean_abs_diff(out, src.thumbnail_image(80)) < 6, fmt  # the same picture


def test_heic_container_rotation_is_applied_once() -> None:
    """pillow-heif turns an EXIF orientation into the container's irot, as iPhones write both."""
    src = photo()
    heic = samples.heic(src, exif_orientation=6)
    result, out = processed(heic, "sm:0/f:jpg")
    assert (out.width, out.height) == (src.height, src.width)  # turned once, not twice
    assert mean_abs_diff(out, src.rot90()) < 6
    assert int(out.get("orientation")) == 1  # the kept EXIF no longer asks viewers to turn it again
    info = image_info(heic, 50_000_000)
    assert (info["width"], info["height"], info["orientation"]) == (src.height, src.width, 1)


def test_10_bit_heic_keeps_depth_with_preserve_hdr() -> None:
    src = photo()
    deep = src.colourspace("rgb16")
    heic = samples.heic(deep)
    _, hdr = processed(heic, "ph:1/f:png")
    assert hdr.format == "ushort"
    _, plain = processed(heic, "f:png")
    assert plain.format == "uchar"
    assert mean_abs_diff(plain, src) < 6
    assert image_info(heic, 50_000_000)["bit_depth"] == 10
    for fmt in ("heic", "jxl"):  # written with more than 8 bits too
        result, out = processed(heic, f"ph:1/f:{fmt}")
        assert out.format == "ushort", fmt
        assert mean_abs_diff(out.colourspace("srgb"), src) < 6, fmt
        assert samples.decode_any(run(heic, f"f:{fmt}").data).format == "uchar"


def test_multi_image_heic_uses_the_primary_image() -> None:
    small = photo(64)
    big = photo(160)
    heic = samples.heic(small, extra=[big], primary=1)
    result, out = processed(heic, "f:png")
    assert (result.source_width, result.source_height) == (big.width, big.height)
    assert mean_abs_diff(out, big) < 6


def test_enforce_thumbnail_uses_the_heic_thumbnail() -> None:
    src = photo()
    heic = samples.heic(src, thumbnail=64)
    result, out = processed(heic, "eth:1/f:png")
    assert (result.source_width, result.source_height) == (64, 48)
    assert mean_abs_diff(out, src.thumbnail_image(64)) < 16  # libheif scales its thumbnail more crudely
    full, _ = processed(heic, "f:png")
    assert (full.source_width, full.source_height) == (src.width, src.height)
    plain, _ = processed(samples.heic(src), "eth:1/f:png")  # no thumbnail: the image itself
    assert plain.source_width == src.width


def test_heic_icc_profile_is_honoured_like_a_png() -> None:
    """The same Display P3 pixels from a PNG and a HEIC come out as the same sRGB colours."""
    p3 = source_image("p3.png")
    icc = bytes(p3.get("icc-profile-data"))
    pixels = p3[:3].resize(8, kernel="nearest").copy_memory()  # 64×64, the profile still attached
    png = bytes(pixels.pngsave_buffer())
    heic = samples.heic(pixels, icc=icc, quality=95)
    _, from_png = processed(png, "f:png")
    _, from_heic = processed(heic, "f:png")
    assert mean_abs_diff(from_heic, from_png) < 4
    _, untagged = processed(samples.heic(pixels, quality=95), "f:png")
    assert mean_abs_diff(untagged, from_png) > mean_abs_diff(from_heic, from_png)  # the profile mattered


def test_heic_resolution_is_checked_before_decoding() -> None:
    heic = samples.heic(photo())
    config = ProcessingConfig(limits=Limits(max_src_resolution=100 * 100))
    with pytest.raises(SourceResolutionError) as info:
        run(heic, "f:jpg", config)
    assert info.value.public_message == "Source image resolution is too big"


def test_heic_output_is_heif_and_keeps_alpha() -> None:
    result, out = processed(fixture_bytes(ALPHA), "rs:fit:64:64/f:heic")
    assert result.format is ImageFormat.HEIC and sniff(result.data) is ImageFormat.HEIC
    assert out.hasalpha()
    assert mean_abs_diff(out.flatten(), source_image(ALPHA).thumbnail_image(64).flatten()) < 6


@pytest.mark.parametrize("cut", [0.3, 0.7, 0.95])
def test_truncated_heic_is_422(cut: float) -> None:
    heic = samples.heic(photo())
    with pytest.raises((BrokenImageError, InvalidImageError)) as info:
        run(heic[: int(len(heic) * cut)], "f:jpg")
    assert info.value.status_code == 422


# --- JPEG XL ---------------------------------------------------------------------------------


@pytest.mark.parametrize("container", [False, True], ids=["codestream", "container"])
def test_jxl_photo_in_and_out(container: bool) -> None:
    src = photo()
    data = samples.jxl(src, container=container)
    assert sniff(data) is ImageFormat.JXL
    result, out = processed(data, "rs:fit:80:80/f:webp")
    assert result.source_format is ImageFormat.JXL and (out.width, out.height) == (80, 60)
    assert mean_abs_diff(out, src.thumbnail_image(80)) < 6
    info = image_info(data, 50_000_000)
    assert (info["format"], info["width"], info["height"]) == ("jxl", src.width, src.height)


def test_jxl_output_quality_follows_format_quality() -> None:
    jpeg = fixture_bytes(PHOTO)
    default = run(jpeg, "f:jxl")  # jxl=77 from IMGPROXY_FORMAT_QUALITY's default
    low = run(jpeg, "q:30/f:jxl")
    high = run(jpeg, "fq:jxl:95/f:jxl")
    assert len(low.data) < len(default.data) < len(high.data)
    assert mean_abs_diff(samples.decode_any(default.data), source_image(PHOTO)) < 6


def test_jxl_effort_setting_reaches_the_encoder() -> None:
    from imgproxy_py.processing.encode import EncoderSettings

    jpeg = fixture_bytes(PHOTO)
    fast = run(jpeg, "f:jxl", ProcessingConfig(encoder=EncoderSettings(jxl_effort=1)))
    slow = run(jpeg, "f:jxl", ProcessingConfig(encoder=EncoderSettings(jxl_effort=7)))
    assert fast.data != slow.data  # different effort, different encoding of the same picture
    for result in (fast, slow):
        assert mean_abs_diff(samples.decode_any(result.data), source_image(PHOTO)) < 6


@pytest.mark.parametrize(("width", "height"), [(1, 1), (8, 8), (13, 7), (256, 144), (300, 200), (1000, 3)])
def test_jxl_header_size_matches_the_decoder(width: int, height: int) -> None:
    img = (vips.Image.black(width, height) + [40, 90, 200]).cast("uchar").copy(interpretation="srgb")
    for container in (False, True):
        data = samples.jxl(img, container=container)
        header = jxl_codec.probe(data)
        assert (header.width, header.height) == (width, height)


def test_jxl_resolution_is_checked_before_decoding() -> None:
    data = samples.jxl(photo())
    start = time.monotonic()
    with pytest.raises(SourceResolutionError):
        run(data, "f:png", ProcessingConfig(limits=Limits(max_src_resolution=50 * 50)))
    assert time.monotonic() - start < 1


def test_jxl_grey_and_alpha_sources() -> None:
    grey = samples.jxl(photo().colourspace("b-w"))
    _, out = processed(grey, "f:png")
    assert out.bands == 1
    alpha = samples.jxl(source_image(ALPHA).thumbnail_image(64), lossless=True)
    _, out = processed(alpha, "f:png")
    assert out.hasalpha() and out.getpoint(5, 5)[3] == 168


# --- BMP -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "RGBA"])
def test_pillow_written_bmps(mode: str) -> None:
    src = photo()
    data = samples.pillow_bmp(src, mode)
    result, out = processed(data, "rs:fit:80:80/f:png")
    assert result.source_format is ImageFormat.BMP and (out.width, out.height) == (80, 60)
    if mode in ("RGB", "RGBA", "P"):
        assert mean_abs_diff(out, src.thumbnail_image(80)) < 6
    elif mode == "L":  # Pillow's grey is BT.601 luma, libvips' is L*: compare structure, loosely
        assert out.bands == 1 and mean_abs_diff(out, src.thumbnail_image(80).colourspace("b-w")) < 14


def test_4_bit_bmp() -> None:
    _, out = processed(samples.bmp_4bit(32, 8), "f:png")
    assert (out.width, out.height) == (32, 8)
    assert out.getpoint(0, 0)[0] == 0 and out.getpoint(1, 0)[0] == 17  # palette entries 0 and 1 of 16 greys


def test_16_bit_bmp() -> None:
    _, out = processed(samples.bmp_16bit(20, 10, (248, 128, 64)), "f:png")
    assert out.getpoint(3, 3)[:3] == pytest.approx([248, 128, 64], abs=9)


@pytest.mark.parametrize("encoding", ["rle8", "rle4"])
def test_rle_bmp(encoding: str) -> None:
    data = samples.bmp_rle8(16, 8) if encoding == "rle8" else samples.bmp_rle4(16, 8)
    _, out = processed(data, "f:png")
    assert (out.width, out.height) == (16, 8)
    assert out.max() > out.min()  # runs of different palette entries decoded


def test_bmp_info_and_limit() -> None:
    data = samples.pillow_bmp(photo(), "RGB")
    info = image_info(data, 50_000_000)
    assert (info["format"], info["mime_type"], info["width"]) == ("bmp", "image/bmp", 160)
    with pytest.raises(SourceResolutionError):
        run(data, "f:png", ProcessingConfig(limits=Limits(max_src_resolution=100)))


@pytest.mark.parametrize(
    "data",
    [
        b"BM" + bytes(10),  # header cut short
        samples.raw_bmp(10, 10, 24, bytes(40)),  # pixel data cut short
        samples.raw_bmp(10, 10, 7, bytes(400)),  # no such bit depth
        samples.raw_bmp(0, 10, 24, bytes(400)),  # empty
    ],
    ids=["short-header", "short-pixels", "bits-7", "zero-width"],
)
def test_broken_bmp_is_422(data: bytes) -> None:
    with pytest.raises((BrokenImageError, InvalidImageError)) as info:
        run(data, "f:png")
    assert info.value.status_code == 422


def test_lying_bmp_header_is_refused_before_decoding() -> None:
    data = samples.raw_bmp(60000, 60000, 24, bytes(64))
    start = time.monotonic()
    with pytest.raises(SourceResolutionError):
        run(data, "f:png")
    assert time.monotonic() - start < 1
