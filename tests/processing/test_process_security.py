"""Security options in processing: msr, mrd (limitScale, geometry spec §2.4) and the Limits merge.

The options only parse with IMGPROXY_ALLOW_SECURITY_OPTIONS (tests/options cover the 403);
here they are parsed with it on and must change what processing does.
"""

from __future__ import annotations

import pytest

from imgproxy_py.errors import InvalidImageError
from imgproxy_py.options.model import ProcessingOptions
from imgproxy_py.options.parser import Parser
from imgproxy_py.processing import Job, ProcessingConfig, Processor, ProcessResult
from imgproxy_py.processing.limits import Limits
from imgproxy_py.settings import OptionSettings, Settings
from tests.processing.process_helpers import fixture_bytes
from tests.support import env_for

PHOTO = "Landscape_1.jpg"  # 600×450 = 270 000 px
SECURE = Parser(OptionSettings(allow_security_options=True))


def po(opts: str) -> ProcessingOptions:
    return SECURE.parse(f"/{opts}/plain/local:///x").options


def run(opts: str, name: str = PHOTO, config: ProcessingConfig | None = None) -> ProcessResult:
    return Processor(config or ProcessingConfig()).process(Job(fixture_bytes(name), po(opts)))


@pytest.mark.parametrize(
    ("opts", "size"),
    [
        ("mrd:200", (200, 150)),  # 600 → 200: d = 1/3
        ("mrd:600", (600, 450)),  # exactly the limit: unchanged
        ("mrd:0", (600, 450)),  # 0: no limit
        ("rot:90/mrd:200", (150, 200)),  # the limit applies to the rotated result
        # fill 400×100: the result (400×100) is what is limited → d = 0.5 → 200×50
        ("rs:fill:400:100/mrd:200", (200, 50)),
        # padding counts: 300×225 + 2·10 = 320×245 → d = 0.625; image Round(187.5)×Round(140.6)
        # = 188×141, padding ScaleToEven(6.25) = 6 per side → 200×153
        ("rs:fit:300:300/pd:10/mrd:200", (200, 153)),
        # extend counts: the 400×400 canvas → d = 0.5 → a 200×200 canvas
        ("rs:fit:400:400/ex:1/mrd:200", (200, 200)),
        ("rs:fit:400:400/exar:1/mrd:200", (200, 200)),
        ("rs:fit:800:800/el:1/mrd:500", (500, 375)),  # 800×600 enlarged, then limited,
    ],
)
def test_max_result_dimension(opts: str, size: tuple[int, int]) -> None:
    result = run(opts)
    assert (result.width, result.height) == size


def test_max_result_dimension_from_the_settings_and_overridden_by_the_url() -> None:
    config = ProcessingConfig.from_settings(Settings.from_env(env_for(IMGPROXY_MAX_RESULT_DIMENSION="100")))
    assert config.limits.max_result_dimension == 100
    result = Processor(config).process(Job(fixture_bytes(PHOTO), ProcessingOptions()))
    assert (result.width, result.height) == (100, 75)
    assert (run("mrd:300", config=config).width, run("mrd:0", config=config).width) == (300, 600)


def test_max_src_resolution_option() -> None:
    with pytest.raises(InvalidImageError) as info:
        run("msr:0.2")  # 200 000 px < 270 000
    assert info.value.status_code == 422
    assert run("msr:0.27").width == 600  # inclusive
    # a URL may also raise the configured limit: giant-image.jpg is 280 MP
    assert run("msr:300/rs:fit:100:100", "giant-image.jpg").width == 100


def test_limits_merge_the_url_over_the_configuration() -> None:
    configured = ProcessingConfig(
        limits=Limits(max_src_resolution=1000, max_src_file_size=50, max_result_dimension=7)
    ).limits
    assert configured.for_request(ProcessingOptions()) is configured
    merged = configured.for_request(po("msfs:99/maf:3/mafr:0.5"))
    assert merged == Limits(
        max_src_resolution=1000,
        max_src_file_size=99,  # for the fetch (FetchLimits)
        max_animation_frames=3,
        max_animation_frame_resolution=500_000,
        max_result_dimension=7,
    )


@pytest.mark.parametrize(
    ("limits", "size", "ok"),
    [
        (Limits(max_src_resolution=100), (10, 10, 1), True),
        (Limits(max_src_resolution=99), (10, 10, 1), False),
        # frames count together (width·height·frames) without a per-frame limit ...
        (Limits(max_src_resolution=250), (10, 10, 3), False),
        (Limits(max_src_resolution=300), (10, 10, 3), True),
        # ... and only per frame with one (mafr), whatever the total
        (Limits(max_src_resolution=250, max_animation_frame_resolution=100), (10, 10, 3), True),
        (Limits(max_src_resolution=10**9, max_animation_frame_resolution=99), (10, 10, 3), False),
        # a still image ignores the per-frame limit
        (Limits(max_src_resolution=100, max_animation_frame_resolution=1), (10, 10, 1), True),
    ],
)
def test_check_dimensions(limits: Limits, size: tuple[int, int, int], ok: bool) -> None:
    if ok:
        limits.check_dimensions(*size)
    else:
        with pytest.raises(InvalidImageError):
            limits.check_dimensions(*size)
