"""imgproxy_py.url: URLs it builds parse (and verify) with the server's own parser and signature check."""

from __future__ import annotations

import base64
import subprocess
import sys
import textwrap

import pytest

from imgproxy_py.cli import main
from imgproxy_py.errors import SignatureError
from imgproxy_py.imagetype import ImageFormat
from imgproxy_py.options.model import GravityType, ResizingType
from imgproxy_py.options.parser import ParsedURL, Parser, split_signature
from imgproxy_py.security import verify_signature
from imgproxy_py.settings import Settings
from imgproxy_py.url import URLBuilder, build_url, format_option, source_part
from tests.conftest import app_client
from tests.support import images_dir

KEY, SALT = "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881", "520f986b998545b4785e0d"
ENV = {"IMGPROXY_KEY": KEY, "IMGPROXY_SALT": SALT, "IMGPROXY_PRESETS": "thumb=rs:fit:100:100,webp=f:webp"}


def parse(url: str, **env: str) -> ParsedURL:
    """What the server does with a URL: split, verify the signature, parse."""
    settings = Settings.from_env({**ENV, **env})
    path = url if url.startswith("/") else "/" + url.split("://", 1)[1].split("/", 1)[1]
    signature, rest = split_signature(path, settings.server.path_prefix)
    verify_signature(settings.security, signature, rest)
    return Parser(settings.options).parse(rest)


def test_keyword_and_fluent_forms_build_the_same_url() -> None:
    kw = build_url(
        "local:///a b@c.jpg", resize=("fill", 300, 200), gravity="sm", quality=70, extension="webp", key=KEY, salt=SALT
    )
    fluent = URLBuilder(key=KEY, salt=SALT).resize("fill", 300, 200).gravity("sm").quality(70).url("local:///a b@c.jpg")
    assert fluent != kw  # no extension on the fluent one yet
    assert (
        URLBuilder(key=KEY, salt=SALT)
        .resize("fill", 300, 200)
        .gravity("sm")
        .quality(70)
        .url("local:///a b@c.jpg", "webp")
        == kw
    )
    parsed = parse(kw)
    po = parsed.options
    assert (po.resizing_type, po.width, po.height, po.gravity.type) == (ResizingType.FILL, 300, 200, GravityType.SMART)
    assert (po.quality, po.format) == (70, ImageFormat.WEBP)
    assert parsed.source_url == "local:///a b@c.jpg"  # escaped in the URL, back after parsing
    assert "/plain/local:///a%20b%40c.jpg@webp" in kw


def test_base64_source_extension_and_presets() -> None:
    source = "https://example.com/images/photo.jpg?v=2#x"
    url = build_url(source, preset=["thumb", "webp"], encode=True, extension="png", key=KEY, salt=SALT)
    encoded = base64.urlsafe_b64encode(source.encode()).rstrip(b"=").decode()
    assert url.endswith(f"/pr:thumb:webp/{encoded}.png")
    parsed = parse(url)
    assert parsed.source_url == source
    assert (parsed.options.width, parsed.options.height, parsed.options.format) == (100, 100, ImageFormat.PNG)


@pytest.mark.parametrize("size", [1, 8, 32])
def test_signature_size(size: int) -> None:
    url = URLBuilder(key=KEY, salt=SALT, signature_size=size).width(10).url("local:///a.jpg")
    signature = url.split("/")[1]
    assert len(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))) == size
    parse(url, IMGPROXY_SIGNATURE_SIZE=str(size))
    with pytest.raises(SignatureError):
        parse(url, IMGPROXY_SIGNATURE_SIZE=str(33 - size if size != 32 else 31))


def test_wrong_key_and_unsigned_urls_are_refused() -> None:
    other = URLBuilder(key="ab" * 32, salt="cd" * 32).width(10).url("local:///a.jpg")
    with pytest.raises(SignatureError):
        parse(other)
    unsigned = URLBuilder().width(10).path("local:///a.jpg")
    assert unsigned.startswith("/insecure/")
    with pytest.raises(SignatureError):
        parse(unsigned)


