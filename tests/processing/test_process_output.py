"""Output side: ICO, TIFF and refused formats, fixSize, max_bytes, skip_processing,
keep_copyright (§8.6) and enforce_thumbnail.

Expectations: imgproxy's format table (parser spec §7), save_fit_bytes (§8.9), stripMetadata
(§8.6). Images are compared by size and perceptually; only skip_processing, whose point is
returning the source untouched, is checked byte for byte.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
import pyvips

from imgproxy_py.errors import InvalidImageError, UnsupportedFormatError
from imgproxy_py.imagetype import SAVABLE, ImageFormat, sniff
from imgproxy_py.processing import ProcessingConfig, ico, vips
from imgproxy_py.settings import OptionSettings
from tests.processing.heif_thumbnail import avif_with_thumbnail
from tests.processing.process_helpers import (
    alpha_at,
    fixture_bytes,
    has_field,
    options,
    run,
    run_image,
    source_image,
)
from tests.support import load, loader_of, mean_abs_diff

PHOTO = "Landscape_1.jpg"  # 600×450
ALPHA = "with-alpha.png"  # 256×192, alpha 168


# --- ICO -------------------------------------------------------------------------------------


def ico_entries(data: bytes) -> list[tuple[int, int, int, int]]:
    """(width, height, size, offset) of each ICONDIRENTRY; 0 means 256."""
    reserved, kind, count = struct.unpack_from("<HHH", data)
    assert (reserved, kind) == (0, 1)
    return [(e[0], e[1], e[6], e[7]) for e in (struct.unpack_from("<BBBBHHII", data, 6 + 16 * i) for i in range(count))]


def test_ico_is_a_png_in_an_icon_directory() -> None:
    result = run(fixture_bytes(PHOTO), "rs:fit:64:64/f:ico")
    assert result.format is ImageFormat.ICO
    assert sniff(result.data) is ImageFormat.ICO
    assert ico_entries(result.data) == [(64, 48, len(result.data) - 22, 22)]
    png = result.data[22:]
    assert sniff(png) is ImageFormat.PNG
    inner = load(png)
    assert (inner.width, inner.height) == (64, 48)
    _, reference = run_image(fixture_bytes(PHOTO), "rs:fit:64:64/f:png")
    assert mean_abs_diff(inner, reference) < 1


def test_ico_is_at_most_256_and_256_is_stored_as_zero() -> None:
    """fixSize: ICO max 256 on the longer side (600×450 → 256×192)."""
    result = run(fixture_bytes(PHOTO), "f:ico")
    assert (result.width, result.height) == (256, 192)
    assert ico_entries(result.data)[0][:2] == (0, 192)


def test_ico_keeps_alpha_and_round_trips_as_a_source() -> None:
    result = run(fixture_bytes(ALPHA), "f:ico")
    inner = load(ico.largest_image(result.data))
    assert inner.hasalpha() and alpha_at(inner, 10, 10) == 168
    back, out = run_image(result.data, "rs:fit:128:128/f:png")  # an ICO source: its PNG is decoded
    assert back.source_format is ImageFormat.ICO
    assert (out.width, out.height) == (128, 96)
    assert alpha_at(out, 10, 10) == 168


def test_ico_without_a_png_inside_is_refused() -> None:
    with pytest.raises(InvalidImageError):
        run(b"\x00\x00\x01\x00\x01\x00" + bytes(16), "")
    bmp_entry = ico.wrap_png(b"BM" + bytes(60), 16, 16)
    with pytest.raises(InvalidImageError):
        run(bmp_entry, "")


# --- TIFF, and formats this libvips cannot write --------------------------------------------


def test_tiff_round_trip() -> None:
    result, out = run_image(fixture_bytes(PHOTO), "rs:fit:300:300/f:tiff")
    assert result.format is ImageFormat.TIFF and sniff(result.data) is ImageFormat.TIFF
    assert loader_of(result.data).startswith("tiffload")
    assert (out.width, out.height) == (300, 225)
    assert mean_abs_diff(out, source_image(PHOTO)) < 4
    again, back = run_image(result.data, "f:png")  # and as a source
    assert again.source_format is ImageFormat.TIFF and (back.width, back.height) == (300, 225)


def test_tiff_keeps_alpha() -> None:
    _, out = run_image(fixture_bytes(ALPHA), "f:tif")
    assert out.hasalpha() and alpha_at(out, 5, 5) == 168


def test_svg_output_of_a_raster_is_422() -> None:
    with pytest.raises(UnsupportedFormatError) as info:
        run(fixture_bytes(PHOTO), "f:svg")
    assert info.value.status_code == 422


def test_savable_formats_match_this_libvips() -> None:
    suffixes = set(pyvips.get_suffixes())
    # written by processing/ico.py, processing/bmp_writer.py and the codecs outside libvips (processing/codecs)
    own_container = {ImageFormat.ICO, ImageFormat.BMP, ImageFormat.HEIC, ImageFormat.JXL}
    for fmt in SAVABLE - own_container:
        assert f".{fmt.ext}" in suffixes or (fmt is ImageFormat.TIFF and ".tif" in suffixes), fmt
    assert ".bmp" not in suffixes and ".jxl" not in suffixes  # why BMP and JXL are written outside libvips


@pytest.mark.parametrize(("ext", "limit"), [("webp", 16383), ("avif", 16384), ("ico", 256)])
def test_fix_size_limits(ext: str, limit: int) -> None:
    wide = bytes((vips.Image.black(limit + 100, 20) + 128).cast("uchar").pngsave_buffer(compression=1))
    result = run(wide, f"f:{ext}")
    assert max(result.width, result.height) == limit


# --- max_bytes (save_fit_bytes) --------------------------------------------------------------


@pytest.mark.parametrize(("ext", "limit"), [("jpg", 30000), ("webp", 40000), ("avif", 12000)])
def test_max_bytes_lowers_quality_until_the_result_fits(ext: str, limit: int) -> None:
    plain = run(fixture_bytes(PHOTO), f"q:95/f:{ext}")
    assert len(plain.data) > limit  # the limit really bites
    result, out = run_image(fixture_bytes(PHOTO), f"q:95/mb:{limit}/f:{ext}")
    assert len(result.data) <= limit
    assert (out.width, out.height) == (600, 450)
    assert mean_abs_diff(out, source_image(PHOTO)) < 12  # still the picture, at a lower quality


def test_max_bytes_gives_up_at_quality_10() -> None:
    """An unreachable limit: the result is the quality-≤10 attempt, still a valid image."""
    lowest = run(fixture_bytes(PHOTO), "q:10")
    result = run(fixture_bytes(PHOTO), "mb:100")
    assert len(result.data) > 100
    assert len(result.data) <= len(lowest.data) * 1.05


def test_max_bytes_ignores_formats_without_quality() -> None:
    plain = run(fixture_bytes(ALPHA), "f:png")
    limited = run(fixture_bytes(ALPHA), "mb:10/f:png")
    assert len(limited.data) == len(plain.data)


# --- skip_processing -------------------------------------------------------------------------


@pytest.mark.parametrize("opts", ["skp:jpg", "skip_processing:jpeg/rs:fill:10:10/bl:5", "skp:png:jpg/f:jpg"])
def test_skip_processing_returns_the_source_untouched(opts: str) -> None:
    data = fixture_bytes(PHOTO)
    result = run(data, opts)
    assert result.passthrough
    assert result.data == data
    assert (result.format, result.width, result.height) == (ImageFormat.JPEG, 600, 450)


@pytest.mark.parametrize("opts", ["", "skp:png", "skp:jpg/f:png", "skp:jpg/f:webp"])
def test_skip_processing_applies_only_to_the_listed_format_and_same_output(opts: str) -> None:
    result = run(fixture_bytes(PHOTO), opts)
    assert not result.passthrough


def test_skip_processing_formats_setting() -> None:
    from imgproxy_py.options.parser import Parser
    from imgproxy_py.processing import Job, Processor

    parser = Parser(OptionSettings(skip_processing_formats=frozenset({ImageFormat.PNG})))
    po = parser.parse("/rs:fit:10:10/plain/local:///a.png").options
    data = fixture_bytes(ALPHA)
    assert Processor(ProcessingConfig()).process(Job(data, po)).passthrough
    assert not Processor(ProcessingConfig()).process(Job(fixture_bytes(PHOTO), po)).passthrough


def test_skip_processing_still_refuses_image_bombs() -> None:
    with pytest.raises(InvalidImageError):
        run(fixture_bytes("giant-image.jpg"), "skp:jpg")


# --- keep_copyright (§8.6) -------------------------------------------------------------------


def jpeg_with_exif(**tags: str) -> bytes:
    img = source_image(PHOTO).copy()
    for name, value in tags.items():
        img.set_type(pyvips.GValue.gstr_type, f"exif-ifd0-{name}", value)
    return bytes(img.jpegsave_buffer(Q=90))


TAGGED = jpeg_with_exif(Copyright="(c) Jane Doe", Artist="Jane Doe", Make="SecretCam", ImageDescription="home")


def exif_tags(data: bytes) -> dict[str, str]:
    img = load(data)
    return {f.removeprefix("exif-ifd0-"): str(img.get(f)) for f in img.get_fields() if f.startswith("exif-ifd0-")}


@pytest.mark.parametrize("ext", ["jpg", "png", "webp"])
def test_keep_copyright_keeps_only_copyright_and_artist(ext: str) -> None:
    tags = exif_tags(run(TAGGED, f"rs:fit:100:100/f:{ext}").data)  # defaults: sm:1, kcr:1
    assert tags["Copyright"].startswith("(c) Jane Doe")
    assert tags["Artist"].startswith("Jane Doe")
    assert "Make" not in tags and "ImageDescription" not in tags


def test_without_keep_copyright_no_exif_is_written() -> None:
    out = load(run(TAGGED, "kcr:0").data)
    assert not has_field(out, "exif-data")
    assert not exif_tags(run(TAGGED, "keep_copyright:false").data)


def test_without_strip_metadata_everything_is_kept() -> None:
    tags = exif_tags(run(TAGGED, "sm:0").data)
    assert tags["Make"].startswith("SecretCam") and tags["Copyright"].startswith("(c) Jane Doe")


def test_no_copyright_no_exif() -> None:
    """Deliberate: without a notice to keep, no EXIF block is written at all (imgproxy keeps an almost empty one)."""
    plain = jpeg_with_exif(Make="SecretCam")
    assert not has_field(load(run(plain, "").data), "exif-data")


def test_keep_copyright_setting_is_the_default() -> None:
    from imgproxy_py.options.parser import Parser
    from imgproxy_py.processing import Job, Processor

    po = Parser(OptionSettings(keep_copyright=False)).parse("/plain/local:///a.jpg").options
    assert not has_field(load(Processor(ProcessingConfig()).process(Job(TAGGED, po)).data), "exif-data")


# --- enforce_thumbnail -------------------------------------------------------------------------


def flat(width: int, height: int, rgb: list[int]) -> Any:
    return (vips.Image.black(width, height) + rgb).cast("uchar").copy(interpretation="srgb")


THUMBED = avif_with_thumbnail(flat(320, 240, [200, 10, 10]), flat(80, 60, [10, 10, 200]))


def test_enforce_thumbnail_uses_the_embedded_thumbnail() -> None:
    result, out = run_image(THUMBED, "eth:1/f:png")
    assert (result.source_width, result.source_height) == (80, 60)
    assert (out.width, out.height) == (80, 60)
    assert out.getpoint(5, 5)[2] > 150  # the thumbnail is blue, the primary red


def test_without_enforce_thumbnail_the_primary_image_is_used() -> None:
    _, out = run_image(THUMBED, "rs:fit:80:80/f:png")
    assert (out.width, out.height) == (80, 60)
    assert out.getpoint(5, 5)[0] > 150


def test_enforce_thumbnail_without_a_thumbnail_uses_the_image() -> None:
    plain = bytes(flat(64, 48, [200, 10, 10]).heifsave_buffer(compression="av1"))
    _, out = run_image(plain, "eth:1/f:png")
    assert (out.width, out.height) == (64, 48)


def test_enforce_thumbnail_is_ignored_for_other_formats() -> None:
    assert run(fixture_bytes(PHOTO), "eth:1").width == 600


def test_enforce_thumbnail_option_reaches_processing() -> None:
    assert options("eth:1").enforce_thumbnail


def test_skip_processing_of_an_svg_is_still_sanitised() -> None:
    """imgproxy: ``skp:svg`` returns an SVG source as-is even with IMGPROXY_ALWAYS_RASTERIZE_SVG, sanitised."""
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>'
    from imgproxy_py.processing import Job, Processor

    config = ProcessingConfig(always_rasterize_svg=True)
    result = Processor(config).process(Job(svg, options("skp:svg")))
    assert result.format is ImageFormat.SVG
    assert b"<script" not in result.data
    assert Processor(config).process(Job(svg, options("skp:svg/f:png"))).format is ImageFormat.PNG
