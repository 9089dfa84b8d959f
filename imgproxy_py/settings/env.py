"""Typed reads of IMGPROXY_* variables and the shared value parsers; every error names the variable."""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from imgproxy_py.errors import SettingsError
from imgproxy_py.imagetype import SAVABLE, ImageFormat

_INT = re.compile(r"[+-]?[0-9]+")  # Go's strconv.Atoi; Python's int() would also take "1_000"
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_bool(value: str) -> bool | None:
    """Go's strconv.ParseBool, which imgproxy uses for env and URL booleans; None if invalid."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


class _Env:
    """Typed reads of IMGPROXY_* variables; every error names the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        # Every name asked for, set or not: the names this server knows (see config_warnings).
        self.read: set[str] = set()

    def raw(self, name: str) -> str | None:
        self.read.add(name)
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def get_str(self, name: str, default: str) -> str:
        value = self.raw(name)
        return default if value is None else value

    def get_bool(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        parsed = parse_bool(value)
        if parsed is None:
            raise SettingsError(f"{name}: expected a boolean (true/false/1/0), got {value!r}")
        return parsed

    def get_int(self, name: str, default: int, *, min_value: int | None = None, max_value: int | None = None) -> int:
        value = self.raw(name)
        if value is None:
            return default
        if not _INT.fullmatch(value):
            raise SettingsError(f"{name}: expected an integer, got {value!r}")
        parsed = int(value)
        _check_range(name, parsed, min_value, max_value)
        return parsed

    def get_float(
        self, name: str, default: float, *, min_value: float | None = None, max_value: float | None = None
    ) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            parsed = float(value)
        except ValueError:
            raise SettingsError(f"{name}: expected a number, got {value!r}") from None
        if parsed != parsed:  # NaN
            raise SettingsError(f"{name}: expected a number, got {value!r}")
        _check_range(name, parsed, min_value, max_value)
        return parsed

    def get_list(self, name: str, default: tuple[str, ...] = (), sep: str = ",") -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return default
        return tuple(item.strip() for item in value.split(sep) if item.strip())

    def hex_list(self, name: str) -> tuple[bytes, ...]:
        items = []
        for item in self.get_list(name):
            try:
                items.append(binascii.unhexlify(item))
            except (binascii.Error, ValueError):
                raise SettingsError(f"{name}: expected hex-encoded values, got an invalid one") from None
        return tuple(items)

    def formats(self, name: str, default: tuple[ImageFormat, ...]) -> tuple[ImageFormat, ...]:
        names = self.get_list(name)
        if not names:
            return default
        result = []
        for item in names:
            fmt = ImageFormat.from_name(item)
            if fmt is None:
                raise SettingsError(f"{name}: unknown image format {item!r}")
            if fmt not in SAVABLE:
                raise SettingsError(f"{name}: {fmt.value} cannot be saved by this server")
            result.append(fmt)
        return tuple(result)

    def format_quality(self, name: str, default: Mapping[ImageFormat, int]) -> dict[ImageFormat, int]:
        result = dict(default)
        for item in self.get_list(name):
            fmt_name, sep, q = item.partition("=")
            fmt = ImageFormat.from_name(fmt_name.strip())
            if not sep or fmt is None:
                raise SettingsError(f"{name}: expected format=quality pairs, got {item!r}")
            try:
                quality = int(q)
            except ValueError:
                raise SettingsError(f"{name}: quality for {fmt_name} must be an integer") from None
            _check_range(name, quality, 1, 100)
            result[fmt] = quality
        return result


def _check_range(name: str, value: float, lo: float | None, hi: float | None) -> None:
    if lo is not None and value < lo:
        raise SettingsError(f"{name}: must be at least {lo}, got {value}")
    if hi is not None and value > hi:
        raise SettingsError(f"{name}: must be at most {hi}, got {value}")


def parse_bind(name: str, value: str) -> tuple[str, int]:
    """``host:port``, ``:port`` (all interfaces, as imgproxy) or ``[v6]:port``."""
    host, sep, port_text = value.rpartition(":")
    if not sep:
        raise SettingsError(f"{name}: expected host:port, got {value!r}")
    host = host.strip("[]") or "0.0.0.0"
    try:
        port = int(port_text)
    except ValueError:
        raise SettingsError(f"{name}: invalid port in {value!r}") from None
    if not 0 <= port <= 65535:
        raise SettingsError(f"{name}: invalid port in {value!r}")
    return host, port


def parse_s3_endpoint(name: str, value: str) -> str:
    """``scheme://host[:port]``; empty means AWS. A bare ``host:port`` is the classic imgproxy pitfall, so say so."""
    if not value:
        return "https://s3.amazonaws.com"
    # Echo the value only when it cannot hold credentials.
    shown = "" if "@" in value else f" (got {value!r})"
    if "://" not in value:
        raise SettingsError(f"{name}: needs a scheme, e.g. http://{value.split('/', 1)[0]}{shown}")
    try:
        url = urlsplit(value)
        port = url.port
    except ValueError:
        raise SettingsError(f"{name}: not a valid URL{shown}") from None
    if url.scheme.lower() not in ("http", "https"):
        raise SettingsError(f"{name}: the scheme must be http or https{shown}")
    if url.username is not None or url.password is not None:
        raise SettingsError(f"{name}: credentials belong in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, not the URL")
    if not url.hostname or port == 0:
        raise SettingsError(f"{name}: the host or port is missing{shown}")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise SettingsError(f"{name}: only scheme://host[:port] is allowed, no path or query{shown}")
    return f"{url.scheme.lower()}://{url.netloc}"
