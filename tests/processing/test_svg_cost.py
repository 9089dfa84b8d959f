"""SVG amplification: <use> expansion and filter work are bounded before anything renders (issue 16)."""

from __future__ import annotations

import time

import pytest

from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.options.model import ProcessingOptions
from imgproxy_py.processing import Job, ProcessingConfig, Processor
from imgproxy_py.processing.describe import image_info
from imgproxy_py.processing.svg_cost import (
    MAX_ELEMENTS,
    SvgTooComplexError,
    check_svg_cost,
    svg_cost,
)
from tests.security.hostile import SVG_NS, filter_svg, use_bomb_svg, use_cycle_svg
from tests.support import images_dir

RASTER = ProcessingOptions(format=ImageFormat.PNG)
PASSTHROUGH = ProcessingOptions()


def test_nested_use_is_counted_through_groups_and_symbols() -> None:
    # 1 rect; each level: its group plus 10 uses of the level below; the document and <defs>.
    sizes = {1: 21, 2: 221, 3: 2221}
    for levels, size in sizes.items():
        standing = sum(sizes.get(n, 1) for n in range(levels + 1))
        cost = svg_cost(use_bomb_svg(levels, 10))
        assert cost is not None and cost.elements == 2 + standing + 1 + size
        assert svg_cost(use_bomb_svg(levels, 10, via="symbol")) == cost
    bomb = svg_cost(use_bomb_svg(10, 10))
    assert bomb is not None and bomb.elements > MAX_ELEMENTS  # counted up to just past the bound, quickly


@pytest.mark.parametrize("via", ["g", "symbol"])
def test_a_use_bomb_is_refused(via: str) -> None:
    data = use_bomb_svg(10, 10, via=via)
    assert len(data) < 3000
    with pytest.raises(SvgTooComplexError) as info:
        check_svg_cost(data)
    assert info.value.status_code == 422


def test_use_cycles_are_refused() -> None:
    with pytest.raises(SvgTooComplexError):
        check_svg_cost(use_cycle_svg())
    with pytest.raises(SvgTooComplexError):
        check_svg_cost(f'<svg {SVG_NS}><g id="a"><use href="#a"/></g></svg>'.encode())


def test_real_drawings_pass() -> None:
    check_svg_cost(use_bomb_svg(3, 10))  # 4688 elements
    for path in sorted(images_dir().glob("*.svg")):
        assert check_svg_cost(path.read_bytes()).elements < 1000, path.name
    # a shadow on each of 30 small shapes of a large canvas: each blur covers its own box only
    shapes = "".join(f'<rect x="{i * 60}" width="50" height="50" filter="url(#s)"/>' for i in range(30))
    shadows = f'<svg {SVG_NS} width="2000" height="2000"><filter id="s"><feGaussianBlur stdDeviation="3"/></filter>'
    check_svg_cost((shadows + shapes + "</svg>").encode())


def test_filter_work_over_the_bound_is_refused() -> None:
    assert (cost := svg_cost(filter_svg(2500, 5))) is not None and cost.filter_pixels == 5 * 2500 * 2500
    with pytest.raises(SvgTooComplexError):
        check_svg_cost(filter_svg(2500, 5))
    check_svg_cost(filter_svg(1000, 3))  # 3 M pixel passes: under the bound
    # filters referenced from CSS, and repeated by <use>, count too
    styled = (
        f'<svg {SVG_NS} width="1000" height="1000"><filter id="b"><feMorphology radius="9"/></filter>'
        '<g id="g"><rect width="1000" height="1000" style="fill:red; filter: url(#b)"/></g>'
        + '<use href="#g"/>' * 5
        + "</svg>"
    )
    assert (cost := svg_cost(styled.encode())) is not None and cost.filter_pixels == 6 * 1000 * 1000
    with pytest.raises(SvgTooComplexError):
        check_svg_cost(styled.encode())


@pytest.mark.parametrize("po", [RASTER, PASSTHROUGH], ids=["rasterised", "passed-through"])
@pytest.mark.parametrize("data", [use_bomb_svg(), filter_svg(4000, 40)], ids=["use-bomb", "filter-bomb"])
def test_process_refuses_before_rendering(data: bytes, po: ProcessingOptions) -> None:
    started = time.monotonic()
    with pytest.raises(SvgTooComplexError):
        Processor(ProcessingConfig()).process(Job(data, po))
    assert time.monotonic() - started < 2  # librsvg took ~7 s on the use bomb; here it never starts


def test_passthrough_refuses_even_without_sanitising() -> None:
    with pytest.raises(SvgTooComplexError):
        Processor(ProcessingConfig(sanitize_svg=False)).process(Job(use_bomb_svg(), PASSTHROUGH))


def test_info_refuses_before_rendering() -> None:
    with pytest.raises(SvgTooComplexError):
        image_info(use_bomb_svg(), 50_000_000)


def test_filter_work_is_bounded_at_the_size_drawn() -> None:
    check_svg_cost(filter_svg(1000, 1))  # 1 M pixel passes at its natural size
    with pytest.raises(SvgTooComplexError):
        check_svg_cost(filter_svg(1000, 1), scale=3)  # rendered at 3000²: 9 M
