"""Build (and sign) imgproxy URLs from Python: for apps that only need the URLs.

Importable without pyvips, starlette or any server dependency, so a Django/Flask app can
depend on ``imgproxy-py`` just for this. Two ways to say the same thing::

    from imgproxy_py.url import URLBuilder, build_url

    build_url("local:///a.jpg", resize=("fill", 300, 200), gravity="sm", extension="webp",
              key="943b…", salt="520f…")
    URLBuilder(key="943b…", salt="520f…").resize("fill", 300, 200).gravity("sm").url("local:///a.jpg", "webp")

Option names are imgproxy's (full names or aliases, ``-`` may be written ``_``), written as
their shortest alias; an unknown name raises ``ValueError`` here rather than a 404 from the
server. Arguments: ``None`` leaves one empty (trailing empty ones are dropped), booleans
become ``1``/``0``, sequences are joined with ``:``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import quote

from imgproxy_py.options.appliers import APPLIERS
from imgproxy_py.security import compute_signature

Arg = str | int | float | bool | None
Value = Arg | Sequence[Arg]

# Escaped in a plain source URL: "%" (our parser unescapes), "@" (starts the extension),
# "?" and "#" (would end the path), and anything not printable ASCII.
_PLAIN_SAFE = "/:!$&'()*+,;=~"
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")


def _short_names() -> dict[str, str]:
    by_applier: dict[object, list[str]] = {}
    for name, applier in APPLIERS.items():
        by_applier.setdefault(applier, []).append(name)
    return {name: min(names, key=len) for names in by_applier.values() for name in names}


_SHORT = _short_names()


def option_name(name: str) -> str:
    """The option's shortest alias, as imgproxy's own builders write it (``resize`` → ``rs``)."""
    for candidate in (name, name.replace("_", "-")):
        if candidate in _SHORT:
            return _SHORT[candidate]
    raise ValueError(f"unknown imgproxy option {name!r}")


def _arg(value: Arg) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        text = repr(value)
        if text in ("nan", "inf", "-inf"):
            raise ValueError(f"not a finite number: {value}")
        return text.removesuffix(".0")
    text = str(value)
    if "/" in text:
        raise ValueError(f"an option argument cannot contain '/': {text!r}")
    return text


def format_option(name: str, value: Value, separator: str = ":") -> str:
    """``name:arg:arg`` with trailing empty arguments dropped."""
    args = [_arg(v) for v in value] if isinstance(value, Sequence) and not isinstance(value, str) else [_arg(value)]
    if any(separator in a for a in args):
        raise ValueError(f"{name}: an argument contains the separator {separator!r}")
    while args and args[-1] == "":
        args.pop()
    return separator.join([option_name(name), *args])


def _secret(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    if not _HEX.fullmatch(value):
        raise ValueError("key and salt are hex strings (as IMGPROXY_KEY/IMGPROXY_SALT) or bytes")
    return bytes.fromhex(value)


def source_part(source: str, *, encode: bool = False, extension: str | None = None) -> str:
    """``plain/<escaped url>@ext`` or ``<base64url, no padding>.ext``, as imgproxy's own builders write them."""
    ext = extension or ""
    if encode:
        encoded = base64.urlsafe_b64encode(source.encode("utf-8")).rstrip(b"=").decode("ascii")
        return encoded + (f".{ext}" if ext else "")
    return "plain/" + quote(source, safe=_PLAIN_SAFE) + (f"@{ext}" if ext else "")


