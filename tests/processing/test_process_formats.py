"""Output formats, quality, format choice (§9), metadata (§8.6) and SVG sources."""

from __future__ import annotations

from typing import Any

import pytest

from imgproxy_py.imagetype import ImageFormat, sniff
from imgproxy_py.processing import ProcessingConfig, vips
from imgproxy_py.processing.format_choice import ClientFormats
from imgproxy_py.settings import OptionSettings
from tests.processing.process_helpers import (
    DEFAULT_CONFIG,
    fixture_bytes,
    full_diff,
    has_field,
    run,
    run_image,
    soft_alpha_fraction,
    source_image,
)
from tests.support import fixture_path, load, loader_of, mean_abs_diff

PHOTO = "Landscape_1.jpg"  # 600×450, EXIF, no alpha
ALPHA = "with-alpha.png"  # 256×192, alpha 168 everywhere


def _config(**option_settings: Any) -> ProcessingConfig:
    return ProcessingConfig(options=OptionSettings(**option_settings))


# --- output formats ----------------------------------------------------------------------

LOADERS = {
    "jpg": (ImageFormat.JPEG, "jpegload"),
    "png": (ImageFormat.PNG, "pngload"),
    "webp": (ImageFormat.WEBP, "webpload"),
    "avif": (ImageFormat.AVIF, "heifload"),
    "gif": (ImageFormat.GIF, "gifload"),
}


@pytest.mark.parametrize("ext", list(LOADERS))
def test_output_format_decodes_with_its_loader(ext: str) -> None:
    fmt, loader = LOADERS[ext]
    result, out = run_image(fixture_bytes(PHOTO), f"rs:fit:200:200/f:{ext}")
    assert result.format is fmt
    assert sniff(result.data) is fmt
    assert loader_of(result.data).startswith(loader)
    assert (out.width, out.height) == (200, 150)
    if fmt is ImageFormat.AVIF:
        assert out.get("heif-compression") == "av1"
    # Still the same picture (GIF is palettised, so allow more).
    limit = 12 if fmt is ImageFormat.GIF else 4
    assert mean_abs_diff(out, source_image(PHOTO)) < limit


@pytest.mark.parametrize("ext", ["png", "webp", "avif", "gif"])
def test_alpha_formats_keep_alpha(ext: str) -> None:
    _, out = run_image(fixture_bytes(ALPHA), f"f:{ext}")
    assert out.hasalpha()


@pytest.mark.parametrize(
    ("source", "expected"),
    [(ALPHA, ImageFormat.PNG), (PHOTO, ImageFormat.JPEG)],
)
def test_tiny_avif_falls_back(source: str, expected: ImageFormat) -> None:
    """§8.7: AVIF under 16 px on either side is saved as PNG (alpha) or JPEG."""
    result, out = run_image(fixture_bytes(source), "rs:fit:12:12/f:avif")
    assert max(out.width, out.height) == 12
    assert result.format is expected
    assert sniff(result.data) is expected


def test_avif_of_exactly_16_px_stays_avif() -> None:
    # 600×450 fit into 0×16 → 21×16 (600/28.125 = 21.33); 16 is not under 16.
    result, out = run_image(fixture_bytes(PHOTO), "rs:fit:0:16/f:avif")
    assert (out.width, out.height) == (21, 16)
    assert result.format is ImageFormat.AVIF
    # One side under 16 is enough to fall back: 600×450 fit into 0×15 → 20×15.
    result = run(fixture_bytes(PHOTO), "rs:fit:0:15/f:avif")
    assert (result.width, result.height) == (20, 15)
    assert result.format is ImageFormat.JPEG


# --- quality -------------------------------------------------------------------------------


def _size(text: str, config: ProcessingConfig = DEFAULT_CONFIG) -> int:
    return len(run(fixture_bytes(PHOTO), text, config).data)


@pytest.mark.parametrize("ext", ["jpg", "webp", "avif"])
def test_quality_changes_output_size_monotonically(ext: str) -> None:
    sizes = [_size(f"rs:fit:300:300/f:{ext}/q:{q}") for q in (10, 30, 50, 70, 90)]
    assert sizes == sorted(sizes)
    assert len(set(sizes)) == len(sizes), sizes


def test_quality_option_beats_format_quality_option() -> None:
    low = _size("rs:fit:300:300/f:jpg/fq:jpg:20")
    high = _size("rs:fit:300:300/f:jpg/fq:jpg:20/q:90")
    assert high > low * 1.5


def test_format_quality_option_beats_config() -> None:
    default = _size("rs:fit:300:300/f:jpg")  # config quality 80
    assert _size("rs:fit:300:300/f:jpg/fq:jpg:20") < default * 0.7
    # A format_quality for another format does not apply.
    assert _size("rs:fit:300:300/f:jpg/fq:webp:20") == pytest.approx(default, rel=0.01)
    # fq beats the config's per-format quality too.
    config = _config(format_quality={ImageFormat.JPEG: 20})
    assert _size("rs:fit:300:300/f:jpg/fq:jpg:90", config) > _size("rs:fit:300:300/f:jpg", config) * 1.5


