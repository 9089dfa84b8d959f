"""The playground in a real browser: Debian's Chromium driven by Playwright, against a real ``serve --dev``.

Nothing downloads a browser: Playwright launches /usr/bin/chromium (``apt-get install chromium``;
.ci/run installs it). Without it these tests skip, saying so, except under CI=true where a
missing browser is a failure. Screenshots go to the test's tmp folder (the path is printed).
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imgproxy_py.url import URLBuilder
from tests.support import FIXTURES, REPO, serving

CHROMIUM = os.environ.get("PLAYGROUND_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FACE = "astronaut.png"  # 512×512, one face (../shared/fixtures/faces)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must run the browser tests: .ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playground browser tests need the playwright package (pip install -e '.[dev]')")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"the playground browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``imgproxy-py serve --dev`` (what ``make serve`` runs) over the sample images and a face photo."""
    root = tmp_path_factory.mktemp("images")
    for image in (REPO / "examples" / "images").iterdir():
        if image.is_file():
            shutil.copy(image, root / image.name)
    face = FIXTURES / "faces" / FACE
    if face.exists():  # without the shared fixtures the test uses the first sample image instead
        shutil.copy(face, root / FACE)
    log = (tmp_path_factory.mktemp("log") / "serve.log").open("w")
    with serving("--dev", env={"IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(root)}, output=log) as (base, _):
        yield base
    log.close()


class Page:
    """A page plus everything its console and network said."""

    def __init__(self, browser: Any, base: str, shots: Path, **context: Any) -> None:
        self.context = browser.new_context(**context)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.base = base
        self.shots = shots

    def open(self, path: str = "/") -> None:
        self.page.goto(self.base + path)
        self.wait_result("/")

    def wait_result(self, fragment: str) -> None:
        """Until the shown result (and the snippet) are those of a URL containing ``fragment``.

        Keyed on the URL rather than "the next render": controls re-render after a short
        debounce, so a slow machine may show an intermediate state first.
        """
        self.page.wait_for_function(
            "(f) => { const r = document.getElementById('result');"
            " return r.dataset.ready && (r.dataset.url || '').includes(f) && r.complete && r.naturalWidth > 0"
            " && document.getElementById('snippet').value.includes(f); }",
            arg=fragment,
        )

    def natural_size(self) -> tuple[int, int]:
        w, h = self.page.eval_on_selector("#result", "r => [r.naturalWidth, r.naturalHeight]")
        return int(w), int(h)

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return tmp_path


def test_build_a_face_photo_url_with_smart_crop_and_webp(browser: Any, server: str, shots: Path) -> None:
    view = Page(browser, server, shots, viewport={"width": 1280, "height": 1000})
    try:
        view.open("/")
        page = view.page
        first = page.input_value("#source")
        # The default controls: fill 600×400, smart gravity; the URL is the one imgproxy_py.url builds.
        expected = URLBuilder(base=server).resize("fill", 600, 400, 0, 0).gravity("sm").url(first)
        assert page.input_value("#url-plain") == expected
        assert view.natural_size() == (600, 400)
        view.shot("1-default")

        face = f'#images button[data-url="local:///{FACE}"]'
        if page.locator(face).count():
            page.click(face)
            view.wait_result(FACE)
        source = page.input_value("#source")
        page.fill("#w", "300")
        page.fill("#h", "300")
        page.select_option("#f", "webp")
        view.wait_result("@webp")  # the format is changed last: only the final state has it
        url = page.input_value("#url-plain")
        assert url == URLBuilder(base=server).resize("fill", 300, 300, 0, 0).gravity("sm").url(source, "webp")
        assert view.natural_size() == (300, 300)
        assert page.text_content("#s-format") == "webp"
        assert page.text_content("#s-dim") == "300 × 300"
        assert int((page.text_content("#s-bytes") or "0").replace(",", "")) > 1000
        assert page.text_content("#s-cache") in ("MISS", "HIT-L1", "HIT-COALESCED")

        # The base64 form of the same URL, built in the page, decodes to the same source.
        page.check("input[name=encoding][value=base64]")
        view.wait_result(base64.urlsafe_b64encode(source.encode()).rstrip(b"=").decode() + ".webp")
        assert page.input_value("#url-base64") == URLBuilder(base=server).resize("fill", 300, 300, 0, 0).gravity(
            "sm"
        ).url(source, "webp", encode=True)
        assert view.natural_size() == (300, 300)

        # /info: colour swatches and a BlurHash drawn as a placeholder (not one flat colour).
        page.wait_for_function("() => document.querySelectorAll('#swatches .swatch').length >= 2")
        spread = page.eval_on_selector(
            "#blurhash",
            "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let lo = 255, hi = 0;"
            " for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i]); hi = Math.max(hi, d[i]); }"
            " return hi - lo; }",
        )
        assert spread > 10
        assert "not available" in (page.text_content("#info-faces") or "")

        # The before/after slider works from the keyboard.
        page.focus("#slider")
        for _ in range(5):
            page.keyboard.press("ArrowRight")
        assert int(page.input_value("#slider")) > 50
        assert "inset(0px 0px 0px 5" in page.eval_on_selector("#after", "a => a.style.clipPath")
        page.wait_for_function("() => document.getElementById('original').naturalWidth > 0")
        view.shot("2-face-webp")
        snippet = page.input_value("#snippet")

        # Two option sets side by side: pin this result as A, blur the current one, slide between them.
        page.click("#pin")
        pinned = page.get_attribute("#original", "src") or ""
        assert pinned.startswith("blob:") and page.input_value("#compare-with") == "pinned"
        page.fill("#bl", "4")
        view.wait_result("/bl:4/")
        assert "/bl:4/" in page.input_value("#url-plain")
        assert page.get_attribute("#original", "src") == pinned  # A stays under the new result
        assert "rs:fill:300:300:0:0/g:sm" in (page.text_content("#slider-label") or "")
        view.shot("2b-pinned-vs-blurred")
        page.select_option("#compare-with", "original")
        page.wait_for_function("() => !document.getElementById('original').src.startsWith('blob:')")
        assert view.errors == [], view.errors
    finally:
        view.close()

    # The srcset snippet pasted into a blank page loads there.
    assert snippet.count('<source type="image/') == 2 and snippet.count(" 320w") == 3
    blank = Page(browser, server, shots, viewport={"width": 800, "height": 600})
    try:
        blank.page.set_content(f"<!doctype html><body>{snippet}</body>")
        blank.page.wait_for_function(
            "() => { const i = document.querySelector('img'); return i.complete && i.naturalWidth > 0; }"
        )
        current = blank.page.eval_on_selector("img", "i => i.currentSrc")
        assert current.startswith(server) and current.endswith(".avif")  # the first type Chromium knows (base64 form)
        blank.shot("3-snippet-page")
        assert blank.errors == [], blank.errors
    finally:
        blank.close()


def test_keyboard_and_phone_width(browser: Any, server: str, shots: Path) -> None:
    view = Page(browser, server, shots, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        view.open("/playground")
        page = view.page
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390  # no sideways scrolling
        # Tab to the second thumbnail and pick it with the keyboard.
        page.focus("#images button:nth-child(2)")
        page.keyboard.press("Enter")
        second = page.get_attribute("#images button:nth-child(2)", "data-url") or ""
        view.wait_result(second.removeprefix("local:///"))
        assert page.get_attribute("#images button:nth-child(2)", "aria-pressed") == "true"
        assert page.input_value("#source") == second
        # Keyboard edits of a number field re-render the result.
        page.focus("#w")
        page.keyboard.press("Control+A")
        page.keyboard.type("200")
        page.focus("#h")
        page.keyboard.press("Control+A")
        page.keyboard.type("100")
        page.keyboard.press("Tab")
        view.wait_result("rs:fill:200:100:0:0")
        assert view.natural_size() == (200, 100)
        view.shot("4-phone")
        assert view.errors == [], view.errors
    finally:
        view.close()


def test_refused_options_show_the_development_error(browser: Any, server: str, shots: Path) -> None:
    view = Page(browser, server, shots, viewport={"width": 1280, "height": 900})
    try:
        view.open("/")
        page = view.page
        page.fill("#source", "local:///no-such-image.jpg")
        page.press("#source", "Enter")
        page.dispatch_event("#source", "change")
        page.wait_for_selector("#error:not([hidden])")
        text = page.text_content("#error") or ""
        assert text.startswith("404: Source image is not found")
        assert "IMGPROXY_LOCAL_FILESYSTEM_ROOT" in text  # development mode explains (make serve)
        assert page.get_attribute("#result", "src") is None and page.text_content("#s-dim") == "–"  # nothing stale
        page.wait_for_function("() => document.getElementById('info-facts').textContent.startsWith('/info: 404')")
        view.shot("5-error")
        # The only console errors are the refused loads themselves.
        assert view.errors and all("404" in e for e in view.errors), view.errors
    finally:
        view.close()


def test_faces_are_drawn_when_the_server_reports_them(browser: Any, server: str, shots: Path) -> None:
    """This server has no face detection yet; an /info answer with faces (as a detector would add
    them) is drawn as boxes over the source preview."""
    view = Page(browser, server, shots, viewport={"width": 1280, "height": 900})

    def add_faces(route: Any) -> None:
        response = route.fetch()
        info = response.json()
        info["faces"] = [{"x": 0.25, "y": 0.1, "width": 0.5, "height": 0.4}]
        route.fulfill(response=response, json=info)

    try:
        view.page.route("**/info/**", add_faces)
        view.open("/")
        view.page.wait_for_selector(".face-box")
        box = view.page.eval_on_selector(".face-box", "b => [b.style.left, b.style.top, b.style.width, b.style.height]")
        assert box == ["25%", "10%", "50%", "40%"]
        assert view.page.text_content("#info-faces") == "faces: 1"
        view.page.wait_for_function("() => document.getElementById('info-preview').naturalWidth > 0")
        view.page.locator("#info-title").scroll_into_view_if_needed()
        view.shot("6-faces")
        assert view.errors == [], view.errors
    finally:
        view.close()
