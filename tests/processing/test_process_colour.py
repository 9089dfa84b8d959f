"""Colour and alpha: CMYK, wide-gamut and 16-bit sources, greyscale, flattening."""

from __future__ import annotations

from imgproxy_py.imagetype import ImageFormat
from tests.processing.process_helpers import (
    alpha_at,
    band_mean,
    fixture_bytes,
    full_diff,
    has_field,
    run_image,
    source_image,
)
from tests.support import mean_abs_diff

CMYK = "Channel_digital_image_CMYK_color.jpg"


def test_cmyk_becomes_srgb_through_its_profile() -> None:
    src = source_image(CMYK)
    assert src.interpretation == "cmyk" and src.bands == 4
    result, out = run_image(fixture_bytes(CMYK), "f:png")
    assert (out.width, out.height) == (500, 333)
    assert out.bands == 3
    assert out.interpretation == "srgb"
    assert not has_field(out, "icc-profile-data")  # the CMYK profile no longer applies
    # imgproxy imports the embedded profile with libvips' default (relative) intent and
    # converts to sRGB: that is a plain icc_transform of the source.
    reference = src.icc_transform("srgb", embedded=True)
    assert mean_abs_diff(out, reference) < 1.5
    # The test can tell a different rendering intent apart (~7 levels darker here).
    perceptual = src.icc_transform("srgb", embedded=True, intent="perceptual")
    assert mean_abs_diff(reference, perceptual) > 4


def test_cmyk_resized_to_jpeg() -> None:
    src = source_image(CMYK)
    result, out = run_image(fixture_bytes(CMYK), "rs:fit:250:0")
    assert result.format is ImageFormat.JPEG
    # 500×333 → wshrink 2: 250 × Round(166.5) = 250×167 (half away from zero)
    assert (out.width, out.height) == (250, 167)
    assert out.bands == 3
    assert out.interpretation == "srgb"
    assert mean_abs_diff(out, src.icc_transform("srgb", embedded=True)) < 3


def test_display_p3_is_converted_to_srgb_and_profile_dropped() -> None:
    src = source_image("p3.png")
    assert has_field(src, "icc-profile-data")
    reference = src.icc_transform("srgb", embedded=True)
    # P3 reds of 240..255 are outside sRGB: converted, the red band clips to 255.
    assert src[0].min() < 245
    assert reference[0].min() >= 254
    result, out = run_image(fixture_bytes("p3.png"), "")
    assert result.format is ImageFormat.PNG
    assert (out.width, out.height, out.bands) == (8, 8, 4)
    assert not has_field(out, "icc-profile-data")
    assert full_diff(out, reference) < 1
    assert out[0].min() >= 254


def test_keeping_the_colour_profile_keeps_the_pixels() -> None:
    src = source_image("p3.png")
    _, out = run_image(fixture_bytes("p3.png"), "scp:0")
    assert has_field(out, "icc-profile-data")
    assert bytes(out.get("icc-profile-data")) == bytes(src.get("icc-profile-data"))
    assert full_diff(out, src) < 1


def test_16_bit_grey_alpha_becomes_8_bit_grey_alpha() -> None:
    src = source_image("16-bit-grey-alpha.png")
    assert (src.format, src.interpretation, src.bands) == ("ushort", "grey16", 2)
    result, out = run_image(fixture_bytes("16-bit-grey-alpha.png"), "")
    assert result.format is ImageFormat.PNG
    assert (out.width, out.height) == (109, 96)
    assert (out.format, out.bands) == ("uchar", 2)
    assert out.interpretation == "b-w"
    # Both bands rescaled 65535 → 255 (grey is black here; alpha goes up to 4116/257 = 16).
    assert full_diff(out, src / 257) < 1
    assert out[1].max() >= 15


def test_16_bit_grey_alpha_to_jpeg_is_flattened_on_white() -> None:
    src = source_image("16-bit-grey-alpha.png")
    _, out = run_image(fixture_bytes("16-bit-grey-alpha.png"), "f:jpg")
    assert out.bands == 1
    # black at alpha a over white: 255 × (1 - a/65535)
    expected = (1 - src[1] / 65535) * 255
    assert full_diff(out, expected) < 2


def test_greyscale_jpeg_stays_one_band() -> None:
    src = source_image("concert.jpg")
    assert src.bands == 1
    result, out = run_image(fixture_bytes("concert.jpg"), "")
    assert result.format is ImageFormat.JPEG
    assert (out.width, out.height, out.bands) == (400, 267, 1)
    assert out.interpretation == "b-w"
    assert mean_abs_diff(out, src) < 2
    _, small = run_image(fixture_bytes("concert.jpg"), "rs:fit:200:200/f:png")
    assert (small.width, small.height, small.bands) == (200, 134, 1)  # 267/2 = 133.5 → 134
    assert mean_abs_diff(small, src) < 2


# --- alpha -------------------------------------------------------------------------------

# with-alpha.png is one colour, (91, 0, 194), at alpha 168 everywhere.
WITH_ALPHA_RGB = (91, 0, 194)
WITH_ALPHA_A = 168


def test_png_keeps_alpha_by_default() -> None:
    result, out = run_image(fixture_bytes("with-alpha.png"), "rs:fit:128:128")
    assert result.format is ImageFormat.PNG
    assert (out.width, out.height, out.bands) == (128, 96, 4)
    # Resizing premultiplies and casts back to 8 bits first (§5, as imgproxy), which
    # costs up to ~2 levels at alpha 168: 91 → 59.95 → 59 → 59 × 255/168 = 89.6.
    for band, value in enumerate(WITH_ALPHA_RGB):
        assert abs(band_mean(out, band) - value) < 3
    assert abs(band_mean(out, 3) - WITH_ALPHA_A) < 1


def test_jpeg_output_flattens_on_white() -> None:
    src = source_image("with-alpha.png")
    result, out = run_image(fixture_bytes("with-alpha.png"), "f:jpg")
    assert result.format is ImageFormat.JPEG
    assert out.bands == 3
    a = WITH_ALPHA_A / 255
    for band, value in enumerate(WITH_ALPHA_RGB):
        over_white = value * a + 255 * (1 - a)  # (147, 87, 215)
        assert abs(band_mean(out, band) - over_white) < 3
    assert mean_abs_diff(out, src.flatten(background=[255, 255, 255])) < 2
    assert mean_abs_diff(out, src.flatten(background=[0, 0, 0])) > 40


def test_transparent_area_becomes_white_in_jpeg() -> None:
    src = source_image("trim-mc.png")
    band = (0, 0, 200, 30)  # fully transparent, and black underneath
    assert src[3].extract_area(*band).max() == 0
    assert src[0].extract_area(*band).max() == 0
    _, out = run_image(fixture_bytes("trim-mc.png"), "f:jpg")
    assert out.bands == 3
    assert out.extract_area(0, 0, 200, 16).min() >= 250
    # The opaque content is still there.
    assert mean_abs_diff(out, src.flatten(background=[255, 255, 255])) < 2


def test_fully_transparent_png() -> None:
    _, as_png = run_image(fixture_bytes("full-transparent.png"), "")
    assert as_png.bands == 4
    assert as_png[3].max() == 0
    _, as_jpeg = run_image(fixture_bytes("full-transparent.png"), "f:jpg")
    assert as_jpeg.min() >= 250
    assert alpha_at(as_png, 150, 150) == 0
