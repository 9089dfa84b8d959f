"""The result cache tiers: memory, Redis or memcached, S3."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from imgproxy_py.errors import SettingsError
from imgproxy_py.settings.env import _Env, parse_s3_endpoint


@dataclass(frozen=True, slots=True)
class CacheSettings:
    memory_size: int = 256 * 1024 * 1024  # bytes; 0: no L1
    redis_url: str = field(default="", repr=False)  # may carry a password
    memcached_url: str = ""  # memcached://host:port: the L2 instead of Redis
    s3_bucket: str = ""
    s3_prefix: str = "results/"
    # Connection overrides for the results bucket; None: use the S3 source's (IMGPROXY_S3_*, AWS_*).
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_path_style: bool | None = None
    s3_access_key: str | None = field(default=None, repr=False)
    s3_secret_key: str | None = field(default=None, repr=False)
    ttl: int = 31536000
    stale_if_error: int = 0  # seconds an expired entry may still serve while the source is down
    timeout: float = 0.25  # per remote tier call
    retry_after: float = 5.0  # how long a failed remote tier is bypassed

    @property
    def enabled(self) -> bool:
        return bool(self.memory_size or self.redis_url or self.memcached_url or self.s3_bucket)

    @classmethod
    def from_env(cls, env: _Env) -> CacheSettings:
        redis_url = env.get_str("IMGPROXY_CACHE_REDIS_URL", "")
        schemes = ("redis://", "rediss://", "unix://", "redis+cluster://", "redis+sentinel://")
        if redis_url and not redis_url.startswith(schemes):
            raise SettingsError("IMGPROXY_CACHE_REDIS_URL: expected one of " + ", ".join(schemes) + " URLs")
        if redis_url.startswith(("redis+cluster://", "redis+sentinel://")):
            hosts = redis_url.partition("://")[2].rpartition("@")[2].partition("/")[0]
            if not all(re.fullmatch(r"\[?[^\s/@\]]+\]?:[0-9]{1,5}", h.strip()) for h in hosts.split(",")):
                raise SettingsError("IMGPROXY_CACHE_REDIS_URL: expected host:port[,host:port…] after the scheme")
            if redis_url.startswith("redis+sentinel://") and not redis_url.partition("://")[2].partition("/")[2].strip(
                "/"
            ):
                raise SettingsError(
                    "IMGPROXY_CACHE_REDIS_URL: redis+sentinel:// needs the master's name: …/service[/db]"
                )
        memcached_url = env.get_str("IMGPROXY_CACHE_MEMCACHED_URL", "")
        if memcached_url:
            parts = urlsplit(memcached_url)
            try:
                parts.port  # noqa: B018 - raises on a bad port
            except ValueError:
                raise SettingsError("IMGPROXY_CACHE_MEMCACHED_URL: invalid port") from None
            if parts.scheme != "memcached" or not parts.hostname:
                raise SettingsError("IMGPROXY_CACHE_MEMCACHED_URL: expected memcached://host[:port]")
            if redis_url:
                raise SettingsError(
                    "IMGPROXY_CACHE_MEMCACHED_URL, IMGPROXY_CACHE_REDIS_URL: set one of them as the L2, not both"
                )
        ttl = env.get_int("IMGPROXY_TTL", 31536000, min_value=0)
        endpoint = env.get_str("IMGPROXY_CACHE_S3_ENDPOINT", "")
        access_key = env.raw("IMGPROXY_CACHE_S3_ACCESS_KEY_ID")
        secret_key = env.raw("IMGPROXY_CACHE_S3_SECRET_ACCESS_KEY")
        if (access_key is None) != (secret_key is None):
            raise SettingsError(
                "IMGPROXY_CACHE_S3_ACCESS_KEY_ID, IMGPROXY_CACHE_S3_SECRET_ACCESS_KEY: set both or neither"
            )
        return cls(
            memory_size=round(env.get_float("IMGPROXY_CACHE_MEMORY_SIZE", 256, min_value=0) * 1024 * 1024),
            redis_url=redis_url,
            memcached_url=memcached_url,
            s3_bucket=env.get_str("IMGPROXY_CACHE_S3_BUCKET", ""),
            s3_prefix=env.get_str("IMGPROXY_CACHE_S3_PREFIX", "results/"),
            s3_endpoint=parse_s3_endpoint("IMGPROXY_CACHE_S3_ENDPOINT", endpoint) if endpoint else None,
            s3_region=env.raw("IMGPROXY_CACHE_S3_REGION"),
            s3_path_style=(
                env.get_bool("IMGPROXY_CACHE_S3_ENDPOINT_USE_PATH_STYLE", True)
                if env.raw("IMGPROXY_CACHE_S3_ENDPOINT_USE_PATH_STYLE") is not None
                else None
            ),
            s3_access_key=access_key,
            s3_secret_key=secret_key,
            ttl=env.get_int("IMGPROXY_CACHE_TTL", ttl, min_value=0),
            stale_if_error=env.get_int("IMGPROXY_CACHE_STALE_IF_ERROR", 0, min_value=0),
            timeout=env.get_float("IMGPROXY_CACHE_TIMEOUT", 0.25, min_value=0.001, max_value=60),
            retry_after=env.get_float("IMGPROXY_CACHE_RETRY_AFTER", 5.0, min_value=0, max_value=3600),
        )