def test_every_argument_kind() -> None:
    url = (
        URLBuilder(base="http://imgproxy.example/")
        .option("min_width", 50)  # "_" spelling of min-width
        .dpr(1.5)
        .crop(0.5, 0.5, "fp", 0.25, 0.75)
        .padding(10, None, 20)
        .enlarge()
        .extend(True, "so")
        .flip(True, False)
        .background("ff0000")
        .blur(2.0)
        .watermark(0.5, "soea", 10, None, 0.25)
        .filename("a/b:c")
        .url("local:///a.jpg")
    )
    assert url.startswith("http://imgproxy.example/insecure/mw:50/dpr:1.5/c:0.5:0.5:fp:0.25:0.75/")
    po = parse(url, IMGPROXY_KEY="", IMGPROXY_SALT="").options
    assert (po.min_width, po.dpr, po.enlarge, po.flip_horizontal, po.flip_vertical) == (50, 1.5, True, True, False)
    assert (po.padding.top, po.padding.right, po.padding.bottom) == (10, 10, 20)
    assert po.crop.gravity is not None and po.crop.gravity.type is GravityType.FOCUS_POINT
    assert (po.crop.gravity.x, po.crop.gravity.y) == (0.25, 0.75)
    assert po.filename == "a/b:c"
    assert po.watermark.opacity == 0.5 and po.watermark.scale == 0.25


def test_bad_input_is_refused_before_any_request() -> None:
    with pytest.raises(ValueError, match="unknown imgproxy option 'rz'"):
        build_url("local:///a.jpg", rz=("fit", 10, 10))
    with pytest.raises(ValueError, match="separator"):
        format_option("gravity", "fp:0.5:0.5")
    with pytest.raises(ValueError, match="'/'"):
        format_option("cachebuster", "a/b")
    with pytest.raises(ValueError, match="finite"):
        format_option("dpr", float("nan"))
    with pytest.raises(ValueError, match="both"):
        URLBuilder(key=KEY)
    with pytest.raises(ValueError, match="hex"):
        URLBuilder(key="not hex", salt="00").path("local:///a.jpg")
    assert source_part("local:///100%.jpg") == "plain/local:///100%25.jpg"


def test_importable_without_server_dependencies() -> None:
    """A web app can depend on imgproxy-py just for URLs: no pyvips, starlette, uvicorn, httpx… imported."""
    code = textwrap.dedent(
        """
        import sys
        from importlib.abc import MetaPathFinder

        BLOCKED = {"pyvips", "starlette", "uvicorn", "httpx", "httpcore", "anyio", "redis", "minio",
                   "prometheus_client", "urllib3"}

        class Block(MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"blocked: {name}")
                return None

        sys.meta_path.insert(0, Block())
        from imgproxy_py.url import build_url
        print(build_url("local:///a.jpg", width=300, key="aa", salt="bb"))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("/w:300/plain/local:///a.jpg")


def test_cli_url(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    argv = ["url", "--width", "300", "--resizing-type", "fill", "-o", "g:sm", "--preset", "thumb", "--ext", "webp"]
    assert main([*argv, "local:///flowers.jpeg"]) == 0
    url = capsys.readouterr().out.strip()
    assert url == build_url(
        "local:///flowers.jpeg",
        width=300,
        resizing_type="fill",
        preset="thumb",
        g="sm",
        extension="webp",
        key=KEY,
        salt=SALT,
    )
    assert main(["url", "--base64", "--base", "http://127.0.0.1:8080", "local:///flowers.jpeg"]) == 0
    assert capsys.readouterr().out.startswith("http://127.0.0.1:8080/")
    assert main(["url", "-o", "rz:fit:1:1", "local:///flowers.jpeg"]) == 2
    assert "unknown imgproxy option 'rz'" in capsys.readouterr().err


async def test_urls_fetch_images_from_a_server_with_a_key() -> None:
    builder = URLBuilder(key=KEY, salt=SALT, signature_size=16).resize("fill", 120, 80).gravity("sm")
    async with app_client(**ENV, IMGPROXY_SIGNATURE_SIZE="16") as client:
        for encode in (False, True):
            response = await client.get(builder.path("local:///flowers.jpeg", "webp", encode=encode))
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "image/webp"
        info = await client.get(URLBuilder(key=KEY, salt=SALT, signature_size=16).info_url("local:///flowers.jpeg"))
        assert info.status_code == 200 and info.json()["format"] == "jpeg"
        tampered = builder.width(121).path("local:///flowers.jpeg")
        tampered = tampered.replace(tampered.split("/")[1], "A" * 22)
        assert (await client.get(tampered)).status_code == 403
    assert (images_dir() / "flowers.jpeg").exists()
