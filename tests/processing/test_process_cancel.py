"""Every step that evaluates pixels does so under the request's cancel token.

A step that materialises an image (``copy_memory``, ``find_trim``, ``smartcrop``) outside
the token runs to the end however long it takes; these steps are handed a token that is
already stopped and must give up with its error instead of computing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from imgproxy_py.cancel import CancelToken, current_token
from imgproxy_py.errors import ClientClosedError
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.options.model import Gravity, GravityType
from imgproxy_py.processing import Job, ProcessingConfig, Processor
from imgproxy_py.processing.context import PipelineContext
from imgproxy_py.processing.encode import EncoderSettings, encode_to_fit
from imgproxy_py.processing.steps.crop import crop_image
from imgproxy_py.processing.steps.filters import apply_filters
from imgproxy_py.processing.steps.rotate_and_flip import rotate_and_flip
from imgproxy_py.processing.steps.trim import trim
from imgproxy_py.processing.watermark_image import load_watermark
from imgproxy_py.settings import WatermarkSettings
from tests.processing.process_helpers import BENCHMARK, fixture_bytes, options
from tests.support import load


@contextmanager
def cancelled() -> Iterator[CancelToken]:
    token = CancelToken()
    token.cancel()
    reset = current_token.set(token)
    try:
        yield token
    finally:
        current_token.reset(reset)


def context(text: str) -> PipelineContext:
    ctx = PipelineContext(
        img=load(fixture_bytes(BENCHMARK)),
        po=options(text),
        source_format=ImageFormat.JPEG,
        target_format=ImageFormat.JPEG,
        data=None,
    )
    ctx.calc_params()
    return ctx


def _trim() -> None:
    trim(context("t:10"))


def _blur() -> None:
    apply_filters(context("bl:5"))


def _sharpen() -> None:
    apply_filters(context("sh:2"))


def _pixelate() -> None:
    apply_filters(context("pix:8"))


def _smart_crop() -> None:
    crop_image(load(fixture_bytes(BENCHMARK)), 300, 300, Gravity(GravityType.SMART), 1.0)


def _rotate() -> None:
    rotate_and_flip(context("rot:90"))


def _max_bytes() -> None:
    encode_to_fit(load(fixture_bytes(BENCHMARK)), ImageFormat.JPEG, 80, 1000, False, EncoderSettings())


STEPS: dict[str, Callable[[], None]] = {
    "trim": _trim,
    "blur": _blur,
    "sharpen": _sharpen,
    "pixelate": _pixelate,
    "smart crop": _smart_crop,
    "rotate": _rotate,
    "max_bytes": _max_bytes,
}


@pytest.mark.parametrize("step", STEPS.values(), ids=STEPS.keys())
def test_materialising_steps_stop_with_the_token(step: Callable[[], None]) -> None:
    step()  # without a token it runs (the step really does something here)
    with cancelled(), pytest.raises(ClientClosedError):
        step()


def _config_with_watermark() -> ProcessingConfig:
    mark = load(fixture_bytes("with-alpha.png")).thumbnail_image(40).write_to_buffer(".png")
    return ProcessingConfig(watermark=load_watermark(WatermarkSettings(data=mark)))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("animated-loop-3.gif", "bl:2/sh:1/rs:fit:80:80/wm:0.5:ce/f:gif"),  # every frame, then the watermark
        ("with-alpha.png", "t:10/pix:4/bg:ff0000/wm:1:soea/f:jpg"),  # trim, filter, flatten, watermark
        ("2569067123_aca715a2ee_o.jpg", "rs:fill:300:300/g:sm/rot:90/wm:1:re/mb:20000"),
    ],
)
def test_the_whole_pipeline_stops_with_the_token(name: str, text: str) -> None:
    """Animation frames, flatten and watermark are lazy and end in the cancellable save; the
    result is the token's error, whatever step meets it first."""
    config = _config_with_watermark()
    data = fixture_bytes(name)
    assert Processor(config).process(Job(data, options(text))).data  # it works without a token
    with cancelled(), pytest.raises(ClientClosedError):
        Processor(config).process(Job(data, options(text)))
