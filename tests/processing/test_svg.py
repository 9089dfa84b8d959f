"""The SVG sanitiser (processing/svg.py) and SVG passthrough in process().

Every attack vector gets a snippet next to a benign green square: the dangerous part must
be gone from the output and the square must still be drawn.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from imgproxy_py.errors import ImgproxyError, SettingsError, UnsupportedFormatError
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.processing import Job, ProcessingConfig, Processor, vips
from imgproxy_py.processing.format_choice import ClientFormats
from imgproxy_py.processing.svg import MAX_DEPTH, MAX_SVG_BYTES, SvgError, sanitize_css, sanitize_svg
from imgproxy_py.settings import Settings
from tests.processing.process_helpers import fixture_bytes, full_diff, options, run
from tests.support import mean_abs_diff

XHTML = "http://www.w3.org/1999/xhtml"
PNG_B64 = base64.b64encode(fixture_bytes("with-alpha.png")).decode()
SVG_B64 = base64.b64encode(b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>').decode()
KEEP = '<rect id="keep" x="10" y="10" width="20" height="20" fill="#00ff00"/>'


def doc(body: str, attrs: str = "") -> bytes:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="40" height="40"{attrs}>{body}{KEEP}</svg>'
    ).encode()


def render(data: bytes, scale: float = 1.0) -> Any:
    return vips.open_source(data, scale=scale)


def centre_is_green(data: bytes) -> bool:
    r, g, b, a = render(data).getpoint(20, 20)
    return (r, g, b, a) == (0, 255, 0, 255)


ATTACKS = [
    # (body, svg root attributes, must be gone (case-insensitive), must stay)
    pytest.param("<script>alert(1)</script>", "", ["<script", "alert(1)"], [], id="script"),
    pytest.param(
        '<script xlink:href="https://evil.example/x.js"/>', "", ["<script", "evil.example"], [], id="script-src"
    ),
    pytest.param("<SCRIPT>alert(1)</SCRIPT>", "", ["script", "alert(1)"], [], id="script-uppercase"),
    pytest.param(
        '<svg:script xmlns:svg="http://www.w3.org/2000/svg">alert(1)</svg:script>',
        "",
        ["script", "alert"],
        [],
        id="svg-ns",
    ),
    pytest.param(f'<h:script xmlns:h="{XHTML}">alert(1)</h:script>', "", ["script", "alert"], [], id="xhtml-script"),
    pytest.param("<![CDATA[x]]><script><![CDATA[alert(1)]]></script>", "", ["script", "alert"], [], id="script-cdata"),
    pytest.param(
        f'<foreignObject width="40" height="40"><body xmlns="{XHTML}"><iframe src="javascript:alert(1)"/>'
        '<img src="x" onerror="alert(1)"/></body></foreignObject>',
        "",
        ["foreignobject", "iframe", "javascript", "onerror", "alert"],
        [],
        id="foreignObject-iframe",
    ),
    pytest.param(
        '<iframe src="https://evil.example/"/><object data="https://evil.example/x.swf"/>'
        '<embed src="https://evil.example/x"/><form action="https://evil.example/"><input/></form>',
        "",
        ["iframe", "<object", "<embed", "<form", "evil.example"],
        [],
        id="iframe-object-embed-form",
    ),
    pytest.param(
        f'<h:meta xmlns:h="{XHTML}" http-equiv="refresh" content="0;url=https://evil.example/"/>'
        f'<h:link xmlns:h="{XHTML}" rel="stylesheet" href="https://evil.example/x.css"/>',
        "",
        ["meta", "refresh", "evil.example"],
        [],
        id="xhtml-meta-link",
    ),
    pytest.param(
        '<handler xmlns:ev="http://www.w3.org/2001/xml-events" ev:event="load">alert(1)</handler>',
        "",
        ["handler", "alert"],
        [],
        id="xml-events-handler",
    ),
    pytest.param(
        '<g onclick="alert(1)" ONMOUSEOVER="alert(2)" xlink:onfocus="alert(3)"><circle r="1" onload="alert(4)"/></g>',
        ' onload="alert(0)"',
        ["onclick", "onmouseover", "onfocus", "onload", "alert"],
        ["<g>", "<circle"],
        id="event-attributes",
    ),
    pytest.param(
        '<defs><rect id="s" width="1" height="1"/></defs><use href="#s"/>'
        '<use href="https://evil.example/sprite.svg#s"/><use xlink:href="other.svg#s"/>'
        f'<use href="data:image/svg+xml;base64,{SVG_B64}"/><use xlink:href="data:image/png;base64,{PNG_B64}"/>',
        "",
        ["evil.example", "other.svg", "data:"],
        ['<use href="#s">'],
        id="use-href",
    ),
    pytest.param(
        '<image href="https://tracker.example/pixel.png" width="1" height="1"/>'
        '<image xlink:href="//tracker.example/p.png" width="1" height="1"/>'
        '<image xlink:href="relative.png" width="1" height="1"/>'
        '<feImage href="http://tracker.example/f.png"/>',
        "",
        ["tracker.example", "relative.png"],
        ["<image", "<feImage"],
        id="external-images",
    ),
    pytest.param(
        f'<image href="data:image/svg+xml;base64,{SVG_B64}" width="1" height="1"/>'
        f'<image href="data:image/png;base64,{SVG_B64}" width="1" height="1"/>'
        '<image href="data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;" width="1" height="1"/>',
        "",
        ["data:"],
        ["<image"],
        id="svg-or-html-data-uris",
    ),
    pytest.param(
        '<a href="javascript:alert(1)"><text>x</text></a><a xlink:href=" jav&#x09;ascript:alert(2)"/>'
        '<a href="vbscript:msgbox(1)"/><a href="https://evil.example/"/><a href="#keep"/>',
        "",
        ["javascript", "vbscript", "evil.example", "alert", "msgbox"],
        ['<a href="#keep">'],
        id="link-hrefs",
    ),
    pytest.param(
        '<animate attributeName="href" values="javascript:alert(1)"/>'
        '<set attributeName="xlink:href" to="javascript:alert(2)"/>'
        '<set attributeName="onmouseover" to="alert(3)"/>'
        '<animate attributeName="opacity" from="1" to="0.5" dur="1s"/>',
        "",
        ['attributeName="href"', "xlink:href", "onmouseover", "javascript", "alert"],
        ['attributeName="opacity"'],
        id="animations-of-href-and-events",
    ),
    pytest.param(
        '<set attributeName="fill" to="url(https://evil.example/p.svg#x)"/>'
        '<rect fill="url(http://evil.example/p.svg#x)" filter="url(javascript:alert(1))" width="1" height="1"/>'
        '<rect fill="url(#grad)" width="1" height="1"/>',
        "",
        ["evil.example", "javascript", "alert"],
        ['fill="url(#grad)"', 'to="none"'],
        id="presentation-attribute-urls",
    ),
    pytest.param(
        "<style>@import url(https://evil.example/a.css); @import 'https://evil.example/b.css';"
        ".a{fill:url(#grad)} .b{background:url( 'https://evil.example/bg.png' )}"
        "@font-face{font-family:x;src:url(https://evil.example/f.woff)}</style>",
        "",
        ["@import", "evil.example"],
        [".a{fill:url(#grad)}", ".b{background:none}"],
        id="style-element",
    ),
    pytest.param(
        "<style>@\\69mport 'https://evil.example/a.css'; .c{fill:u\\72l(https://evil.example/x)}"
        " .d{fill:/* hidden */url(https://evil.example/y)} .e{background:image-set('https://evil.example/i.png' 1x)}"
        " .f{width:expression(alert(1))}</style>",
        "",
        ["import", "evil.example", "expression", "alert"],
        [".c{fill:none}", ".e{background:none}"],
        id="style-obfuscation",
    ),
    pytest.param(
        '<rect style="fill:url(https://evil.example/x.svg#p);stroke:url(#g);behavior:url(x.htc)" width="1"/>',
        "",
        ["evil.example", "x.htc"],
        ["stroke:url(#g)"],
        id="style-attribute",
    ),
    pytest.param("", ' xml:base="https://evil.example/"', ["xml:base", "evil.example"], [], id="xml-base"),
]


@pytest.mark.parametrize(("body", "attrs", "gone", "kept"), ATTACKS)
def test_attack_is_removed_and_the_drawing_stays(body: str, attrs: str, gone: list[str], kept: list[str]) -> None:
    source = doc(body, attrs)
    out = sanitize_svg(source)
    text = out.decode()
    for needle in gone:
        assert needle.lower() not in text.lower(), f"{needle!r} survived: {text}"
    for needle in kept:
        assert needle in text, f"{needle!r} was lost: {text}"
    assert 'id="keep"' in text
    assert centre_is_green(out)
    assert sanitize_svg(out) == out  # idempotent: nothing left to remove


def test_processing_instructions_and_doctype_are_dropped() -> None:
    source = (
        b'<?xml version="1.0"?>\n<?xml-stylesheet type="text/xsl" href="https://evil.example/x.xsl"?>\n'
        b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
        + doc("")
    )
    out = sanitize_svg(source)
    assert b"xml-stylesheet" not in out
    assert b"DOCTYPE" not in out
    assert out.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<svg')
    assert centre_is_green(out)


def test_raster_data_images_are_kept_and_drawn() -> None:
    source = doc(f'<image href="data:image/png;base64,{PNG_B64[:40]}\n  {PNG_B64[40:]}" width="40" height="40"/>')
    out = sanitize_svg(source)
    assert b"data:image/png;base64," in out
    # with-alpha.png is translucent purple (fitted to 40×30, centred), left of the green square.
    assert render(out).getpoint(2, 20) == render(source).getpoint(2, 20) == [91, 0, 194, 168]


@pytest.mark.parametrize("name", ["check.svg", "struct-image-04-t.svg"])
@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_fixtures_render_the_same_after_sanitising(name: str, scale: float) -> None:
    source = fixture_bytes(name)
    out = sanitize_svg(source)
    before, after = render(source, scale), render(out, scale)
    assert (before.width, before.height) == (after.width, after.height)
    assert full_diff(before, after) < 0.01
    assert mean_abs_diff(before, after) < 0.01


def test_struct_image_keeps_its_embedded_jpeg_and_png() -> None:
    out = sanitize_svg(fixture_bytes("struct-image-04-t.svg"))
    assert out.count(b'xlink:href="data:image/jpeg;base64,') == 1
    assert out.count(b'xlink:href="data:image/png;base64,') == 1
    assert b"../images/SVGFreeSans.svg" not in out  # a relative reference: never resolvable, dropped


def test_a_rich_benign_drawing_is_unchanged_in_rendering() -> None:
    body = (
        '<defs><linearGradient id="grad"><stop offset="0" stop-color="red"/><stop offset="1" stop-color="blue"/>'
        '</linearGradient><path id="p" d="M0,0 L40,40"/><filter id="f"><feGaussianBlur stdDeviation="1"/></filter>'
        "</defs><style>.a{fill:url(#grad)} .b{stroke:#000;stroke-width:2}</style>"
        '<rect class="a" width="40" height="10"/><use href="#p" class="b"/><g filter="url(#f)">'
        '<circle cx="30" cy="30" r="5" fill="orange"/></g><text x="2" y="38" font-size="6">a &amp; b &lt; c</text>'
        '<!-- a comment --><animate attributeName="opacity" from="1" to="1" dur="1s"/>'
    )
    source = doc(body)
    out = sanitize_svg(source)
    assert b"a &amp; b &lt; c" in out
    assert b"<!-- a comment -->" in out
    assert full_diff(render(source, 3), render(out, 3)) < 0.01


def test_other_encodings_come_out_as_utf8() -> None:
    text = '<?xml version="1.0" encoding="UTF-16"?>' + doc("<title>Grüße ☃</title>").decode()
    out = sanitize_svg(text.encode("utf-16"))
    assert out.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert "Grüße ☃".encode() in out
    latin = ('<?xml version="1.0" encoding="ISO-8859-1"?>' + doc("<title>Grüße</title>").decode()).encode("latin-1")
    assert "Grüße".encode() in sanitize_svg(latin)


# --- refused documents: a clear 422, fast -------------------------------------------------


XXE = (
    b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b'<svg xmlns="http://www.w3.org/2000/svg"><text>&xxe;</text></svg>'
)
REFUSED = [
    pytest.param(XXE, "internal DTD subset", id="xxe"),
    pytest.param(
        b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY % remote SYSTEM "http://evil.example/x.dtd"> %remote;]>'
        b'<svg xmlns="http://www.w3.org/2000/svg"/>',
        "internal DTD subset",
        id="parameter-entity",
    ),
    pytest.param(
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i else "&lol;" * 10}">'.encode() for i in range(9)
        )
        + b']><svg xmlns="http://www.w3.org/2000/svg"><text>&lol8;</text></svg>',
        "internal DTD subset",
        id="billion-laughs",
    ),
    pytest.param(
        b'<svg xmlns="http://www.w3.org/2000/svg"><text>&nbsp;</text></svg>', "not well-formed", id="undefined-entity"
    ),
    pytest.param(b'<svg xmlns="http://www.w3.org/2000/svg"><g></svg>', "not well-formed", id="malformed"),
    pytest.param(b"", "not well-formed", id="empty"),
    pytest.param(f'<html xmlns="{XHTML}"><svg/></html>'.encode(), "root element", id="html-root"),
    pytest.param(f'<svg xmlns="{XHTML}"/>'.encode(), "root element", id="xhtml-svg-root"),
]


@pytest.mark.parametrize(("data", "message"), REFUSED)
def test_hostile_or_broken_documents_are_refused(data: bytes, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(SvgError) as info:
        sanitize_svg(data)
    assert time.monotonic() - started < 2  # entity expansion or unbounded parsing would not be
    assert info.value.status_code == 422
    assert message in info.value.public_message


def test_deep_nesting_is_refused_quickly() -> None:
    depth = 200_000
    data = b'<svg xmlns="http://www.w3.org/2000/svg">' + b"<g>" * depth + b"</g>" * depth + b"</svg>"
    started = time.monotonic()
    with pytest.raises(SvgError) as info:
        sanitize_svg(data)
    assert time.monotonic() - started < 2  # a margin, not a benchmark
    assert info.value.status_code == 422
    assert f"deeper than {MAX_DEPTH}" in info.value.public_message


def test_nesting_up_to_the_limit_is_fine() -> None:
    inner = MAX_DEPTH - 1
    data = b'<svg xmlns="http://www.w3.org/2000/svg">' + b"<g>" * inner + b"</g>" * inner + b"</svg>"
    assert sanitize_svg(data).count(b"<g>") == inner


def test_oversized_svg_is_refused_before_parsing() -> None:
    data = doc("<!--" + "x" * MAX_SVG_BYTES + "-->")
    started = time.monotonic()
    with pytest.raises(SvgError) as info:
        sanitize_svg(data)
    assert time.monotonic() - started < 1  # a margin, not a benchmark: the size is checked first
    assert "too large" in info.value.public_message


@pytest.mark.parametrize(
    ("css", "expected"),
    [
        ("a{fill:url(#g)}", "a{fill:url(#g)}"),
        ("a{fill:url( '#g' )}", "a{fill:url( '#g' )}"),
        ("a{fill:URL(http://x)}", "a{fill:none}"),
        ("a{fill:url(http://x}", "a{fill:none"),
        ("@import 'x.css'", ""),
        ("@IMPORT url(x.css);b{c:d}", "b{c:d}"),
        ("a{content:'url(';fill:red}", "a{content:'none"),  # the unterminated function swallows the rest: safe
        ("a{fill:myurl(x)}", "a{fill:myurl(x)}"),
        ("a{fill:\\75 rl(http://x)}", "a{fill:none}"),
    ],
)
def test_css_sanitiser(css: str, expected: str) -> None:
    assert sanitize_css(css) == expected


# --- passthrough in process() -------------------------------------------------------------


def test_svg_without_format_passes_through_sanitised() -> None:
    source = doc('<script>alert(1)</script><image href="https://tracker.example/p.png"/>')
    result = Processor(ProcessingConfig()).process(Job(source, options("")))
    assert result.format is ImageFormat.SVG
    assert result.source_format is ImageFormat.SVG
    assert (result.width, result.height) == (40, 40)
    assert b"script" not in result.data and b"tracker" not in result.data
    assert centre_is_green(result.data)


def test_resize_options_do_not_rasterise_an_svg() -> None:
    """imgproxy: without a format the SVG itself is returned; size options do not apply to it."""
    result = run(fixture_bytes("check.svg"), "rs:fit:300:300")
    assert result.format is ImageFormat.SVG
    assert result.data == sanitize_svg(fixture_bytes("check.svg"))


def test_explicit_svg_format_passes_through_even_when_always_rasterizing() -> None:
    result = Processor(ProcessingConfig(always_rasterize_svg=True)).process(
        Job(fixture_bytes("check.svg"), options("f:svg"))
    )
    assert result.format is ImageFormat.SVG


def test_always_rasterize_svg() -> None:
    result = Processor(ProcessingConfig(always_rasterize_svg=True)).process(
        Job(fixture_bytes("check.svg"), options("rs:fit:50:50"))
    )
    assert result.format is ImageFormat.PNG
    assert (result.width, result.height) == (50, 50)


@pytest.mark.parametrize(
    "client",
    [ClientFormats(webp=True, avif=True), ClientFormats(webp=True, enforce_webp=True)],
    ids=["auto", "enforce"],
)
def test_client_formats_do_not_force_rasterising(client: ClientFormats) -> None:
    """imgproxy decides SVG passthrough on the requested format alone, before negotiation."""
    result = Processor(ProcessingConfig()).process(Job(fixture_bytes("check.svg"), options(""), client))
    assert result.format is ImageFormat.SVG


def test_sanitising_can_be_switched_off() -> None:
    source = doc("<script>alert(1)</script>")
    result = Processor(ProcessingConfig(sanitize_svg=False)).process(Job(source, options("")))
    assert result.format is ImageFormat.SVG
    assert result.data == source


def test_hostile_svg_is_422_in_process() -> None:
    with pytest.raises(ImgproxyError) as info:
        Processor(ProcessingConfig()).process(Job(XXE, options("")))
    assert info.value.status_code == 422


def test_svg_format_for_a_raster_source_is_still_refused() -> None:
    with pytest.raises(UnsupportedFormatError):
        run(fixture_bytes("Landscape_1.jpg"), "f:svg")


def test_settings() -> None:
    defaults = Settings.from_env({})
    assert (defaults.processing.sanitize_svg, defaults.processing.always_rasterize_svg) == (True, False)
    env = {"IMGPROXY_SANITIZE_SVG": "false", "IMGPROXY_ALWAYS_RASTERIZE_SVG": "1"}
    config = ProcessingConfig.from_settings(Settings.from_env(env))
    assert (config.sanitize_svg, config.always_rasterize_svg) == (False, True)
    with pytest.raises(SettingsError, match="IMGPROXY_SANITIZE_SVG"):
        Settings.from_env({"IMGPROXY_SANITIZE_SVG": "maybe"})