def test_config_format_quality_beats_config_quality() -> None:
    plain = _size("rs:fit:300:300/f:jpg", _config(quality=90))
    per_format = _size("rs:fit:300:300/f:jpg", _config(quality=90, format_quality={ImageFormat.JPEG: 20}))
    assert per_format < plain * 0.6
    assert _size("rs:fit:300:300/f:jpg", _config(quality=20)) < _size("rs:fit:300:300/f:jpg") * 0.7


def test_webp_default_comes_from_its_format_quality() -> None:
    # Config: quality 80, webp 79. Raising the config quality alone must not change WebP.
    assert _size("rs:fit:300:300/f:webp", _config(quality=20)) == pytest.approx(
        _size("rs:fit:300:300/f:webp"), rel=0.01
    )
    assert _size("rs:fit:300:300/f:webp", _config(format_quality={ImageFormat.WEBP: 20})) < (
        _size("rs:fit:300:300/f:webp") * 0.8
    )


# --- format choice (§9) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "opts", "expected"),
    [
        (ClientFormats(webp=True), "", ImageFormat.WEBP),
        (ClientFormats(avif=True), "", ImageFormat.AVIF),
        (ClientFormats(webp=True, avif=True), "", ImageFormat.AVIF),
        # auto only applies when no format is requested ...
        (ClientFormats(webp=True, avif=True), "f:png", ImageFormat.PNG),
        # ... enforce overrides even a requested format, AVIF before WebP.
        (ClientFormats(webp=True, enforce_webp=True), "f:png", ImageFormat.WEBP),
        (ClientFormats(avif=True, enforce_avif=True), "f:png", ImageFormat.AVIF),
        (ClientFormats(webp=True, avif=True, enforce_webp=True, enforce_avif=True), "f:png", ImageFormat.AVIF),
        (ClientFormats(), "", ImageFormat.JPEG),
    ],
)
def test_client_formats(client: ClientFormats, opts: str, expected: ImageFormat) -> None:
    result, out = run_image(fixture_bytes(PHOTO), f"rs:fit:100:100/{opts}", client=client)
    assert result.format is expected
    assert sniff(result.data) is expected
    assert (out.width, out.height) == (100, 75)


def _tiff(name: str) -> bytes:
    return bytes(source_image(name).tiffsave_buffer())


def _heic_branded(name: str) -> bytes:
    """An AV1-coded HEIF branded ``heic``: the bundled libheif has no HEVC encoder.

    Format detection looks at the brand only, so this is a HEIC source to process().
    """
    small = source_image(name).thumbnail_image(160)  # AV1 encoding is slow; keep it small
    data = bytes(small.heifsave_buffer(compression="av1", effort=0))
    heic = data.replace(b"avif", b"heic")
    assert sniff(heic) is ImageFormat.HEIC
    return heic


def _avif(name: str) -> bytes:
    data = bytes(source_image(name).thumbnail_image(160).heifsave_buffer(compression="av1", effort=0))
    assert sniff(data) is ImageFormat.AVIF
    return data


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        # Sources outside PREFERRED_FORMATS (jpeg, png, gif): the first preferred format
        # that can hold what the image needs — JPEG without alpha, PNG with alpha.
        (lambda: fixture_bytes("G31D.TIF"), ImageFormat.JPEG),
        (lambda: _tiff(ALPHA), ImageFormat.PNG),
        (lambda: fixture_bytes("sdr_cosmos12920_cicp1-13-6_yuv444_full_qp10.avif"), ImageFormat.JPEG),
        (lambda: _avif(ALPHA), ImageFormat.PNG),
        (lambda: _heic_branded(PHOTO), ImageFormat.JPEG),
        (lambda: _heic_branded(ALPHA), ImageFormat.PNG),
        (lambda: fixture_bytes("4.webp"), ImageFormat.JPEG),
        (lambda: fixture_bytes("animated-loop-3.webp"), ImageFormat.GIF),  # animations stay animated: GIF
        # Preferred sources keep their format.
        (lambda: fixture_bytes("animated-loop-3.gif"), ImageFormat.GIF),
        (lambda: fixture_bytes(ALPHA), ImageFormat.PNG),
        (lambda: fixture_bytes(PHOTO), ImageFormat.JPEG),
    ],
    ids=["tiff", "tiff-alpha", "avif", "avif-alpha", "heic", "heic-alpha", "webp", "webp-alpha", "gif", "png", "jpeg"],
)
def test_preferred_format_when_none_requested(make: Any, expected: ImageFormat) -> None:
    data = make()
    result, out = run_image(data, "rs:fit:64:64")
    assert result.format is expected
    assert sniff(result.data) is expected
    assert max(out.width, out.height) == 64


def test_extend_counts_as_transparency_for_a_non_preferred_source() -> None:
    # G31D.TIF has no alpha, but ex:1 expects transparent padding → PNG (§9).
    result, out = run_image(fixture_bytes("G31D.TIF"), "rs:fit:100:200/ex:1")
    assert result.format is ImageFormat.PNG
    assert (out.width, out.height) == (100, 200)
    assert out.hasalpha()


