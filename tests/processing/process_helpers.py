"""Helpers for the process() tests: options from URL text, fixture bytes, pixel measures.

Importing this module puts libvips into the production state (``vips.init()``: operation
cache off, untrusted loaders blocked), so the tests see what the server sees.
"""

from __future__ import annotations

import functools
from typing import Any

from imgproxy_py.options.model import ProcessingOptions
from imgproxy_py.options.parser import Parser
from imgproxy_py.processing import Job, ProcessingConfig, Processor, ProcessResult, vips
from imgproxy_py.processing.format_choice import NO_CLIENT_FORMATS, ClientFormats
from imgproxy_py.settings import OptionSettings
from tests.support import fixture_path, load

vips.init()

# The benchmark photo: 2725×2225 baseline JPEG, no EXIF orientation (geometry spec §10).
BENCHMARK = "2569067123_aca715a2ee_o.jpg"
BENCH_W, BENCH_H = 2725, 2225

_PARSER = Parser(OptionSettings())
DEFAULT_CONFIG = ProcessingConfig()


def options(text: str) -> ProcessingOptions:
    """Processing options from the options part of an imgproxy URL, e.g. ``rs:fill:300:200/g:so``."""
    text = text.strip("/")
    path = f"/{text}/plain/local:///x" if text else "/plain/local:///x"
    return _PARSER.parse(path).options


def run(
    data: bytes,
    text: str,
    config: ProcessingConfig = DEFAULT_CONFIG,
    client: ClientFormats = NO_CLIENT_FORMATS,
) -> ProcessResult:
    return Processor(config).process(Job(data, options(text), client))


def run_image(
    data: bytes,
    text: str,
    config: ProcessingConfig = DEFAULT_CONFIG,
    client: ClientFormats = NO_CLIENT_FORMATS,
) -> tuple[ProcessResult, Any]:
    """Process, then decode the result; the decoded size must match what process() reported."""
    result = run(data, text, config, client)
    img = load(result.data)
    assert (img.width, img.height) == (result.width, result.height)
    return result, img


@functools.cache
def _read(name: str) -> bytes:
    return fixture_path(name).read_bytes()


def fixture_bytes(name: str) -> bytes:
    return _read(name)


def source_image(name: str) -> Any:
    """The fixture decoded by plain libvips (the reference the outputs are compared with)."""
    return vips.Image.new_from_buffer(fixture_bytes(name), "")


@functools.cache
def _benchmark(fmt: str) -> bytes:
    data = fixture_bytes(BENCHMARK)
    if fmt == "jpeg":
        return data
    img = vips.Image.new_from_buffer(data, "")
    if fmt == "png":
        return bytes(img.pngsave_buffer(compression=1))
    if fmt == "webp":
        return bytes(img.webpsave_buffer(Q=90))
    raise ValueError(fmt)


def benchmark(fmt: str) -> bytes:
    """The benchmark photo as JPEG (the fixture) or re-encoded losslessly (PNG) / lossy (WebP)."""
    return _benchmark(fmt)


@functools.cache
def _benchmark_image() -> Any:
    return vips.Image.new_from_buffer(fixture_bytes(BENCHMARK), "").copy_memory()


def benchmark_image() -> Any:
    """The benchmark photo's pixels, decoded once (libvips images are immutable, so shared)."""
    return _benchmark_image()


def full_diff(a: Any, b: Any) -> float:
    """Mean absolute difference (0..255) over every pixel and band, at full resolution.

    Unlike ``mean_abs_diff`` nothing is scaled down, so a one-pixel shift or a soft
    upscale shows; the images must have the same size and band count.
    """
    assert (a.width, a.height, a.bands) == (b.width, b.height, b.bands), (
        f"{a.width}x{a.height}x{a.bands} vs {b.width}x{b.height}x{b.bands}"
    )
    return float((a.cast("float") - b.cast("float")).abs().avg())


def band_mean(img: Any, band: int) -> float:
    return float(img[band].avg())


def soft_alpha_fraction(img: Any) -> float:
    """Share of pixels whose alpha is neither 0 nor 255: the anti-aliased (or blurred) edges."""
    alpha = img[img.bands - 1]
    soft = (alpha > 0) & (alpha < 255)  # 255 where true
    return float(soft.avg()) / 255.0


def alpha_at(img: Any, x: int, y: int) -> float:
    return float(img.getpoint(x, y)[img.bands - 1])


def has_field(img: Any, name: str) -> bool:
    return bool(img.get_typeof(name) != 0)
