"""Settings.from_env: defaults, typed parsing, and errors that name the variable.

Defaults come from the imgproxy docs (reference §4, parser spec §7.2) except where this
project chooses differently on purpose (noted inline).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imgproxy_py.errors import SettingsError
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.options.parser import Parser
from imgproxy_py.settings import Settings, parse_bind, parse_bool


def from_env(**env: str) -> Settings:
    return Settings.from_env(env)


def test_defaults() -> None:
    s = Settings.from_env({})
    # server
    assert s.server.host == "127.0.0.1"  # ours: loopback by default (imgproxy binds ":8080")
    assert s.server.port == 8080
    assert s.server.ttl == 31536000
    assert s.server.timeout == 10.0
    assert s.server.use_etag is True
    assert s.server.use_last_modified is True
    assert s.server.path_prefix == ""
    assert s.server.health_check_path == ""
    # security
    assert s.security.keys == () and s.security.salts == ()
    assert not s.security.signing_enabled
    assert s.security.signature_size == 32
    assert s.security.trusted_signatures == frozenset()
    assert s.security.max_src_resolution == 50_000_000
    assert s.security.max_src_file_size == 64 * 1024 * 1024  # capped unless set (imgproxy: uncapped)
    assert Settings.from_env({"IMGPROXY_MAX_SRC_FILE_SIZE": "0"}).security.max_src_file_size == 0
    assert (s.server.max_clients, s.server.read_request_timeout, s.server.keep_alive_timeout) == (2048, 5.0, 10.0)
    assert s.security.allow_security_options is False
    # options
    assert s.options.quality == 80
    assert dict(s.options.format_quality) == {ImageFormat.WEBP: 79, ImageFormat.AVIF: 63, ImageFormat.JXL: 77}
    assert s.options.auto_rotate is True
    assert s.options.strip_metadata is True
    assert s.options.presets == ()
    assert not s.options.negotiates_format
    assert s.options.preferred_formats == (ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.GIF)
    # sources
    assert s.sources.local_root is None
    assert s.sources.download_timeout == 5.0
    assert s.sources.max_redirects == 10
    # ours: private addresses blocked by default (imgproxy 4 allows them)
    allowed = (s.sources.allow_loopback, s.sources.allow_link_local, s.sources.allow_private)
    assert allowed == (False, False, False)
    # workers
    assert s.workers.workers == 2 * (os.cpu_count() or 1)
    assert s.workers.queue_size == 0


def test_blank_values_mean_unset() -> None:
    s = from_env(IMGPROXY_TTL="  ", IMGPROXY_USE_ETAG="", IMGPROXY_KEY="", IMGPROXY_SALT="")
    assert s.server.ttl == 31536000
    assert s.server.use_etag is True
    assert not s.security.signing_enabled


def test_typed_values_are_parsed() -> None:
    s = from_env(
        IMGPROXY_BIND="0.0.0.0:9000",
        IMGPROXY_TTL="60",
        IMGPROXY_USE_ETAG="false",
        IMGPROXY_TIMEOUT="2.5",
        IMGPROXY_PATH_PREFIX="img/",
        IMGPROXY_HEALTH_CHECK_PATH="/healthz",
        IMGPROXY_SIGNATURE_SIZE="8",
        IMGPROXY_MAX_SRC_RESOLUTION="16.8",
        IMGPROXY_MAX_SRC_FILE_SIZE="1048576",
        IMGPROXY_MAX_CLIENTS="100",
        IMGPROXY_READ_REQUEST_TIMEOUT="2.5",
        IMGPROXY_KEEP_ALIVE_TIMEOUT="0",
        IMGPROXY_ALLOW_SECURITY_OPTIONS="1",
        IMGPROXY_QUALITY="90",
        IMGPROXY_AUTO_ROTATE="F",
        IMGPROXY_STRIP_METADATA="FALSE",
        IMGPROXY_AUTO_WEBP="true",
        IMGPROXY_ENFORCE_AVIF="t",
        IMGPROXY_DOWNLOAD_TIMEOUT="1",
        IMGPROXY_MAX_REDIRECTS="0",
        IMGPROXY_USER_AGENT="agent/1",
        IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES="True",
        IMGPROXY_ALLOW_PRIVATE_SOURCE_ADDRESSES="1",
        IMGPROXY_WORKERS="3",
        IMGPROXY_REQUESTS_QUEUE_SIZE="7",
    )
    assert (s.server.host, s.server.port) == ("0.0.0.0", 9000)
    assert s.server.ttl == 60
    assert s.server.use_etag is False
    assert s.server.timeout == 2.5
    assert s.server.path_prefix == "/img"
    assert s.server.health_check_path == "/healthz"
    assert s.security.signature_size == 8
    assert s.security.max_src_resolution == 16_800_000
    assert s.security.max_src_file_size == 1048576
    assert (s.server.max_clients, s.server.read_request_timeout, s.server.keep_alive_timeout) == (100, 2.5, 0.0)
    assert s.security.allow_security_options is True
    assert s.options.quality == 90
    assert s.options.auto_rotate is False
    assert s.options.strip_metadata is False
    assert s.options.auto_webp is True and s.options.enforce_avif is True
    assert s.options.negotiates_format
    assert s.sources.download_timeout == 1.0
    assert s.sources.max_redirects == 0
    assert s.sources.user_agent == "agent/1"
    allowed = (s.sources.allow_loopback, s.sources.allow_link_local, s.sources.allow_private)
    assert allowed == (True, False, True)
    assert (s.workers.workers, s.workers.queue_size) == (3, 7)


def test_deprecated_detection_names_are_aliases() -> None:
    s = from_env(IMGPROXY_ENABLE_WEBP_DETECTION="true", IMGPROXY_ENABLE_AVIF_DETECTION="1")
    assert s.options.auto_webp and s.options.auto_avif
    s = from_env(IMGPROXY_ENABLE_WEBP_DETECTION="true", IMGPROXY_AUTO_WEBP="false")
    assert not s.options.auto_webp  # the current name wins


def test_comma_lists() -> None:
    s = from_env(
        IMGPROXY_KEY=" aa , bb ",
        IMGPROXY_SALT="cc,dd,",
        IMGPROXY_TRUSTED_SIGNATURES="one, two,,three ",
        IMGPROXY_PREFERRED_FORMATS="webp, png",
        IMGPROXY_FORMAT_QUALITY="jpeg=70, webp=60,avif=40",
        IMGPROXY_PRESETS="a=w:1, b=h:2/q:50",
    )
    assert s.security.keys == (b"\xaa", b"\xbb")
    assert s.security.salts == (b"\xcc", b"\xdd")
    assert s.security.trusted_signatures == frozenset({"one", "two", "three"})
    assert s.options.preferred_formats == (ImageFormat.WEBP, ImageFormat.PNG)
    assert dict(s.options.format_quality) == {
        ImageFormat.JPEG: 70,
        ImageFormat.WEBP: 60,
        ImageFormat.AVIF: 40,
        ImageFormat.JXL: 77,  # untouched default
    }
    assert s.options.presets == ("a=w:1", "b=h:2/q:50")


def test_presets_separator() -> None:
    s = from_env(IMGPROXY_PRESETS="a=w:1;b=fq:webp:50:avif:40", IMGPROXY_PRESETS_SEPARATOR=";")
    assert s.options.presets == ("a=w:1", "b=fq:webp:50:avif:40")
    assert Parser(s.options).preset_names == frozenset({"a", "b"})


def test_local_root_must_be_an_existing_directory(tmp_path: Path) -> None:
    s = from_env(IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(tmp_path))
    assert s.sources.local_root == os.path.realpath(tmp_path)
    with pytest.raises(SettingsError, match="IMGPROXY_LOCAL_FILESYSTEM_ROOT"):
        from_env(IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(tmp_path / "missing"))
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(SettingsError, match="IMGPROXY_LOCAL_FILESYSTEM_ROOT"):
        from_env(IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(a_file))


INVALID: list[tuple[dict[str, str], str]] = [
    # booleans (Go ParseBool set only)
    ({"IMGPROXY_USE_ETAG": "yes"}, "IMGPROXY_USE_ETAG"),
    ({"IMGPROXY_AUTO_ROTATE": "2"}, "IMGPROXY_AUTO_ROTATE"),
    ({"IMGPROXY_ALLOW_SECURITY_OPTIONS": "on"}, "IMGPROXY_ALLOW_SECURITY_OPTIONS"),
    ({"IMGPROXY_ALLOW_PRIVATE_SOURCE_ADDRESSES": "tRUE"}, "IMGPROXY_ALLOW_PRIVATE_SOURCE_ADDRESSES"),
    ({"IMGPROXY_ENABLE_WEBP_DETECTION": "maybe"}, "IMGPROXY_ENABLE_WEBP_DETECTION"),
    # integers
    ({"IMGPROXY_TTL": "abc"}, "IMGPROXY_TTL"),
    ({"IMGPROXY_TTL": "1.5"}, "IMGPROXY_TTL"),
    ({"IMGPROXY_WORKERS": "four"}, "IMGPROXY_WORKERS"),
    ({"IMGPROXY_MAX_SRC_FILE_SIZE": "1e6"}, "IMGPROXY_MAX_SRC_FILE_SIZE"),
    ({"IMGPROXY_TTL": "1_000"}, "IMGPROXY_TTL"),  # Go's Atoi: no underscores
    ({"IMGPROXY_WORKERS": "0x10"}, "IMGPROXY_WORKERS"),
    # out of range
    ({"IMGPROXY_TTL": "-1"}, "IMGPROXY_TTL"),
    ({"IMGPROXY_SIGNATURE_SIZE": "0"}, "IMGPROXY_SIGNATURE_SIZE"),
    ({"IMGPROXY_SIGNATURE_SIZE": "33"}, "IMGPROXY_SIGNATURE_SIZE"),
    ({"IMGPROXY_QUALITY": "0"}, "IMGPROXY_QUALITY"),
    ({"IMGPROXY_QUALITY": "101"}, "IMGPROXY_QUALITY"),
    ({"IMGPROXY_WORKERS": "0"}, "IMGPROXY_WORKERS"),
    ({"IMGPROXY_MAX_REDIRECTS": "-1"}, "IMGPROXY_MAX_REDIRECTS"),
    ({"IMGPROXY_REQUESTS_QUEUE_SIZE": "-5"}, "IMGPROXY_REQUESTS_QUEUE_SIZE"),
    ({"IMGPROXY_MAX_SRC_FILE_SIZE": "-1"}, "IMGPROXY_MAX_SRC_FILE_SIZE"),
    ({"IMGPROXY_PROCESSES": "0"}, "IMGPROXY_PROCESSES"),
    # floats
    ({"IMGPROXY_TIMEOUT": "soon"}, "IMGPROXY_TIMEOUT"),
    ({"IMGPROXY_TIMEOUT": "nan"}, "IMGPROXY_TIMEOUT"),
    ({"IMGPROXY_TIMEOUT": "0"}, "IMGPROXY_TIMEOUT"),
    ({"IMGPROXY_DOWNLOAD_TIMEOUT": "-1"}, "IMGPROXY_DOWNLOAD_TIMEOUT"),
    ({"IMGPROXY_MAX_SRC_RESOLUTION": "0"}, "IMGPROXY_MAX_SRC_RESOLUTION"),
    ({"IMGPROXY_MAX_SRC_RESOLUTION": "lots"}, "IMGPROXY_MAX_SRC_RESOLUTION"),
    # keys and salts
    ({"IMGPROXY_KEY": "zz", "IMGPROXY_SALT": "aa"}, "IMGPROXY_KEY"),
    ({"IMGPROXY_KEY": "abc", "IMGPROXY_SALT": "aa"}, "IMGPROXY_KEY"),  # odd length
    ({"IMGPROXY_KEY": "aa", "IMGPROXY_SALT": "not-hex"}, "IMGPROXY_SALT"),
    ({"IMGPROXY_KEY": "aa,bb", "IMGPROXY_SALT": "cc"}, "IMGPROXY_SALT"),
    ({"IMGPROXY_KEY": "aa"}, "IMGPROXY_SALT"),  # a key without a salt
    ({"IMGPROXY_SALT": "aa"}, "IMGPROXY_KEY"),
    # formats
    ({"IMGPROXY_PREFERRED_FORMATS": "jpeg,xyz"}, "IMGPROXY_PREFERRED_FORMATS"),
    ({"IMGPROXY_PREFERRED_FORMATS": "svg"}, "IMGPROXY_PREFERRED_FORMATS"),  # only passed through, never saved
    ({"IMGPROXY_FORMAT_QUALITY": "webp"}, "IMGPROXY_FORMAT_QUALITY"),
    ({"IMGPROXY_FORMAT_QUALITY": "xyz=50"}, "IMGPROXY_FORMAT_QUALITY"),
    ({"IMGPROXY_FORMAT_QUALITY": "webp=high"}, "IMGPROXY_FORMAT_QUALITY"),
    ({"IMGPROXY_FORMAT_QUALITY": "webp=0"}, "IMGPROXY_FORMAT_QUALITY"),
    ({"IMGPROXY_FORMAT_QUALITY": "webp=101"}, "IMGPROXY_FORMAT_QUALITY"),
    ({"IMGPROXY_FORMAT_QUALITY": "webp:50"}, "IMGPROXY_FORMAT_QUALITY"),
    # bind
    ({"IMGPROXY_BIND": "localhost"}, "IMGPROXY_BIND"),
    ({"IMGPROXY_BIND": ":http"}, "IMGPROXY_BIND"),
    ({"IMGPROXY_BIND": "127.0.0.1:70000"}, "IMGPROXY_BIND"),
    ({"IMGPROXY_BIND": "127.0.0.1:-1"}, "IMGPROXY_BIND"),
    ({"IMGPROXY_BIND": "127.0.0.1:"}, "IMGPROXY_BIND"),
    # paths
    ({"IMGPROXY_HEALTH_CHECK_PATH": "health"}, "IMGPROXY_HEALTH_CHECK_PATH"),
]


@pytest.mark.parametrize(("env", "name"), INVALID, ids=[",".join(f"{k}={v}" for k, v in e.items()) for e, _ in INVALID])
def test_invalid_value_names_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        (":8080", ("0.0.0.0", 8080)),  # imgproxy's form: all interfaces
        ("[::1]:8081", ("::1", 8081)),
        ("example.internal:0", ("example.internal", 0)),
    ],
)
def test_parse_bind(value: str, expected: tuple[str, int]) -> None:
    assert parse_bind("IMGPROXY_BIND", value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("t", True), ("T", True), ("TRUE", True), ("true", True), ("True", True)]
    + [("0", False), ("f", False), ("F", False), ("FALSE", False), ("false", False), ("False", False)]
    + [("", None), ("yes", None), ("tRuE", None), ("2", None), (" true", None)],
)
def test_parse_bool_is_go_parsebool(value: str, expected: bool | None) -> None:
    assert parse_bool(value) is expected


BAD_PRESETS = [
    "broken",  # no '='
    "=w:1",  # empty name
    "p=",  # empty body
    "p=w",  # a segment without arguments
    "p=w:1/plain",  # no URL inside a preset
    "p=nope:1",  # unknown option
    "p=w:abc",  # bad argument
    "p=g:fp:2:2",
    "p=pr:missing",  # unknown preset
    "p=exp:1",  # expired: also a URL error
    "ok=w:1,p=q:101",  # one bad preset among good ones
]


@pytest.mark.parametrize("presets", BAD_PRESETS)
def test_bad_presets_fail_at_parser_construction(presets: str) -> None:
    settings = from_env(IMGPROXY_PRESETS=presets)  # reading the variable alone does not validate
    with pytest.raises(SettingsError, match="IMGPROXY_PRESETS"):
        Parser(settings.options)


def test_good_presets_build_a_parser() -> None:
    settings = from_env(IMGPROXY_PRESETS="default=q:70, thumb=rs:fill:100:100/g:sm, self=pr:self/w:5")
    parser = Parser(settings.options)
    assert parser.preset_names == frozenset({"default", "thumb", "self"})


# --- S3 ------------------------------------------------------------------------------------


def test_s3_defaults() -> None:
    s3 = Settings.from_env({}).s3
    assert s3.enabled is False
    assert s3.endpoint == "https://s3.amazonaws.com"  # empty: AWS
    assert s3.region == "us-east-1"
    assert s3.path_style is True  # imgproxy's default
    assert (s3.access_key, s3.secret_key, s3.session_token) == (None, None, None)  # anonymous
    assert (s3.allowed_buckets, s3.denied_buckets) == ((), ())


def test_s3_settings_are_read() -> None:
    s3 = from_env(
        IMGPROXY_USE_S3="true",
        IMGPROXY_S3_ENDPOINT="http://127.0.0.1:9000/",
        IMGPROXY_S3_REGION="eu-central-1",
        IMGPROXY_S3_ENDPOINT_USE_PATH_STYLE="false",
        AWS_ACCESS_KEY_ID="AKIAEXAMPLE",
        AWS_SECRET_ACCESS_KEY="s3cr3t-value",
        AWS_SESSION_TOKEN="t0ken-value",
        IMGPROXY_S3_ALLOWED_BUCKETS="a-bucket, b-bucket",
        IMGPROXY_S3_DENIED_BUCKETS="private",
    ).s3
    assert s3.enabled and s3.endpoint == "http://127.0.0.1:9000" and s3.region == "eu-central-1"
    assert s3.path_style is False
    assert (s3.access_key, s3.secret_key, s3.session_token) == ("AKIAEXAMPLE", "s3cr3t-value", "t0ken-value")
    assert s3.allowed_buckets == ("a-bucket", "b-bucket") and s3.denied_buckets == ("private",)


def test_s3_secrets_stay_out_of_reprs() -> None:
    env = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value", "AWS_SESSION_TOKEN": "tok3n"}
    text = repr(Settings.from_env(env))
    assert "s3cr3t-value" not in text and "tok3n" not in text and "AKIAEXAMPLE" not in text


def test_s3_endpoint_without_scheme_says_a_scheme_is_needed() -> None:
    with pytest.raises(SettingsError, match=r"IMGPROXY_S3_ENDPOINT: needs a scheme, e\.g\. http://minio:9000"):
        from_env(IMGPROXY_S3_ENDPOINT="minio:9000")


@pytest.mark.parametrize(
    "endpoint",
    ["ftp://minio:9000", "http://", "http://minio:9000/bucket", "http://minio:9000?x=1", "http://minio:99999"],
)
def test_bad_s3_endpoints(endpoint: str) -> None:
    with pytest.raises(SettingsError, match="IMGPROXY_S3_ENDPOINT"):
        from_env(IMGPROXY_S3_ENDPOINT=endpoint)


def test_s3_endpoint_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(SettingsError, match="IMGPROXY_S3_ENDPOINT") as info:
        from_env(IMGPROXY_S3_ENDPOINT="http://user:hunter2@minio:9000")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"}, "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"),
        ({"AWS_SECRET_ACCESS_KEY": "s3cr3t-value"}, "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"),
        ({"AWS_SESSION_TOKEN": "tok3n"}, "AWS_SESSION_TOKEN"),
        ({"IMGPROXY_S3_REGION": "Not A Region"}, "IMGPROXY_S3_REGION"),
        ({"IMGPROXY_USE_S3": "yes"}, "IMGPROXY_USE_S3"),
        ({"IMGPROXY_S3_ENDPOINT_USE_PATH_STYLE": "maybe"}, "IMGPROXY_S3_ENDPOINT_USE_PATH_STYLE"),
    ],
)
def test_bad_s3_settings_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names) as info:
        Settings.from_env(env)
    assert "s3cr3t-value" not in str(info.value) and "tok3n" not in str(info.value)


# --- unknown, unsupported and risky settings ------------------------------------------------


def test_a_typo_warns_with_the_nearest_known_name() -> None:
    (warning,) = from_env(IMGPROXY_TIMEOUTT="3").warnings
    assert "IMGPROXY_TIMEOUTT" in warning and "did you mean IMGPROXY_TIMEOUT?" in warning


def test_an_unrelated_unknown_name_warns_without_a_guess() -> None:
    (warning,) = from_env(IMGPROXY_FROBNICATE="1").warnings
    assert "IMGPROXY_FROBNICATE is not a known setting" in warning and "did you mean" not in warning


@pytest.mark.parametrize("name", ["IMGPROXY_READ_TIMEOUT", "IMGPROXY_USE_GCS", "IMGPROXY_FALLBACK_IMAGE_URL"])
def test_imgproxy_settings_this_server_lacks_warn_not_supported(name: str) -> None:
    (warning,) = from_env(**{name: "1"}).warnings
    assert name in warning and "does not support" in warning


def test_known_settings_other_variables_and_internal_ones_are_silent() -> None:
    settings = from_env(
        IMGPROXY_TIMEOUT="3",
        IMGPROXY_WATERMARK_URL="http://example.com/wm.png",
        IMGPROXY_WATERMARK_OPACITY="0.5",
        IMGPROXY_PY_SERVER_PROCESS="1",
        PATH="/bin",
    )
    assert settings.warnings == ()


def test_strict_config_makes_unknown_names_fatal() -> None:
    with pytest.raises(SettingsError, match=r"IMGPROXY_STRICT_CONFIG: .*IMGPROXY_TIMEOUTT.*IMGPROXY_USE_GCS"):
        from_env(IMGPROXY_STRICT_CONFIG="true", IMGPROXY_TIMEOUTT="3", IMGPROXY_USE_GCS="true")
    assert from_env(IMGPROXY_STRICT_CONFIG="true", IMGPROXY_TIMEOUT="3").server.timeout == 3


def test_every_name_the_package_mentions_is_known() -> None:
    """The known set is what ``_Env`` reads, so every read must happen whatever the values
    (a name read only in one branch would be reported as unknown when the other is taken)."""
    import re

    from imgproxy_py import settings as module

    package = Path(module.__file__).parent
    mentioned = set()
    for file in package.rglob("*.py"):
        mentioned |= set(re.findall(r"\bIMGPROXY_[A-Z0-9_]*[A-Z0-9]\b", file.read_text()))
    mentioned = {n for n in mentioned if not n.startswith("IMGPROXY_PY_")} - module.UNSUPPORTED
    reported = " ".join(Settings.from_env(dict.fromkeys(mentioned, "")).warnings)
    assert [name for name in sorted(mentioned) if name in reported] == []


def test_every_name_any_module_mentions_is_known() -> None:
    """The same for every module of imgproxy_py, not only the settings package (a name
    documented or read elsewhere must still be one ``_Env`` reads, or be listed as unsupported)."""
    import re

    import imgproxy_py
    from imgproxy_py import settings as module

    mentioned = set()
    for file in Path(imgproxy_py.__file__).parent.rglob("*.py"):
        mentioned |= set(re.findall(r"\bIMGPROXY_[A-Z0-9_]*[A-Z0-9]\b", file.read_text()))
    mentioned = {n for n in mentioned if not n.startswith("IMGPROXY_PY_")} - module.UNSUPPORTED
    assert "IMGPROXY_MAX_SRC_RESOLUTION" in mentioned  # the scan sees the package
    reported = " ".join(Settings.from_env(dict.fromkeys(mentioned, "")).warnings)
    assert [name for name in sorted(mentioned) if name in reported] == []


def test_each_group_reads_its_own_defaults_from_an_empty_environment() -> None:
    """A group's dataclass defaults and its ``from_env`` agree: a default is written once (the
    worker count is the exception: it follows the CPU count, read at start-up)."""
    import dataclasses

    read = Settings.from_env({})
    for group in dataclasses.fields(Settings):
        if group.name == "warnings":
            continue
        expected = getattr(Settings(), group.name)
        if group.name == "workers":
            expected = dataclasses.replace(expected, workers=read.workers.workers)
        assert getattr(read, group.name) == expected, group.name


def test_limit_defaults_live_in_settings_once() -> None:
    from imgproxy_py import settings as module

    s = Settings.from_env({}).security
    assert (s.max_src_resolution, s.max_src_file_size, s.max_animation_frames) == (
        module.DEFAULT_MAX_SRC_RESOLUTION,
        module.DEFAULT_MAX_SRC_FILE_SIZE,
        module.DEFAULT_MAX_ANIMATION_FRAMES,
    )
    assert (s.max_animation_frame_resolution, s.max_result_dimension, s.max_result_resolution) == (
        module.DEFAULT_MAX_ANIMATION_FRAME_RESOLUTION,
        module.DEFAULT_MAX_RESULT_DIMENSION,
        module.DEFAULT_MAX_RESULT_RESOLUTION,
    )
    assert module.DEFAULT_MAX_SRC_RESOLUTION == 50_000_000  # imgproxy's 50 MP


@pytest.mark.parametrize(
    ("env", "warns"),
    [
        ({"IMGPROXY_BIND": ":8080"}, True),
        ({"IMGPROXY_BIND": "0.0.0.0:8080"}, True),
        ({"IMGPROXY_BIND": "[::]:8080"}, True),
        ({"IMGPROXY_BIND": "127.0.0.1:8080"}, False),
        ({"IMGPROXY_BIND": "[::1]:8080"}, False),
        ({"IMGPROXY_BIND": ":8080", "IMGPROXY_KEY": "aa", "IMGPROXY_SALT": "bb"}, False),
    ],
)
def test_an_unsigned_server_beyond_loopback_is_warned_about(env: dict[str, str], warns: bool) -> None:
    warnings = " ".join(Settings.from_env(env).warnings)
    assert ("WITHOUT URL SIGNING" in warnings) is warns


def test_the_example_config_does_not_ship_an_open_unsigned_server() -> None:
    example = Path(__file__).resolve().parent.parent / "config" / "example.env"
    env = {}
    for line in example.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            env[name.strip()] = value.strip()
    assert Settings.from_env(env).warnings == ()
