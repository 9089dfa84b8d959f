"""Settings: read once from imgproxy's environment variable names into frozen objects.

Every value is parsed and validated at start-up; a bad value raises SettingsError
naming the variable, so the server refuses to start instead of failing per request.

One module per concern, each a frozen dataclass (the group) with its defaults and a
``from_env(env)`` classmethod that reads its variables through ``_Env`` (env.py).
``Settings`` below is the one registry. To add a group:

1. write ``settings/<concern>.py`` with ``@dataclass(frozen=True, slots=True) class
   FooSettings`` and ``@classmethod def from_env(cls, env: _Env) -> FooSettings``;
2. add one field to ``Settings``: ``foo: FooSettings = field(default_factory=FooSettings)``
   (and re-export the class here if other packages import it).

``Settings.from_env`` calls every group's ``from_env`` in field order; the names ``_Env``
was asked for are the known ones, so unknown IMGPROXY_* names warn (names.py) without a
second list to keep in step.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from imgproxy_py.errors import SettingsError
from imgproxy_py.settings.analysis import AnalysisSettings
from imgproxy_py.settings.cache import CacheSettings
from imgproxy_py.settings.env import _Env, parse_bind, parse_bool, parse_s3_endpoint
from imgproxy_py.settings.experiments import ExperimentSettings
from imgproxy_py.settings.names import UNSUPPORTED, config_warnings
from imgproxy_py.settings.observability import ObservabilitySettings
from imgproxy_py.settings.options import OptionSettings
from imgproxy_py.settings.processing import ProcessingSettings
from imgproxy_py.settings.security import (
    DEFAULT_MAX_ANIMATION_FRAME_RESOLUTION,
    DEFAULT_MAX_ANIMATION_FRAMES,
    DEFAULT_MAX_RESULT_DIMENSION,
    DEFAULT_MAX_RESULT_RESOLUTION,
    DEFAULT_MAX_SRC_FILE_SIZE,
    DEFAULT_MAX_SRC_RESOLUTION,
    SecuritySettings,
)
from imgproxy_py.settings.server import ServerSettings, is_loopback_host
from imgproxy_py.settings.sources import S3Settings, SourceSettings
from imgproxy_py.settings.watermark import WatermarkSettings
from imgproxy_py.settings.workers import WorkerSettings

__all__ = [
    "DEFAULT_MAX_ANIMATION_FRAMES",
    "DEFAULT_MAX_ANIMATION_FRAME_RESOLUTION",
    "DEFAULT_MAX_RESULT_DIMENSION",
    "DEFAULT_MAX_RESULT_RESOLUTION",
    "DEFAULT_MAX_SRC_FILE_SIZE",
    "DEFAULT_MAX_SRC_RESOLUTION",
    "UNSUPPORTED",
    "AnalysisSettings",
    "CacheSettings",
    "ExperimentSettings",
    "ObservabilitySettings",
    "OptionSettings",
    "ProcessingSettings",
    "S3Settings",
    "SecuritySettings",
    "ServerSettings",
    "Settings",
    "SourceSettings",
    "WatermarkSettings",
    "WorkerSettings",
    "_Env",
    "config_warnings",
    "is_loopback_host",
    "parse_bind",
    "parse_bool",
    "parse_s3_endpoint",
]


class _Group(Protocol):
    @classmethod
    def from_env(cls, env: _Env) -> Any: ...


@dataclass(frozen=True, slots=True)
class Settings:
    # The registry: one line per group, read in this order (the first bad variable is reported).
    server: ServerSettings = field(default_factory=ServerSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    options: OptionSettings = field(default_factory=OptionSettings)
    sources: SourceSettings = field(default_factory=SourceSettings)
    s3: S3Settings = field(default_factory=S3Settings)
    processing: ProcessingSettings = field(default_factory=ProcessingSettings)
    workers: WorkerSettings = field(default_factory=WorkerSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
    watermark: WatermarkSettings = field(default_factory=WatermarkSettings)
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    experiments: ExperimentSettings = field(default_factory=ExperimentSettings)
    # Start-up warnings (unknown or unsupported IMGPROXY_* names, an open unsigned server);
    # `imgproxy-py serve` logs them. Not a setting: never part of equality or a cache key.
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        env = _Env(environ)
        settings = cls._read(env)
        strict = env.get_bool("IMGPROXY_STRICT_CONFIG", False)
        names = config_warnings(environ, frozenset(env.read))
        if strict and names:
            raise SettingsError("IMGPROXY_STRICT_CONFIG: " + "; ".join(names))
        return dataclasses.replace(settings, warnings=(*names, *_exposure_warnings(settings)))

    @classmethod
    def _read(cls, env: _Env) -> Settings:
        """Every group field's class (its default factory) reads its own variables."""
        groups: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "warnings":
                continue
            group: type[_Group] = f.default_factory  # type: ignore[assignment]
            groups[f.name] = group.from_env(env)
        return cls(**groups)


def _exposure_warnings(settings: Settings) -> list[str]:
    """An unsigned server reachable beyond this machine: anyone can make it transform anything."""
    if settings.security.signing_enabled or is_loopback_host(settings.server.host):
        return []
    return [
        f"listening on {settings.server.host}:{settings.server.port}, beyond loopback, WITHOUT URL SIGNING: "
        "anyone who can reach it can make it fetch and process any image; set IMGPROXY_KEY and IMGPROXY_SALT "
        "(openssl rand -hex 32) or bind to 127.0.0.1"
    ]
