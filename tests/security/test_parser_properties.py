"""Property tests: random paths, options and signatures never crash the parser or the app.

The pure functions (``split_signature``, ``verify_signature``, ``Parser.parse``) may only ever
raise ImgproxyError subclasses. Through the ASGI app (driven directly, so the raw path bytes
are exactly what was generated, invalid UTF-8 included) every answer is below 500 and its
body never shows a traceback or a filesystem path.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from imgproxy_py.errors import ImgproxyError
from imgproxy_py.options.appliers import APPLIERS
from imgproxy_py.options.parser import Parser, split_signature
from imgproxy_py.processing import vips
from imgproxy_py.security import compute_signature, verify_signature
from imgproxy_py.server.app import create_app
from imgproxy_py.settings import OptionSettings, SecuritySettings, Settings
from tests.support import REPO, env_for, http_scope

KEY = bytes.fromhex("943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881")
SALT = bytes.fromhex("520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5")

# --- strategies ----------------------------------------------------------------------------------

SPECIAL = [*"%:/@.,;=+-_~!$&'()*[]?# \\|<>\"`{}^", "%3A", "%2F", "%00", "%25", "%zz", "..", "//", "://"]
ODD = ["\x00", "\x01", "\x1f", "\x7f", "\t", "\n", "\r", "\u202e", "\ufeff", "é", "😀", "\u0663", "\udc80", "\udcff"]
chars = st.one_of(st.sampled_from(SPECIAL + ODD), st.characters(codec="utf-8"), st.sampled_from("abcxyz0189"))
text = st.lists(chars, max_size=16).map("".join)

NUMBERS = ["0", "1", "-1", "2", "100", "300", "0.5", "1.", ".5", "1e3", "1e308", "-0", "+1", " 1", "1_0", "0x10"]
NUMBERS += ["65535", "2147483647", "9223372036854775808", "nan", "inf", "-inf", "\u0663", "1e-300", ""]
WORDS = ["fit", "fill", "fill-down", "force", "auto", "ce", "sm", "fp", "no", "so", "ea", "we", "nowe", "obj"]
WORDS += ["t", "true", "false", "f", "jpg", "png", "webp", "avif", "gif", "svg", "ico", "heic", "bmp", "tiff"]
WORDS += ["jxl", "ffffff", "000", "default", "thumb", "face", "1:1", "x"]
number = st.one_of(st.sampled_from(NUMBERS), st.integers(-(10**20), 10**20).map(str), st.floats().map(repr))
arg = st.one_of(number, st.sampled_from(WORDS), text)
option_name = st.one_of(st.sampled_from(sorted(APPLIERS)), text)
separator = st.sampled_from([":", ":", ":", ",", "%3A"])
junk_option = st.builds(
    lambda name, args, sep: sep.join([name, *args]), option_name, st.lists(arg, max_size=6), separator
)
plausible_option = st.builds(
    lambda name, args: ":".join([name, *args]),
    st.sampled_from(sorted(APPLIERS)),
    st.lists(st.one_of(number, st.sampled_from(WORDS)), min_size=1, max_size=4),
)
option = st.one_of(plausible_option, plausible_option, plausible_option, junk_option)  # mostly well-formed

URLS = ["local:///a.jpg", "local:///a.png", "local:///a.svg", "local:///a.gif", "local:///missing.jpg"]
URLS += ["local:///../../etc/passwd", "local:///", "local://host/a.jpg", "local:///a.jpg?x", "local:///%2e%2e/x"]
URLS += ["s3://bucket/key", "http://127.0.0.1:1/x.jpg", "https:/example.com/a.jpg", "ftp://x/y", "file:///etc/passwd"]
URLS += ["data:image/png;base64,iVBORw0KGgo=", "javascript:alert(1)", "http://[::1", "http://%zz/", ""]
GOOD_URLS = ["local:///a.jpg", "local:///a.png", "local:///a.svg", "local:///a.gif"]
source_url = st.one_of(
    st.sampled_from(GOOD_URLS), st.sampled_from(URLS), st.builds("{}{}".format, st.sampled_from(URLS), text), text
)
extension = st.one_of(st.sampled_from(WORDS + [""]), text)


@st.composite
def source(draw: st.DrawFn) -> str:
    url = draw(source_url)
    kind = draw(st.sampled_from(["good", "plain", "base64", "junk"]))
    if kind == "good":
        return "plain/" + draw(st.sampled_from(GOOD_URLS)) + draw(st.sampled_from(["", "", "@png", "@jpg", "@webp"]))
    if kind == "plain":
        return "plain/" + url + draw(st.one_of(st.just(""), extension.map("@{}".format)))
    if kind == "base64":
        encoded = base64.urlsafe_b64encode(url.encode("utf-8", "surrogateescape")).decode()
        encoded = encoded if draw(st.booleans()) else encoded.rstrip("=")
        cuts = sorted(draw(st.lists(st.integers(0, len(encoded)), max_size=4)))
        pieces = [encoded[a:b] for a, b in zip([0, *cuts], [*cuts, len(encoded)], strict=True)]
        return "/".join(pieces) + draw(st.one_of(st.just(""), extension.map(".{}".format)))
    return draw(text)


signature = st.one_of(
    st.just("insecure"),
    st.sampled_from(["_", "rs:fit:1:1", "A" * 43, "a=", "a+b/", "%69nsecure"]),
    st.binary(max_size=40).map(lambda b: base64.urlsafe_b64encode(b).decode()),
    text,
)


@st.composite
def url_path(draw: st.DrawFn) -> str:
    """A path shaped like an imgproxy URL (most of the time), or anything at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(text)
    options = draw(st.lists(option, max_size=5))
    return "/" + "/".join([draw(signature), *options, draw(source())])