def test_configured_preferred_formats() -> None:
    tiff = fixture_bytes("G31D.TIF")
    assert run(tiff, "rs:fit:64:64", _config(preferred_formats=(ImageFormat.PNG, ImageFormat.JPEG))).format is (
        ImageFormat.PNG
    )
    # No preferred format holds alpha: the first one is used and the image flattened.
    result, out = run_image(_tiff(ALPHA), "rs:fit:64:64", _config(preferred_formats=(ImageFormat.JPEG,)))
    assert result.format is ImageFormat.JPEG
    assert out.bands == 3


# --- metadata ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["320x240.jpg", PHOTO, ALPHA])
def test_metadata_is_stripped_by_default(name: str) -> None:
    assert has_field(source_image(name), "exif-data")
    _, out = run_image(fixture_bytes(name), "")
    assert not has_field(out, "exif-data")


@pytest.mark.parametrize("name", ["320x240.jpg", PHOTO])
def test_metadata_is_kept_with_sm_0(name: str) -> None:
    _, out = run_image(fixture_bytes(name), "sm:0")
    assert has_field(out, "exif-data")


# --- SVG -----------------------------------------------------------------------------------


def test_svg_loads_in_the_production_libvips_state() -> None:
    """vips.init() blocks untrusted loaders but re-enables SVG from memory, which we need."""
    result = run(fixture_bytes("check.svg"), "rs:fit:200:200/f:png")
    assert (result.width, result.height) == (200, 200)


def test_svg_cannot_read_files_or_urls() -> None:
    """An SVG loaded from memory has no base: librsvg resolves no file, path or relative reference."""
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="64" height="64">'
        b'<image href="file://' + str(fixture_path("320x240.jpg")).encode() + b'" width="64" height="64"/>'
        b'<image xlink:href="' + str(fixture_path("320x240.jpg")).encode() + b'" width="64" height="64"/>'
        b'<image xlink:href="320x240.jpg" width="64" height="64"/></svg>'
    )
    _, out = run_image(svg, "f:png")
    assert out.hasalpha()
    assert out.extract_band(out.bands - 1).max() == 0  # nothing was drawn


def _svgload(name: str, scale: float) -> Any:
    """libvips' own render of the SVG at ``scale``: the vector reference."""
    return vips.open_source(fixture_bytes(name), scale=scale)


@pytest.mark.parametrize(
    ("name", "opts", "scale", "size"),
    [
        # check.svg is 100×100 (viewBox only); vectors ignore el (§2.2) → rendered at 10×.
        ("check.svg", "rs:fit:1000:1000", 10, (1000, 1000)),
        ("check.svg", "rs:fit:50:50", 0.5, (50, 50)),
        # struct-image-04-t.svg is 480×360 (100% of its viewBox) → 2×.
        ("struct-image-04-t.svg", "rs:fit:960:960", 2, (960, 720)),
        ("struct-image-04-t.svg", "rs:fit:240:240", 0.5, (240, 180)),
    ],
)
def test_svg_is_rendered_at_the_requested_size(name: str, opts: str, scale: float, size: tuple[int, int]) -> None:
    result, out = run_image(fixture_bytes(name), opts + "/f:png")
    assert (out.width, out.height) == size
    assert result.source_format is ImageFormat.SVG
    direct = _svgload(name, scale)
    assert (direct.width, direct.height) == size
    assert full_diff(out, direct) < 0.5


@pytest.mark.parametrize(("name", "factor"), [("check.svg", 10), ("struct-image-04-t.svg", 3)])
def test_enlarged_svg_is_sharp_not_upscaled(name: str, factor: int) -> None:
    natural = load(fixture_bytes(name))
    w, h = natural.width * factor, natural.height * factor
    _, out = run_image(fixture_bytes(name), f"rs:fit:{w}:{h}/f:png")
    assert (out.width, out.height) == (w, h)
    upscaled = natural.resize(factor)
    direct = _svgload(name, factor)
    # Pixel for pixel the vector render, and much closer to it than an upscale is.
    assert full_diff(out, direct) < 0.5
    assert full_diff(upscaled, direct) > 0.5
    # An upscale smears every anti-aliased edge over ~factor pixels; a render keeps it thin.
    assert soft_alpha_fraction(out) < soft_alpha_fraction(upscaled) / 3


def test_svg_without_format_is_rasterised_to_png_when_always_rasterizing() -> None:
    """Without a format an SVG passes through as SVG (tests/processing/test_svg.py) unless
    IMGPROXY_ALWAYS_RASTERIZE_SVG is on."""
    config = ProcessingConfig(always_rasterize_svg=True)
    result, out = run_image(fixture_bytes("check.svg"), "rs:fit:300:300", config)
    assert result.format is ImageFormat.PNG  # SVG is not savable; alpha → PNG
    assert (out.width, out.height) == (300, 300)
    assert out.hasalpha()
