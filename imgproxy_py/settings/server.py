"""The HTTP server's group: bind, timeouts, caching headers, secrets, connection limits."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from imgproxy_py.errors import SettingsError
from imgproxy_py.settings.env import _Env, parse_bind


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    processes: int = 1
    ttl: int = 31536000
    use_etag: bool = True
    use_last_modified: bool = True
    timeout: float = 10.0
    path_prefix: str = ""
    health_check_path: str = ""
    graceful_stop_timeout: float = 20.0
    health_check_cache_tiers: bool = False  # /health fails while a remote cache tier is down
    max_clients: int = 2048  # open connections per process (server/connections.py); 0: no cap
    read_request_timeout: float = 5.0  # seconds to receive a request's head
    keep_alive_timeout: float = 10.0  # seconds an idle keep-alive connection is kept; 0: none
    secret: str = field(default="", repr=False)  # IMGPROXY_SECRET: required Bearer token
    admin_secret: str = field(default="", repr=False)  # IMGPROXY_ADMIN_SECRET: enables /_admin/* (Bearer)
    development_errors: bool = False  # IMGPROXY_DEVELOPMENT_ERRORS_MODE: error bodies say what was wrong
    playground: bool = False  # IMGPROXY_PLAYGROUND: the page at / (loopback-only when a key is set)
    stream_results: bool = True  # IMGPROXY_STREAM_RESULTS: large PNG results are sent as they are encoded

    @classmethod
    def from_env(cls, env: _Env) -> ServerSettings:
        host, port = parse_bind("IMGPROXY_BIND", env.get_str("IMGPROXY_BIND", "127.0.0.1:8080"))
        prefix = env.get_str("IMGPROXY_PATH_PREFIX", "").rstrip("/")
        if prefix and not prefix.startswith("/"):
            prefix = "/" + prefix
        health = env.get_str("IMGPROXY_HEALTH_CHECK_PATH", "")
        if health and not health.startswith("/"):
            raise SettingsError("IMGPROXY_HEALTH_CHECK_PATH: must start with /")
        return cls(
            host=host,
            port=port,
            processes=env.get_int("IMGPROXY_PROCESSES", 1, min_value=1, max_value=256),
            ttl=env.get_int("IMGPROXY_TTL", 31536000, min_value=0),
            use_etag=env.get_bool("IMGPROXY_USE_ETAG", True),
            use_last_modified=env.get_bool("IMGPROXY_USE_LAST_MODIFIED", True),
            timeout=env.get_float("IMGPROXY_TIMEOUT", 10.0, min_value=0.001),
            path_prefix=prefix,
            health_check_path=health,
            graceful_stop_timeout=env.get_float("IMGPROXY_GRACEFUL_STOP_TIMEOUT", 20.0, min_value=0),
            health_check_cache_tiers=env.get_bool("IMGPROXY_HEALTH_CHECK_CACHE_TIERS", False),
            max_clients=env.get_int("IMGPROXY_MAX_CLIENTS", 2048, min_value=0),
            read_request_timeout=env.get_float("IMGPROXY_READ_REQUEST_TIMEOUT", 5.0, min_value=0.1),
            keep_alive_timeout=env.get_float("IMGPROXY_KEEP_ALIVE_TIMEOUT", 10.0, min_value=0),
            secret=env.get_str("IMGPROXY_SECRET", ""),
            admin_secret=env.get_str("IMGPROXY_ADMIN_SECRET", ""),
            development_errors=env.get_bool("IMGPROXY_DEVELOPMENT_ERRORS_MODE", False),
            playground=env.get_bool("IMGPROXY_PLAYGROUND", False),
            stream_results=env.get_bool("IMGPROXY_STREAM_RESULTS", True),
        )


def is_loopback_host(host: str) -> bool:
    """Whether a bind address keeps the server on this machine (shared with the doctor's risk checks)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: may resolve anywhere