_int = st.one_of(st.integers(0, 300), st.sampled_from([0, 1, 2000, 65535, 100000])).map(str)
_small = st.integers(0, 40).map(str)
_float = st.one_of(st.floats(0.01, 8), st.sampled_from([0.5, 1.0, 2.0, 0.001, 1000.0])).map("{:g}".format)
_unit = st.floats(0, 1).map("{:g}".format)
_bool = st.sampled_from(["1", "0", "t", "f", "true", "false"])
_gravity = st.sampled_from(["ce", "no", "so", "ea", "we", "noea", "nowe", "soea", "sowe", "sm", "obj"])
_format = st.sampled_from(["jpg", "png", "webp", "avif", "gif", "ico", "tiff", "bmp", "heic", "svg", "jxl"])
_colour = st.one_of(st.sampled_from(["ffffff", "000000", "ff0000", "0f08", "ff000080"]), st.just("255:0:0"))
_text = st.text(st.characters(codec="ascii", categories=["L", "N"]), max_size=8)
# Argument grammars of the options (imgproxy's docs); any prefix of the list is tried.
GRAMMAR: dict[str, list[st.SearchStrategy[str]]] = {
    "rs": [st.sampled_from(["fit", "fill", "fill-down", "force", "auto"]), _int, _int, _bool, _bool],
    "s": [_int, _int, _bool, _bool],
    "rt": [st.sampled_from(["fit", "fill", "fill-down", "force", "auto"])],
    "w": [_int], "h": [_int], "mw": [_int], "mh": [_int],
    "z": [_float, _float], "dpr": [_float], "el": [_bool],
    "ex": [_bool, _gravity, _small, _small], "exar": [_bool, _gravity],
    "g": [_gravity, _small, _small], "c": [_int, _int, _gravity, _small, _small],
    "q": [st.integers(0, 100).map(str)], "fq": [_format, st.integers(0, 100).map(str), _format, _small],
    "f": [_format], "bg": [_colour], "bl": [_float], "sh": [_float], "pix": [_small],
    "pd": [_small, _small, _small, _small], "rot": [st.sampled_from(["0", "90", "180", "270", "-90", "45", "360"])],
    "fl": [_bool, _bool], "t": [_float, _colour, _bool, _bool], "ar": [_bool], "sm": [_bool], "scp": [_bool],
    "kcr": [_bool], "att": [_bool], "fn": [_text, _bool], "cb": [_text], "mb": [_int], "skp": [_format, _format],
    "pr": [st.sampled_from(["default", "thumb", "missing"])], "eth": [_bool], "raw": [_bool],
}  # fmt: skip
GRAMMAR["gfp"] = [st.just("fp"), _unit, _unit]


@st.composite
def sensible_option(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(sorted(GRAMMAR)))
    grammar = GRAMMAR[name]
    count = draw(st.integers(1, len(grammar)))
    args = [draw(g) for g in grammar[:count]]
    return ":".join(["g" if name == "gfp" else name, *args])


