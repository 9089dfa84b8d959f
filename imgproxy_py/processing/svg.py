"""SVG sanitising for passthrough: an SVG returned as SVG must not run or fetch anything.

A passed-through SVG is a document a browser may open directly, so everything that can
execute script or load something from elsewhere is removed, and the drawing is kept:

- elements removed with their whole subtree: ``script``, ``foreignObject``, ``iframe``,
  ``frame(set)``, ``object``, ``embed``, ``applet``, ``form``, XML Events ``handler`` /
  ``listener``, anything in the XHTML or MathML namespace (never drawn outside a
  ``foreignObject``), and ``animate``/``set``/… whose ``attributeName`` is an href or an
  event handler;
- attributes removed: every ``on*``, ``xml:base``, any value holding a ``javascript:`` or
  ``vbscript:`` URL, and ``href``/``xlink:href``/``src`` unless it is a ``#fragment``
  (only that on ``<use>``) or a ``data:image/…`` URI of a raster image (checked by its magic
  bytes: an SVG data URI could nest script). No http(s) or relative reference survives:
  stricter than imgproxy, because a fetch from the viewer's browser leaks and tracks;
- CSS in ``<style>`` and in attributes: ``@import`` rules and ``url(…)`` (and the other
  fetching functions) pointing anywhere but ``#fragment`` become ``none``;
- comments stay; processing instructions (``<?xml-stylesheet?>`` can load XSLT) and the
  DOCTYPE go.

Parsing is stdlib expat, configured as defusedxml configures it and stricter: entity
declarations, external entities and internal DTD subsets are refused (no billion laughs,
no XXE), nothing external is ever read, and the size and nesting depth are bounded so a
hostile document fails fast with a 422. The document is re-serialised from the parse
events, so what is kept is exactly what was checked.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote_to_bytes
from xml.parsers import expat

from imgproxy_py.errors import ImageError
from imgproxy_py.imagetype import ImageFormat, sniff

MAX_SVG_BYTES = 10 * 1024 * 1024  # librsvg's own default limit for XML input
MAX_DEPTH = 256  # real drawings nest a few dozen levels; a deep one is an attack on recursion

XML_NS = "http://www.w3.org/XML/1998/namespace"
XHTML_NS = "http://www.w3.org/1999/xhtml"
MATHML_NS = "http://www.w3.org/1998/Math/MathML"

# Compared lower-cased and namespace-blind: ``<svg:script>``, ``<html:script>`` and
# ``<SCRIPT>`` are all dropped, whatever a given viewer would make of them.
_REMOVED_ELEMENTS = frozenset(
    {
        "script",
        "foreignobject",
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "form",
        "handler",
        "listener",
        "base",
        "meta",
        "link",
    }
)
_REMOVED_NAMESPACES = frozenset({XHTML_NS, MATHML_NS})
_ANIMATIONS = frozenset({"animate", "set", "animatecolor", "animatemotion", "animatetransform"})
_URL_ATTRIBUTES = frozenset({"href", "src"})
_RASTER_DATA_TYPES = frozenset(
    {"png", "apng", "jpeg", "jpg", "pjpeg", "gif", "webp", "avif", "bmp", "x-icon", "vnd.microsoft.icon"}
)
_RASTER_FORMATS = frozenset(f for f in ImageFormat if f is not ImageFormat.SVG)

_SCRIPT_SCHEME = re.compile(r"(?:java|vb|live)script:")
_DATA_IMAGE = re.compile(r"data:image/([a-z0-9.+-]+)((?:;[^,]*)?),", re.IGNORECASE)
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)", re.DOTALL)
_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})[ \t\r\n\f]?|([g-zG-Z]))")
_CSS_FETCHING = re.compile(
    r"(?<![\w-])(url|src|image|image-set|-webkit-image-set|-moz-image-set|cross-fade|-webkit-cross-fade"
    r"|element|-moz-element|expression)\s*\(|@import\b",
    re.IGNORECASE,
)
_CSS_TRIGGERS = ("(", "@", "\\")


class SvgError(ImageError):
    """The SVG cannot be passed through safely (malformed, hostile or too large): 422."""

    public_message = "Invalid or unsafe SVG"


def sanitize_svg(data: bytes) -> bytes:
    """Return a UTF-8 SVG with everything that could run script or fetch a resource removed."""
    if len(data) > MAX_SVG_BYTES:
        raise SvgError(
            f"SVG of {len(data)} bytes is over the {MAX_SVG_BYTES} byte limit",
            public_message=f"SVG is too large to sanitise (over {MAX_SVG_BYTES} bytes)",
        )
    walker = _Sanitizer()
    parser = expat.ParserCreate()  # no namespace processing: prefixes are kept as written
    parser.ordered_attributes = True
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = walker.start
    parser.EndElementHandler = walker.end
    parser.CharacterDataHandler = walker.text
    parser.CommentHandler = walker.comment
    parser.StartDoctypeDeclHandler = _doctype
    parser.EntityDeclHandler = _entity_declared
    parser.UnparsedEntityDeclHandler = _unparsed_entity_declared
    parser.ExternalEntityRefHandler = _external_entity
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise SvgError(f"SVG is not well-formed XML: {exc}", public_message="SVG is not well-formed XML") from None
    except (LookupError, UnicodeError, ValueError) as exc:  # e.g. encoding="QTF-8" in the declaration
        raise SvgError(f"SVG cannot be decoded: {exc}", public_message="SVG is not well-formed XML") from None
    if not walker.root_seen:
        raise SvgError("SVG has no root element", public_message="SVG is not well-formed XML")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + "".join(walker.out)).encode("utf-8")


def _doctype(name: str, system_id: str | None, public_id: str | None, has_internal_subset: int) -> None:
    # An external DTD is never read (param entity parsing is off); an internal subset could
    # declare entities (bombs, XXE) or default attributes (an ``onload`` on every element).
    if has_internal_subset:
        raise SvgError("SVG has an internal DTD subset", public_message="SVG with an internal DTD subset is refused")


def _entity_declared(*args: object) -> None:
    raise SvgError("SVG declares an XML entity", public_message="SVG with XML entity declarations is refused")


def _unparsed_entity_declared(*args: object) -> None:
    raise SvgError("SVG declares an unparsed entity", public_message="SVG with XML entity declarations is refused")


def _external_entity(*args: object) -> int:
    raise SvgError("SVG references an external entity", public_message="SVG with external entities is refused")


class _Sanitizer:
    """Expat callbacks that write the kept part of the document as it is parsed."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.depth = 0
        self.skipping = 0  # >0: inside a removed subtree, counting its open elements
        self.scopes: list[dict[str, str]] = [{"xml": XML_NS}]
        self.style_text: list[str] | None = None  # collecting a <style> element's CSS
        self.root_seen = False

    def start(self, name: str, attrs: list[str]) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise SvgError(
                f"SVG nesting is deeper than {MAX_DEPTH}", public_message=f"SVG nesting is deeper than {MAX_DEPTH}"
            )
        if self.skipping or self.style_text is not None:  # markup inside <style> is not CSS: drop it
            self.skipping += 1
            return
        pairs = list(zip(attrs[::2], attrs[1::2], strict=True))
        scope = self.scopes[-1]
        declared = {_declared_prefix(n): v for n, v in pairs if n == "xmlns" or n.startswith("xmlns:")}
        if declared:
            scope = {**scope, **declared}
        prefix, local = _split(name)
        lowered = local.lower()
        removed = (
            lowered in _REMOVED_ELEMENTS
            or scope.get(prefix) in _REMOVED_NAMESPACES
            or (lowered in _ANIMATIONS and _animates_unsafe_attribute(pairs))
        )
        if not self.root_seen:
            self.root_seen = True
            if local != "svg" or removed:
                raise SvgError(f"root element is <{name}>", public_message="The document's root element is not <svg>")
        if removed:
            self.skipping = 1
            return
        self.scopes.append(scope)
        kept = _sanitize_attributes(lowered, pairs)
        self.out.append("<" + name + "".join(f' {n}="{_escape_attr(v)}"' for n, v in kept) + ">")
        if lowered == "style":
            self.style_text = []

    def end(self, name: str) -> None:
        self.depth -= 1
        if self.skipping:
            self.skipping -= 1
            return
        if self.style_text is not None:
            self.out.append(_escape_text(sanitize_css("".join(self.style_text))))
            self.style_text = None
        self.scopes.pop()
        self.out.append(f"</{name}>")

    def text(self, data: str) -> None:
        if self.skipping or self.depth == 0:
            return
        if self.style_text is not None:
            self.style_text.append(data)
        else:
            self.out.append(_escape_text(data))

    def comment(self, data: str) -> None:
        if not self.skipping and self.depth > 0 and self.style_text is None:
            self.out.append(f"<!--{data}-->")


