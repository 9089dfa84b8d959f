"""Bad input never hurts: every hostile file gets a clear answer, fast, in bounded memory.

Each input from tests/security/hostile.py is served from a temporary local root. The answer
must be the expected status (422 for a broken, bombing or unsupported image; 200 only for an
input that is in fact a valid image, the case says why), within TIME_LIMIT seconds, with the
process's peak RSS rising by less than RSS_LIMIT_MB, and a normal request right after must
still succeed. The same files then go through a real uvicorn process, which must survive.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from imgproxy_py.cancel import CancelToken, current_token
from imgproxy_py.errors import ImgproxyError
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.options.model import ProcessingOptions
from imgproxy_py.processing import Job, ProcessingConfig, Processor
from imgproxy_py.processing.svg_cost import SvgTooComplexError
from tests.conftest import ClientFactory
from tests.security import hostile
from tests.security.rss import peak_rss, process_peak_mb
from tests.support import IMAGES, REPO, load, mean_abs_diff, serving

TIME_LIMIT = 2.0  # seconds per request
RSS_LIMIT_MB = 300
GOOD = "/insecure/rs:fit:50:50/plain/local:///good.jpg"
CASES = list(hostile.cases()) if IMAGES.is_dir() else []  # empty: pytest reports the test as skipped
LEAKS = (b"Traceback", b'File "', str(REPO).encode(), b"site-packages", b".py", b"libvips", b"Vips")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile")
    for case in CASES:
        target = path / case.name
        if target.exists():
            assert target.read_bytes() == case.data, f"two different inputs named {case.name}"
        target.write_bytes(case.data)
    (path / "good.jpg").write_bytes(hostile.fixture("jpeg"))
    return path


def check_answer(case: hostile.Case, response: httpx.Response) -> None:
    """The status is the expected one; a 200 is a real, bounded image; an error says nothing inside."""
    assert response.status_code == case.status, f"{case.id}: {response.status_code} {response.text[:200]!r}"
    assert case.status != 200 or case.why, f"{case.id}: a 200 must say why the input is valid"
    body = response.content
    if response.status_code != 200:
        assert "cache-control" not in response.headers
        assert response.headers["content-type"].startswith("text/plain")
        assert len(body) < 300 and body.count(b"\n") <= 1, body
        for leak in LEAKS:
            assert leak not in body, (leak, body)
        return
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]
    if case.payload:
        assert case.payload not in body, f"{case.id}: the polyglot payload came back"
    if response.headers["content-type"] == "image/svg+xml":
        assert b"<svg" in body
        return
    img = load(body)
    assert img.width > 0 and img.height > 0
    if case.max_pixels:
        assert img.width * img.height <= case.max_pixels, (img.width, img.height)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_hostile_input_gets_a_clear_answer_fast(
    case: hostile.Case, root: Path, client_factory: ClientFactory
) -> None:
    async with client_factory(IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(root), IMGPROXY_ENABLE_VIDEO_THUMBNAILS="1") as client:
        with peak_rss() as peak:
            started = time.monotonic()
            response = await client.get(case.path)
            elapsed = time.monotonic() - started
        check_answer(case, response)
        assert elapsed < TIME_LIMIT, f"{case.id} took {elapsed:.2f}s"
        assert peak.growth_mb < RSS_LIMIT_MB, f"{case.id}: peak RSS grew by {peak.growth_mb} MB"
        after = await client.get(GOOD)
        assert after.status_code == 200, after.text


async def test_svg_references_are_not_loaded(root: Path, client_factory: ClientFactory) -> None:
    """XInclude of /etc/passwd, <image href="file:…"> and an http image draw nothing."""
    (root / "no-references.svg").write_bytes(hostile.external_reference_svg(False))
    async with client_factory(IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(root)) as client:
        hostile_png = await client.get("/insecure/q:80/plain/local:///references.svg@png")
        plain_png = await client.get("/insecure/q:80/plain/local:///no-references.svg@png")
    assert hostile_png.status_code == plain_png.status_code == 200
    assert mean_abs_diff(load(hostile_png.content), load(plain_png.content)) == 0


# --- known problems --------------------------------------------------------------------------


async def test_progressive_jpeg_with_a_huge_scan_count_is_refused(root: Path, client_factory: ClientFactory) -> None:
    (root / "many-scans.jpg").write_bytes(hostile.many_scan_jpeg(2000, 2000))
    async with client_factory(IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(root), IMGPROXY_WORKERS="1") as client:
        started = time.monotonic()
        response = await client.get("/insecure/rs:fit:100:100/plain/local:///many-scans.jpg")
        elapsed = time.monotonic() - started
        assert response.status_code == 422, (response.status_code, f"{elapsed:.2f}s")
        assert elapsed < 1.5  # decoding its 2000 scans would take far longer (a margin, not a benchmark)
        assert (await client.get(GOOD)).status_code == 200


async def test_options_that_ask_for_a_gigapixel_result_are_refused(root: Path, client_factory: ClientFactory) -> None:
    async with client_factory(IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(root), IMGPROXY_TIMEOUT="1") as client:
        with peak_rss() as peak:
            response = await client.get("/insecure/rs:fit:60000:60000/el:1/plain/local:///good.jpg@jpg")
        assert response.status_code == 422, response.text  # the README's promise, before any pixel
        assert peak.growth_mb < RSS_LIMIT_MB


@pytest.mark.parametrize(
    ("options", "status"),
    [
        ("rs:force:1000:1000/el:1", 200),  # exactly 1 MP: at the limit, not over it
        ("rs:force:1001:1000/el:1", 422),
        ("rs:fit:3000:3000/el:1", 422),
        ("rs:force:1000:1000/el:1/pd:1", 422),  # padding counts: the result is 1002 x 1002
    ],
)
async def test_max_result_resolution_is_the_limit_on_result_pixels(
    root: Path, client_factory: ClientFactory, options: str, status: int
) -> None:
    """IMGPROXY_MAX_RESULT_RESOLUTION (megapixels): a larger result is a 422, as the README says."""
    env = {"IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(root), "IMGPROXY_MAX_RESULT_RESOLUTION": "1"}
    async with client_factory(**env) as client:
        response = await client.get(f"/insecure/{options}/plain/local:///good.jpg@png")
    assert response.status_code == status, response.text
    if status == 200:
        assert load(response.content).width * load(response.content).height == 1_000_000


@pytest.mark.parametrize("encoding", ["nope", "Shift_JIS", "rot13", "idna"])
def test_an_svg_in_an_unusable_encoding_is_a_clean_422(encoding: str) -> None:
    data = hostile.declared_encoding_svg(encoding)
    with pytest.raises(ImgproxyError) as raised:  # not passing when nothing is raised at all
        Processor(ProcessingConfig()).process(Job(data, ProcessingOptions()))
    assert raised.value.status_code == 422


async def test_a_png_with_a_latin1_text_keyword_is_served(root: Path, client_factory: ClientFactory) -> None:
    (root / "latin1-keyword.png").write_bytes(hostile.latin1_keyword_png())
    async with client_factory(IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(root)) as client:
        response = await client.get("/insecure/rs:fit:50:50/plain/local:///latin1-keyword.png")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("side", "layers", "size"),
    [(2500, 5, 0), (4000, 40, 0), (500, 1, 4000)],  # the last: a small blur, enlarged 64× in area
)
def test_svg_filter_work_is_refused_before_librsvg_renders_it(side: int, layers: int, size: int) -> None:
    """librsvg runs a filter in chunks the cancel token cannot interrupt: before the static bound,
    5 blurred layers on 2500² overran a 0.5 s deadline by ~2.5 s, 40 on 4000² by 134 s (+460 MB), and
    one 500² blur rendered at 4000² by ~10 s. Now each is refused before rendering starts. (Filter
    work under the bound, ≤ 4 M pixel passes, can still overrun a deadline by a second or so.)"""
    data = hostile.filter_svg(side, layers)
    po = ProcessingOptions(format=ImageFormat.PNG, width=size, height=size, enlarge=bool(size))
    started = time.monotonic()
    deadline = started + 0.5
    token = current_token.set(CancelToken(deadline=deadline))
    try:
        with pytest.raises(SvgTooComplexError):
            Processor(ProcessingConfig()).process(Job(data, po, deadline=deadline))
    finally:
        current_token.reset(token)
    assert time.monotonic() - deadline < 1.0


# --- the real server survives ----------------------------------------------------------------


@pytest.fixture
def served(root: Path, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    env = {
        "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(root),
        "IMGPROXY_LOG_LEVEL": "error",
        "IMGPROXY_ENABLE_VIDEO_THUMBNAILS": "true",  # the video cases reach FFmpeg, not the type check
    }
    with (tmp_path / "server.log").open("w") as log, serving(env=env, output=log) as running:
        yield running


@pytest.mark.skipif(not CASES, reason=f"test fixtures not found at {IMAGES}")
def test_a_real_server_process_survives_every_hostile_input(served: tuple[str, subprocess.Popen[str]]) -> None:
    base, proc = served
    with httpx.Client(base_url=base, timeout=30) as client:
        assert client.get(GOOD).status_code == 200
        started_mb = process_peak_mb(proc.pid)
        for case in CASES:
            started = time.monotonic()
            response = client.get(case.path)
            elapsed = time.monotonic() - started
            check_answer(case, response)
            assert elapsed < TIME_LIMIT, f"{case.id} took {elapsed:.2f}s"
            assert proc.poll() is None, f"the server died on {case.id}"
        assert client.get("/health").status_code == 200
        assert client.get(GOOD).status_code == 200
    assert proc.poll() is None
    peak_mb = process_peak_mb(proc.pid)
    if started_mb is not None and peak_mb is not None:
        assert peak_mb - started_mb < RSS_LIMIT_MB, f"the server's peak RSS rose by {peak_mb - started_mb} MB"


@pytest.mark.skipif(not CASES, reason=f"test fixtures not found at {IMAGES}")
def test_a_long_librsvg_error_does_not_break_the_process(root: Path, served: tuple[str, subprocess.Popen[str]]) -> None:
    base, _ = served
    (root / "poison.svg").write_bytes(hostile.error_buffer_poison_svg())
    with httpx.Client(base_url=base, timeout=30) as client:
        poisoned = client.get("/insecure/rs:fit:50:50/plain/local:///poison.svg@png")
        assert poisoned.status_code == 422
        assert client.get("/insecure/rs:fit:51:51/plain/local:///good.jpg").status_code == 200
        assert client.get("/health").status_code == 200


@pytest.mark.skipif(not CASES, reason=f"test fixtures not found at {IMAGES}")
def test_a_very_wide_png_stays_in_bounded_memory(root: Path, served: tuple[str, subprocess.Popen[str]]) -> None:
    base, proc = served
    rgba16 = hostile.small_png(bits=16, bands=4)
    (root / "wide.png").write_bytes(hostile.png_with_size(rgba16, 400_000, 125))
    with httpx.Client(base_url=base, timeout=30) as client:
        assert client.get(GOOD).status_code == 200
        started_mb = process_peak_mb(proc.pid)
        if started_mb is None:
            pytest.skip("no /proc/<pid>/status here")
        response = client.get("/insecure/rs:fit:100:100/plain/local:///wide.png")
        assert response.status_code == 422
        assert client.get(GOOD).status_code == 200
    grown = (process_peak_mb(proc.pid) or 0) - started_mb
    assert grown < RSS_LIMIT_MB, f"the server's peak RSS rose by {grown} MB"