@dataclass(frozen=True)
class URLBuilder:
    """An immutable fluent builder: every option method returns a new builder.

    ``key``/``salt`` are hex strings (or bytes); without them the signature is ``insecure``.
    ``base`` (``http://imgproxy.example``) is prepended to every URL.
    """

    key: str | bytes | None = field(default=None, repr=False)
    salt: str | bytes | None = field(default=None, repr=False)
    signature_size: int = 32
    base: str = ""
    separator: str = ":"
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.key is None) != (self.salt is None):
            raise ValueError("give both key and salt, or neither")
        if not 1 <= self.signature_size <= 32:
            raise ValueError("signature_size is 1..32 bytes")

    # --- generic --------------------------------------------------------------------------

    def option(self, name: str, *args: Arg) -> URLBuilder:
        """Any option by name or alias: ``.option("rs", "fit", 300, 300)``."""
        return replace(self, options=(*self.options, format_option(name, args, self.separator)))

    def with_options(self, options: Mapping[str, Value] | None = None, /, **kwargs: Value) -> URLBuilder:
        """Options as a mapping or keyword arguments, in the order given."""
        merged = {**(options or {}), **kwargs}
        added = tuple(format_option(name, value, self.separator) for name, value in merged.items())
        return replace(self, options=(*self.options, *added))

    # --- named options (imgproxy's full names) -------------------------------------------

    def resize(
        self, resizing_type: str | None = None, width: int | None = None, height: int | None = None, *more: Arg
    ) -> URLBuilder:
        return self.option("resize", resizing_type, width, height, *more)

    def size(self, width: int | None = None, height: int | None = None, *more: Arg) -> URLBuilder:
        return self.option("size", width, height, *more)

    def resizing_type(self, value: str) -> URLBuilder:
        return self.option("resizing_type", value)

    def width(self, value: int) -> URLBuilder:
        return self.option("width", value)

    def height(self, value: int) -> URLBuilder:
        return self.option("height", value)

    def dpr(self, value: float) -> URLBuilder:
        return self.option("dpr", value)

    def enlarge(self, value: bool = True) -> URLBuilder:
        return self.option("enlarge", value)

    def extend(self, value: bool = True, *gravity: Arg) -> URLBuilder:
        return self.option("extend", value, *gravity)

    def gravity(self, kind: str, *offsets: Arg) -> URLBuilder:
        return self.option("gravity", kind, *offsets)

    def crop(self, width: float, height: float, *gravity: Arg) -> URLBuilder:
        return self.option("crop", width, height, *gravity)

    def padding(self, *sides: int | None) -> URLBuilder:
        return self.option("padding", *sides)

    def rotate(self, angle: int) -> URLBuilder:
        return self.option("rotate", angle)

    def flip(self, horizontal: bool = True, vertical: bool = False) -> URLBuilder:
        return self.option("flip", horizontal, vertical)

    def background(self, *color: Arg) -> URLBuilder:
        return self.option("background", *color)

    def blur(self, sigma: float) -> URLBuilder:
        return self.option("blur", sigma)

    def sharpen(self, sigma: float) -> URLBuilder:
        return self.option("sharpen", sigma)

    def pixelate(self, size: int) -> URLBuilder:
        return self.option("pixelate", size)

    def watermark(self, opacity: float, *position: Arg) -> URLBuilder:
        return self.option("watermark", opacity, *position)

    def quality(self, value: int) -> URLBuilder:
        return self.option("quality", value)

    def format(self, value: str) -> URLBuilder:
        return self.option("format", value)

    def preset(self, *names: str) -> URLBuilder:
        return self.option("preset", *names)

    def cachebuster(self, value: str) -> URLBuilder:
        return self.option("cachebuster", value)

    def expires(self, timestamp: int) -> URLBuilder:
        return self.option("expires", timestamp)

    def filename(self, name: str, encoded: bool = False) -> URLBuilder:
        if encoded or "/" in name or self.separator in name:
            name = base64.urlsafe_b64encode(name.encode()).rstrip(b"=").decode()
            return self.option("filename", name, True)
        return self.option("filename", name)

    # --- output ---------------------------------------------------------------------------

    def path(self, source: str, extension: str | None = None, *, encode: bool = False) -> str:
        """``/<signature>/<options>/<source>``, without ``base``."""
        rest = "/" + "/".join([*self.options, source_part(source, encode=encode, extension=extension)])
        return "/" + self._sign(rest) + rest

    def url(self, source: str, extension: str | None = None, *, encode: bool = False) -> str:
        return self.base.rstrip("/") + self.path(source, extension, encode=encode)

    def info_url(self, source: str, *, encode: bool = False) -> str:
        """imgproxy's ``/info/<signature>/<options>/<source>`` (the signature covers ``/<options>/…``)."""
        return self.base.rstrip("/") + "/info" + self.path(source, encode=encode)

    def _sign(self, rest: str) -> str:
        if self.key is None or self.salt is None:
            return "insecure"
        return compute_signature(_secret(self.key), _secret(self.salt), rest, self.signature_size)


def build_url(
    source: str,
    options: Mapping[str, Value] | Iterable[tuple[str, Value]] | None = None,
    *,
    extension: str | None = None,
    encode: bool = False,
    key: str | bytes | None = None,
    salt: str | bytes | None = None,
    signature_size: int = 32,
    base: str = "",
    **kwargs: Value,
) -> str:
    """One URL from keyword options (``width=300``, ``rs=("fill", 300, 200)``, ``preset=["a", "b"]``)."""
    pairs = dict(options or {})
    builder = URLBuilder(key=key, salt=salt, signature_size=signature_size, base=base)
    return builder.with_options(pairs, **kwargs).url(source, extension, encode=encode)