def _split(qname: str) -> tuple[str, str]:
    """``prefix:local`` → (prefix, local); no prefix → ("", name), the default namespace key."""
    prefix, sep, local = qname.partition(":")
    return (prefix, local) if sep else ("", qname)


def _declared_prefix(attr_name: str) -> str:
    return "" if attr_name == "xmlns" else attr_name[len("xmlns:") :]


def _animates_unsafe_attribute(pairs: list[tuple[str, str]]) -> bool:
    """An animation that sets an href (to a script URL) or an event handler is removed whole."""
    for name, value in pairs:
        if _split(name)[1].lower() == "attributename":
            target = _split(value.strip())[1].lower()
            return target in _URL_ATTRIBUTES or target.startswith("on")
    return False


def _sanitize_attributes(element: str, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    kept = []
    for name, value in pairs:
        prefix, local = _split(name)
        lowered = local.lower()
        if name == "xmlns" or prefix == "xmlns":
            kept.append((name, value))  # namespace declarations are names, never fetched
            continue
        if lowered.startswith("on") or name == "xml:base":
            continue
        if lowered in _URL_ATTRIBUTES:
            if _safe_href(element, value):
                kept.append((name, value))
            continue
        if _SCRIPT_SCHEME.search(_url_form(value).lower()):
            continue
        if any(trigger in value for trigger in _CSS_TRIGGERS):
            value = sanitize_css(value)
        kept.append((name, value))
    return kept


def _url_form(value: str) -> str:
    """The value as a browser reads a URL: ASCII whitespace and controls (tabs, newlines) gone."""
    return "".join(ch for ch in value if ch > " ")


def _safe_href(element: str, value: str) -> bool:
    url = _url_form(value)
    if url.startswith("#") and len(url) > 1:
        return True
    return element != "use" and _is_raster_data_uri(url)


def _is_raster_data_uri(url: str) -> bool:
    """``data:image/<raster>;…,`` whose payload really starts like a raster image."""
    match = _DATA_IMAGE.match(url)
    if match is None or match.group(1).lower() not in _RASTER_DATA_TYPES:
        return False
    payload = url[match.end() :]
    try:
        if ";base64" in match.group(2).lower():
            chunk = payload[:88]  # 66 bytes: enough for every magic number sniff() checks
            head = base64.b64decode(chunk[: len(chunk) - len(chunk) % 4], validate=False)
        else:
            head = unquote_to_bytes(payload[:200])
    except (binascii.Error, ValueError):
        return False
    return sniff(head) in _RASTER_FORMATS


def sanitize_css(css: str) -> str:
    """Neutralise everything in CSS that fetches: ``@import`` rules and non-fragment ``url()`` & co.

    Comments are dropped and escaped letters decoded first, so ``u\\72l(`` or
    ``@im/**/port`` cannot hide a fetch; only the fetching parts are rewritten.
    """
    if "/*" in css:
        css = _CSS_COMMENT.sub(" ", css)
    if "\\" in css:
        css = _CSS_ESCAPE.sub(_decode_letter_escape, css)
    out: list[str] = []
    pos = 0
    while True:
        match = _CSS_FETCHING.search(css, pos)
        if match is None:
            out.append(css[pos:])
            return "".join(out)
        out.append(css[pos : match.start()])
        function = match.group(1)
        if function is None:  # @import: drop the whole rule
            pos = _skip_to(css, match.end(), ";")
            continue
        end = _closing_paren(css, match.end())
        if function.lower() == "url" and _url_argument(css[match.end() : end - 1]).startswith("#"):
            out.append(css[match.start() : end])
        else:
            out.append("none")
        pos = end


def _decode_letter_escape(match: re.Match[str]) -> str:
    """Decode an escape only when it stands for an ASCII letter: that never changes tokenisation."""
    if match.group(2) is not None:
        return match.group(2)
    code = int(match.group(1), 16)
    if code < 128 and chr(code).isalpha():
        return chr(code)
    return match.group(0)


def _skip_string(css: str, pos: int) -> int:
    """``pos`` is at a quote; return the index after the closing quote (or the end)."""
    quote = css[pos]
    pos += 1
    while pos < len(css):
        ch = css[pos]
        if ch == "\\":
            pos += 2
            continue
        if ch == quote or ch == "\n":
            return pos + 1
        pos += 1
    return len(css)


def _skip_to(css: str, pos: int, stop: str) -> int:
    """Index after the next ``stop`` outside strings (or the end)."""
    while pos < len(css):
        ch = css[pos]
        if ch in "\"'":
            pos = _skip_string(css, pos)
            continue
        pos += 1
        if ch == stop:
            return pos
    return len(css)


def _closing_paren(css: str, pos: int) -> int:
    """Index after the ``)`` that closes the function whose ``(`` ends just before ``pos``."""
    depth = 1
    while pos < len(css):
        ch = css[pos]
        if ch in "\"'":
            pos = _skip_string(css, pos)
            continue
        if ch == "\\":
            pos += 2
            continue
        pos += 1
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return pos
    return len(css)


def _url_argument(argument: str) -> str:
    text = argument.strip()
    if text[:1] in ("'", '"'):
        text = text[1:]
        if text[-1:] in ("'", '"'):
            text = text[:-1]
    return text.strip()


def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_attr(value: str) -> str:
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\t", "&#9;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
    )


def passes_through(requested: ImageFormat | None, always_rasterize: bool) -> bool:
    """imgproxy's rule: an SVG source stays SVG when SVG is asked for, or nothing is and
    IMGPROXY_ALWAYS_RASTERIZE_SVG is off; client negotiation (AUTO/ENFORCE_*) does not count."""
    return requested is ImageFormat.SVG or (requested is None and not always_rasterize)