@st.composite
def well_formed_path(draw: st.DrawFn) -> str:
    """Known options with plausible arguments on a real image: many of these reach processing."""
    options = draw(st.lists(st.one_of(sensible_option(), sensible_option(), plausible_option), max_size=4))
    suffix = draw(st.sampled_from(["", "@png", "@jpg", "@webp", "@avif", "@gif", "@ico", "@svg", "@tiff"]))
    return "/" + "/".join(["insecure", *options, "plain", draw(st.sampled_from(GOOD_URLS))]) + suffix


# --- the pure functions ----------------------------------------------------------------------

SECURITY = {
    "unsigned": SecuritySettings(),
    "signed": SecuritySettings(keys=(KEY,), salts=(SALT,)),
    "signed-short": SecuritySettings(keys=(KEY, b"k"), salts=(SALT, b"s"), signature_size=8),
    "trusted": SecuritySettings(keys=(KEY,), salts=(SALT,), trusted_signatures=frozenset({"insecure"})),
}
PARSERS = {
    "default": Parser(OptionSettings()),
    "presets": Parser(
        OptionSettings(presets=("default=rs:fit:10:10/q:50", "small=s:5:5", "x=pr:small"), allow_security_options=True)
    ),
    "only-presets": Parser(OptionSettings(presets=("a=q:1", "b=rs:fit:1:1"), only_presets=True)),
    "restricted": Parser(OptionSettings(allowed_processing_options=frozenset({"rs", "q", "f"}))),
    "comma": Parser(OptionSettings(arguments_separator=",")),
    "rewrite": Parser(
        OptionSettings(base_url="local:///", url_replacements=(("local:///*", "local:///x/${1}"), ("*", "$0$0")))
    ),
}
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)


