"""Grey and 16-bit sources keep what they are through padding, extend, flattening and the watermark.

imgproxy's behaviour: a grey image stays grey after a watermark; with preserve_hdr a 16-bit
image stays 16-bit whatever canvas or background is added; a float TIFF is high bit depth.
Pixel values are measured on the decoded results, never compared as bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from imgproxy_py.processing import ProcessingConfig, vips
from imgproxy_py.processing.watermark_image import load_watermark
from imgproxy_py.settings import WatermarkSettings
from tests.processing.process_helpers import run

RGB16 = [30000, 20000, 10000]


def _png(img: Any) -> bytes:
    return bytes(img.pngsave_buffer())


def _flat(bands: Sequence[float], fmt: str, interpretation: str, size: int = 64) -> Any:
    return (vips.Image.black(size, size) + bands).cast(fmt).copy(interpretation=interpretation)


GREY8 = _png(_flat([200], "uchar", "b-w"))
GREY16 = _png(_flat([30000], "ushort", "grey16"))
COLOUR16 = _png(_flat(RGB16, "ushort", "rgb16"))
RED_WM = load_watermark(
    WatermarkSettings(data=_png(_flat([255, 0, 0], "uchar", "srgb", 16)), origin="IMGPROXY_WATERMARK_DATA")
)
WM_CONFIG = ProcessingConfig(watermark=RED_WM)


def _decode(data: bytes) -> Any:
    return vips.Image.new_from_buffer(data, "")


@pytest.mark.parametrize(
    ("source", "opts", "fmt", "base"),
    [
        (GREY8, "wm:1/f:png", "uchar", 200),
        (GREY8, "wm:1:nowe/f:jpg", "uchar", 200),
        (GREY16, "wm:1/f:png", "uchar", 117),  # 30000/65535 of white, as 8-bit sRGB grey
        (GREY16, "ph:1/wm:1/f:png", "ushort", 30000),
    ],
)
def test_grey_stays_grey_after_a_colour_watermark(source: bytes, opts: str, fmt: str, base: int) -> None:
    out = _decode(run(source, opts, WM_CONFIG).data)
    assert (out.bands, out.format) == (1, fmt)
    assert out.interpretation == ("grey16" if fmt == "ushort" else "b-w")
    one = 257 if fmt == "ushort" else 1
    wm_at = (4, 4) if ":nowe" in opts else (32, 32)
    assert abs(out.getpoint(60, 60)[0] - base) < 3 * one
    assert abs(out.getpoint(*wm_at)[0] - 127 * one) < 6 * one  # the red watermark, as grey (L* of red)


def test_16_bit_colour_watermark_keeps_the_depth_and_the_picture() -> None:
    out = _decode(run(COLOUR16, "ph:1/wm:1/f:png", WM_CONFIG).data)
    assert (out.format, out.interpretation) == ("ushort", "rgb16")
    assert out.getpoint(0, 0) == pytest.approx(RGB16, abs=2)  # not squeezed to 8 bits and cast back
    assert out.getpoint(32, 32) == pytest.approx([65535, 0, 0], abs=300)  # the red watermark, 16-bit


@pytest.mark.parametrize("source", [GREY16, COLOUR16], ids=["grey16", "rgb16"])
@pytest.mark.parametrize(
    "opts",
    ["pd:5/bg:ff0000", "rs:fit:100:50:0:1/bg:ff0000", "rs:fit:96:64/exar:1/bg:ff0000", "pd:5", "rs:fit:100:50:0:1"],
)
def test_16_bits_survive_coloured_canvas_and_flattening(source: bytes, opts: str) -> None:
    out = _decode(run(source, f"ph:1/{opts}/f:png").data)
    assert out.format == "ushort"
    centre = out.getpoint(out.width // 2, out.height // 2)
    expected = [30000] * 3 if source is GREY16 else RGB16
    if "bg:" in opts:
        assert out.bands == 3 and out.interpretation == "rgb16"
        assert centre == pytest.approx(expected, abs=64)  # the image itself, opaque, not tinted red
        assert out.getpoint(0, 0) == pytest.approx([65535, 0, 0], abs=2)  # the red canvas, at 16 bits
    else:
        assert centre[-1] == 65535  # the added alpha is opaque at 16 bits, not 255 of 65535
        assert out.getpoint(0, 0)[-1] == 0


@pytest.mark.parametrize(
    ("bands", "interpretation"),
    [([0.2, 0.1, 0.05], "scrgb"), ([0.3], "b-w"), ([0.3, 1.0], "b-w")],
    ids=["rgb", "grey", "grey-alpha"],
)
def test_32_bit_float_tiff_is_high_bit_depth(bands: list[float], interpretation: str) -> None:
    tiff = bytes(_flat(bands, "float", interpretation, 16).tiffsave_buffer())
    hdr = _decode(run(tiff, "ph:1/f:png").data)
    plain = _decode(run(tiff, "f:png").data)
    assert hdr.format == "ushort" and plain.format == "uchar"
    for h, p in zip(hdr.getpoint(4, 4), plain.getpoint(4, 4), strict=True):
        assert abs(h / 257 - p) < 1.5  # the same picture, with more depth
    assert plain.getpoint(4, 4)[0] > 50  # not cast to black
