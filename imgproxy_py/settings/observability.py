"""Prometheus and logging."""

from __future__ import annotations

import re
from dataclasses import dataclass

from imgproxy_py.errors import SettingsError
from imgproxy_py.settings.env import _Env, parse_bind


@dataclass(frozen=True, slots=True)
class ObservabilitySettings:
    prometheus_bind: tuple[str, int] | None = None
    prometheus_namespace: str = ""
    log_format: str = "pretty"  # pretty | json
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: _Env) -> ObservabilitySettings:
        bind = env.raw("IMGPROXY_PROMETHEUS_BIND")
        namespace = env.get_str("IMGPROXY_PROMETHEUS_NAMESPACE", "")
        if namespace and not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", namespace):
            raise SettingsError("IMGPROXY_PROMETHEUS_NAMESPACE: letters, digits and _ only")
        log_format = env.get_str("IMGPROXY_LOG_FORMAT", "pretty").lower()
        if log_format not in ("pretty", "structured", "json"):
            raise SettingsError("IMGPROXY_LOG_FORMAT: expected pretty, structured or json")
        log_level = env.get_str("IMGPROXY_LOG_LEVEL", "info").lower()
        if log_level not in ("debug", "info", "warn", "warning", "error"):
            raise SettingsError("IMGPROXY_LOG_LEVEL: expected debug, info, warn or error")
        return cls(
            prometheus_bind=parse_bind("IMGPROXY_PROMETHEUS_BIND", bind) if bind else None,
            prometheus_namespace=namespace,
            log_format="json" if log_format == "json" else "pretty",
            log_level="warning" if log_level == "warn" else log_level,
        )