def only_imgproxy_errors(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except ImgproxyError:
        return None


@PROPERTY_SETTINGS
@given(
    path=url_path(),
    prefix=st.sampled_from(["", "/img", "/%", "/a/b"]),
    security=st.sampled_from(sorted(SECURITY)),
    parser=st.sampled_from(sorted(PARSERS)),
)
def test_split_verify_and_parse_raise_only_imgproxy_errors(path: str, prefix: str, security: str, parser: str) -> None:
    if prefix and path.startswith("/"):
        path = prefix + path
    split = only_imgproxy_errors(split_signature, path, prefix)
    only_imgproxy_errors(PARSERS[parser].parse, path)  # even unsplit, whatever it is
    if split is None:
        return
    sig, rest = split
    only_imgproxy_errors(verify_signature, SECURITY[security], sig, rest)
    parsed = only_imgproxy_errors(PARSERS[parser].parse, rest)
    event("parsed" if parsed is not None else "refused")
    if parsed is not None:
        assert isinstance(parsed.source_url, str)


@PROPERTY_SETTINGS
@given(path=url_path(), size=st.sampled_from([32, 8, 1]), parser=st.sampled_from(sorted(PARSERS)))
def test_a_correctly_signed_random_path_verifies_then_parses_or_fails_cleanly(
    path: str, size: int, parser: str
) -> None:
    split = only_imgproxy_errors(split_signature, path)
    if split is None:
        return
    _, rest = split
    security = SecuritySettings(keys=(KEY,), salts=(SALT,), signature_size=size)
    verify_signature(security, compute_signature(KEY, SALT, rest, size), rest)  # must never raise
    only_imgproxy_errors(PARSERS[parser].parse, rest)


@PROPERTY_SETTINGS
@given(sig=signature, rest=st.one_of(text, url_path()), security=st.sampled_from(sorted(SECURITY)))
def test_any_signature_is_accepted_or_forbidden(sig: str, rest: str, security: str) -> None:
    try:
        verify_signature(SECURITY[security], sig, rest)
    except ImgproxyError as exc:
        assert exc.status_code == 403


# --- through the ASGI app ------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytes = b""


class AsgiDriver:
    """Sends one raw request target straight into the app (lifespan included) on its own loop."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.runner = asyncio.Runner()
        self._lifespan: contextlib.AbstractAsyncContextManager[Any] = app.router.lifespan_context(app)

    def __enter__(self) -> AsgiDriver:
        self.runner.run(self._lifespan.__aenter__())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.runner.run(self._lifespan.__aexit__(None, None, None))
        finally:
            self.runner.close()

    def get(self, target: bytes, headers: list[tuple[bytes, bytes]]) -> Answer:
        return self.runner.run(self._get(target, headers))

    async def _get(self, target: bytes, headers: list[tuple[bytes, bytes]]) -> Answer:
        raw_path, _, query = target.partition(b"?")
        scope = http_scope(raw_path, headers, query)
        done = asyncio.Event()
        sent_body = False
        answer = Answer(status=0)

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()  # the client stays connected until the answer is complete
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer.status = message["status"]
                answer.headers = {k.lower(): v for k, v in message.get("headers", [])}
            elif message["type"] == "http.response.body":
                answer.body += message.get("body", b"")
                if not message.get("more_body", False):
                    done.set()

        try:
            await self.app(scope, receive, send)
        finally:
            done.set()
        return answer


@pytest.fixture(scope="module")
def local_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("property-root")
    img = vips.Image.xyz(12, 9)[0].cast("uchar")
    (root / "a.jpg").write_bytes(bytes(img.jpegsave_buffer()))
    (root / "a.png").write_bytes(bytes(img.bandjoin(255).pngsave_buffer()))
    (root / "a.gif").write_bytes(bytes(img.gifsave_buffer()))
    (root / "a.svg").write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="7"><circle r="3"/></svg>')
    return root


def driver_for(root: Path, **env: str) -> AsgiDriver:
    base = {
        "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(root),
        "IMGPROXY_WORKERS": "2",
        # A result is at most 64 px a side here: the random options may ask for gigapixels, a
        # known problem with its own test (test_hostile_inputs); this test is about the parser.
        "IMGPROXY_MAX_RESULT_DIMENSION": "64",
        "IMGPROXY_LOG_LEVEL": "error",
    }
    return AsgiDriver(create_app(Settings.from_env(env_for(**{**base, **env}))))


@pytest.fixture(scope="module")
def apps(local_root: Path) -> Iterator[dict[str, AsgiDriver]]:
    with (
        driver_for(local_root) as plain,
        driver_for(
            local_root,
            IMGPROXY_KEY=KEY.hex(),
            IMGPROXY_SALT=SALT.hex(),
            IMGPROXY_ENABLE_CLIENT_HINTS="true",
            IMGPROXY_AUTO_WEBP="true",
            IMGPROXY_PRESETS="default=q:70,thumb=rs:fill:20:20",
            IMGPROXY_PATH_PREFIX="/img",
        ) as signed,
    ):
        yield {"plain": plain, "signed": signed}


LEAKS = (b"Traceback", b'File "', str(REPO).encode(), b"site-packages", b".py", b"/tmp", b"/work", b"libvips")
header_value = st.one_of(st.sampled_from(["", "image/webp,*/*", "2", "1.5", "0", "-1", "nan", "1e9"]), text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=url_path(),
    app=st.sampled_from(["plain", "signed", "signed-correctly"]),
    accept=header_value,
    dpr=header_value,
    width=header_value,
)
def test_the_app_never_answers_5xx_or_leaks_internals(
    apps: dict[str, AsgiDriver], path: str, app: str, accept: str, dpr: str, width: str
) -> None:
    if app == "signed-correctly":
        split = only_imgproxy_errors(split_signature, path)
        if split is not None:
            path = "/" + compute_signature(KEY, SALT, split[1]) + split[1]
    if app.startswith("signed"):
        path = "/img" + path
        app = "signed"
    target = path.encode("utf-8", "surrogateescape")
    headers = [
        (name, value.encode("utf-8", "surrogateescape"))
        for name, value in ((b"accept", accept), (b"dpr", dpr), (b"width", width))
        if value
    ]
    check(apps[app].get(target, headers))


def check(answer: Answer) -> None:
    event(f"status {answer.status}")
    assert 200 <= answer.status < 500, (answer.status, answer.body[:200])
    if answer.status >= 400:
        for leak in LEAKS:
            assert leak not in answer.body, (leak, answer.body[:300])
        assert b"cache-control" not in answer.headers


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=well_formed_path())
def test_random_options_on_real_images_never_answer_5xx(apps: dict[str, AsgiDriver], path: str) -> None:
    check(apps["plain"].get(path.encode("utf-8", "surrogateescape"), []))
