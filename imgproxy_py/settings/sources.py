"""Where sources come from: HTTP download policy, the local root, and S3."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from imgproxy_py.errors import SettingsError
from imgproxy_py.settings.env import _Env, parse_s3_endpoint


@dataclass(frozen=True, slots=True)
class SourceSettings:
    local_root: str | None = None
    download_timeout: float = 5.0
    max_redirects: int = 10
    user_agent: str = "imgproxy-py"
    allow_loopback: bool = False
    allow_link_local: bool = False
    allow_private: bool = False
    allowed_sources: tuple[str, ...] = ()
    # Decode JPEG/PNG sources (http, s3, large local files) while they download (server/streaming.py);
    # off: buffer every source whole.
    stream: bool = True
    stream_buffer: int = 1 << 20  # bytes of source held between the download and the decoder
    stream_local_min_size: int = 4 << 20  # a local file streams only from this size (bytes); smaller: read whole

    @classmethod
    def from_env(cls, env: _Env) -> SourceSettings:
        root = env.raw("IMGPROXY_LOCAL_FILESYSTEM_ROOT")
        if root is not None:
            root = os.path.realpath(root)
            if not os.path.isdir(root):
                raise SettingsError("IMGPROXY_LOCAL_FILESYSTEM_ROOT: not an existing directory")
        return cls(
            local_root=root,
            download_timeout=env.get_float("IMGPROXY_DOWNLOAD_TIMEOUT", 5.0, min_value=0.001),
            max_redirects=env.get_int("IMGPROXY_MAX_REDIRECTS", 10, min_value=0),
            user_agent=env.get_str("IMGPROXY_USER_AGENT", "imgproxy-py"),
            allow_loopback=env.get_bool("IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES", False),
            allow_link_local=env.get_bool("IMGPROXY_ALLOW_LINK_LOCAL_SOURCE_ADDRESSES", False),
            allow_private=env.get_bool("IMGPROXY_ALLOW_PRIVATE_SOURCE_ADDRESSES", False),
            allowed_sources=env.get_list("IMGPROXY_ALLOWED_SOURCES"),
            stream=env.get_bool("IMGPROXY_STREAM_SOURCES", True),
            stream_buffer=env.get_int("IMGPROXY_STREAM_BUFFER_SIZE", 1 << 20, min_value=65536),
            stream_local_min_size=env.get_int("IMGPROXY_STREAM_LOCAL_MIN_SIZE", 4 << 20, min_value=0),
        )


_S3_REGION = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?")  # what the minio client accepts


@dataclass(frozen=True, slots=True)
class S3Settings:
    """S3-compatible storage (AWS, MinIO, …): ``s3://`` sources; the connection is shared with other S3 users."""

    enabled: bool = False
    endpoint: str = "https://s3.amazonaws.com"  # scheme://host[:port], nothing else
    region: str = "us-east-1"
    path_style: bool = True
    # Never in reprs, logs or error messages.
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    allowed_buckets: tuple[str, ...] = ()  # empty: every bucket
    denied_buckets: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: _Env) -> S3Settings:
        access_key = env.raw("AWS_ACCESS_KEY_ID")
        secret_key = env.raw("AWS_SECRET_ACCESS_KEY")
        session_token = env.raw("AWS_SESSION_TOKEN")
        if (access_key is None) != (secret_key is None):
            raise SettingsError(
                "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: set both or neither (neither: anonymous access)"
            )
        if session_token is not None and access_key is None:
            raise SettingsError("AWS_SESSION_TOKEN: needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY too")
        region = env.get_str("IMGPROXY_S3_REGION", "us-east-1")
        if not _S3_REGION.fullmatch(region):
            raise SettingsError(f"IMGPROXY_S3_REGION: not a region name: {region!r}")
        return cls(
            enabled=env.get_bool("IMGPROXY_USE_S3", False),
            endpoint=parse_s3_endpoint("IMGPROXY_S3_ENDPOINT", env.get_str("IMGPROXY_S3_ENDPOINT", "")),
            region=region,
            path_style=env.get_bool("IMGPROXY_S3_ENDPOINT_USE_PATH_STYLE", True),
            access_key=access_key,
            secret_key=secret_key,
            session_token=session_token,
            allowed_buckets=env.get_list("IMGPROXY_S3_ALLOWED_BUCKETS"),
            denied_buckets=env.get_list("IMGPROXY_S3_DENIED_BUCKETS"),
        )
