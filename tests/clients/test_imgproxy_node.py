"""Conformance with a real client: imgproxy's official Node URL builder, ``@imgproxy/imgproxy-node``.

The URLs are made by the published package (pinned below; npm installs it into tests/.node/,
which git ignores) through ``imgproxy_urls.cjs``: every URL of the session is declared at import
time with ``url(...)`` and built by one node process. They are signed with the key/salt of
imgproxy's own examples, carry plain and base64 source URLs, point at ``local:///`` files and at
a real HTTP origin, and go through the real app. Expected results come from imgproxy's
documented behaviour (../shared/reference/imgproxy.md, imgproxy's worked geometry examples for
the 2725×2225 photo — the §10 rows of tests/processing/test_process.py —, the option docs the
builder links to),
never from running this server. Options only imgproxy Pro understands must be refused with 404,
as imgproxy OSS does, rather than silently ignored.

What the builder (1.1.0 with imgproxy-js-core 1.9.0) cannot do, so is not tested here: truncated
signatures (it always signs with all 32 bytes), the ``@ext``/``.ext`` extension form (it writes
``f:<format>``), SEO file names after a base64 URL, and escaping plain URLs (``?``, ``@``, ``%``
go through unescaped). Its ``skip_processing`` is spelled ``sp:``, which imgproxy does not know.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import json
import os
import shutil
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import pyvips

from imgproxy_py.security import sign_path
from tests.conftest import ClientFactory, make_settings
from tests.processing.heif_thumbnail import avif_with_thumbnail
from tests.support import REPO, Origin, images_dir, load, mean_abs_diff, missing_prerequisite, run_origin

# --- the builder ---------------------------------------------------------------------------

# the builder, and the library it depends on (^1.3.0) that writes the options: both pinned
PINNED = {"@imgproxy/imgproxy-node": "1.1.0", "@imgproxy/imgproxy-js-core": "1.9.0"}
NODE_DIR = REPO / "tests" / ".node"  # npm --prefix; in .gitignore
HELPER = Path(__file__).with_name("imgproxy_urls.cjs")
INSTALL_TIMEOUT = 300
ENDPOINT = "http://imgproxy.example"

# imgproxy's examples/signature.* key and salt
KEY = "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881"
SALT = "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5"
OTHER_KEY, OTHER_SALT = "ab" * 32, "cd" * 32

Display = Literal["plain", "base64"]

PHOTO = "2569067123_aca715a2ee_o.jpg"  # 2725×2225 JPEG, no EXIF orientation (geometry §10)
SMALL = "320x240.jpg"


@dataclass(frozen=True)
class Build:
    """One URL for the builder to make. The source may name an HTTP origin as ``{fixtures}``/``{generated}``."""

    options: str  # JSON (keeps the Build hashable)
    source: str
    display: Display
    info: bool
    key: str | None
    salt: str | None

    def request(self, bases: Mapping[str, str]) -> dict[str, Any]:
        return {
            "kind": "info" if self.info else "image",
            "endpoint": ENDPOINT + "/",
            "url": {"value": self.source.format_map(bases), "displayAs": self.display},
            "options": json.loads(self.options),
            "key": self.key,
            "salt": self.salt,
        }


_DECLARED: list[Build] = []


def url(
    options: dict[str, Any] | None = None,
    source: str = f"local:///{PHOTO}",
    display: Display = "base64",
    *,
    info: bool = False,
    key: str | None = KEY,
    salt: str | None = SALT,
) -> Build:
    """Declare a URL (at import time: one node run builds them all)."""
    build = Build(json.dumps(options or {}, sort_keys=True), source, display, info, key, salt)
    _DECLARED.append(build)
    return build


def forms(name: str) -> list[tuple[str, Display]]:
    """The four ways to give a fixture: local:/// or the HTTP origin, plain or base64."""
    return [(src, display) for src in (f"local:///{name}", f"{{fixtures}}/{name}") for display in ("plain", "base64")]


@dataclass
class Builder:
    versions: dict[str, str]
    results: dict[Build, dict[str, str]] = field(repr=False)

    def path(self, build: Build) -> str:
        """The built URL without the endpoint: ``/<signature>/<options>/<source>``."""
        result = self.results.get(build)
        assert result is not None, "declare builder URLs at import time with url(...)"
        if "error" in result:
            pytest.fail(f"the builder refused {build}: {result['error']}")
        full = result["url"]
        assert full.startswith(ENDPOINT + "/"), full
        return full[len(ENDPOINT) :]


def _installed(package: str) -> str | None:
    try:
        return str(json.loads((NODE_DIR / "node_modules" / package / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def _clean_env() -> dict[str, str]:
    """No IMGPROXY_* (the builder would sign with them) and no npm nagging."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGPROXY_")}
    env["npm_config_update_notifier"] = "false"
    return env


def install_builder() -> str:
    """Install the pinned packages once (skip without node/npm; fail, not skip, if npm cannot install)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing_prerequisite(
            "the imgproxy-node conformance suite needs Node.js and npm on PATH (apt-get install nodejs npm)"
        )
    NODE_DIR.mkdir(exist_ok=True)
    with open(NODE_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel sessions share the folder
        if all(_installed(name) == version for name, version in PINNED.items()):
            return node
        command = [npm, "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", "--save-exact"]
        command += [f"{name}@{version}" for name, version in PINNED.items()]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, env=_clean_env())
        except subprocess.TimeoutExpired:
            pytest.fail(f"`{' '.join(command)}` took over {INSTALL_TIMEOUT} s: is the npm registry reachable?")
        if proc.returncode != 0:
            pytest.fail(
                f"`{' '.join(command)}` failed ({proc.returncode}); this suite needs the npm registry:\n"
                f"{proc.stderr[-3000:]}"
            )
    for name, version in PINNED.items():
        assert _installed(name) == version, f"npm installed {name} {_installed(name)}, not {version}"
    return node


@pytest.fixture(scope="session")
def fixtures_origin() -> Iterator[Origin]:
    """The shared fixture images over real HTTP (as the ``origin`` fixture, for the whole session:
    the port is part of every signed URL, and one node run builds them all)."""
    yield from run_origin(images_dir())


def _tagged_jpeg() -> bytes:
    img = pyvips.Image.new_from_file(str(images_dir() / SMALL)).copy()
    for name, value in {"Copyright": "(c) Jane Doe", "Artist": "Jane Doe", "Make": "SecretCam"}.items():
        img.set_type(pyvips.GValue.gstr_type, f"exif-ifd0-{name}", value)
    return bytes(img.jpegsave_buffer(Q=90))


def flat(width: int, height: int, rgb: list[int]) -> Any:
    return (pyvips.Image.black(width, height) + rgb).cast("uchar").copy(interpretation="srgb")


@pytest.fixture(scope="session")
def generated_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    """Images made for one check: EXIF with a copyright notice; an AVIF with an embedded thumbnail."""
    root = tmp_path_factory.mktemp("generated")
    (root / "tagged.jpg").write_bytes(_tagged_jpeg())
    thumbed = avif_with_thumbnail(flat(320, 240, [200, 10, 10]), flat(80, 60, [10, 10, 200]))
    (root / "thumbed.avif").write_bytes(thumbed)
    yield from run_origin(root)


@pytest.fixture(scope="session")
def builder(fixtures_origin: Origin, generated_origin: Origin) -> Builder:
    node = install_builder()
    builds = list(dict.fromkeys(_DECLARED))
    bases = {"fixtures": fixtures_origin.base, "generated": generated_origin.base}
    proc = subprocess.run(
        [node, str(HELPER), str(NODE_DIR)],
        input=json.dumps([b.request(bases) for b in builds]),
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(),
    )
    if proc.returncode != 0:
        pytest.fail(f"{HELPER.name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    answer = json.loads(proc.stdout)
    assert len(answer["results"]) == len(builds)
    return Builder(answer["versions"], dict(zip(builds, answer["results"], strict=True)))


# --- the server ----------------------------------------------------------------------------


def _png(img: Any) -> str:
    return base64.b64encode(bytes(img.pngsave_buffer())).decode()


SERVER_ENV = {
    "IMGPROXY_KEY": KEY,
    "IMGPROXY_SALT": SALT,
    "IMGPROXY_WATERMARK_DATA": _png(flat(40, 20, [255, 0, 0])),  # red 40×20
    "IMGPROXY_PRESETS": "small=rs:fit:100:100,webp=f:webp",
}


@contextlib.asynccontextmanager
async def server(factory: ClientFactory, **env: str) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with the builder's key and salt, a watermark and two presets; ``env`` overrides."""
    async with factory(**{**SERVER_ENV, **env}) as client:
        yield client


async def fetch(client: httpx.AsyncClient, builder: Builder, build: Build, status: int = 200) -> httpx.Response:
    path = builder.path(build)
    response = await client.get(path)
    assert response.status_code == status, f"{path}: {response.status_code} {response.text[:200]!r}"
    return response


def size(response: httpx.Response) -> tuple[int, int]:
    img = load(response.content)
    return img.width, img.height


def thumbnail(name: str, width: int, height: int, **options: Any) -> Any:
    """libvips' own fit-inside thumbnail of a fixture (EXIF orientation and ICC profile applied), in sRGB."""
    path = str(images_dir() / name)
    img = pyvips.Image.thumbnail(path, width, height=height, export_profile="srgb", **options).copy_memory()
    if "orientation" in img.get_fields():  # left by no_rotate; mean_abs_diff would act on it
        img = img.copy()
        img.remove("orientation")
    return img


def detail(img: Any) -> float:
    """Mean absolute difference from a lightly blurred copy: high for sharp images, low for soft ones."""
    grey = img.colourspace("b-w")[0].cast("float")
    return float((grey - grey.gaussblur(1.5)).abs().avg())


def mean_rgb(img: Any) -> tuple[float, float, float]:
    return float(img[0].avg()), float(img[1].avg()), float(img[2].avg())


def red_box(img: Any) -> tuple[int, int, int, int]:
    """(left, top, width, height) of the pure red pixels."""
    mask = ((img[0] > 200) & (img[1] < 50) & (img[2] < 50)).ifthenelse(0, 255)
    left, top, width, height = mask.find_trim(background=[255], threshold=0)
    return int(left), int(top), int(width), int(height)


# --- the package ---------------------------------------------------------------------------


def test_the_pinned_builder_is_installed(builder: Builder) -> None:
    assert builder.versions == PINNED


# --- signatures ----------------------------------------------------------------------------

SIGNED = [
    url({"resize": {"resizing_type": "fit", "width": 300, "height": 300}}, display="plain"),
    url({"resize": {"resizing_type": "fit", "width": 300, "height": 300}}),
    url({"width": 100, "format": "webp", "gravity": {"type": "fp", "x": 0.25, "y": 0.75}}, f"{{fixtures}}/{SMALL}"),
    url({"padding": {"bottom": 30, "left": 40}, "cachebuster": "é€"}, f"local:///{SMALL}", "plain"),
]


def split_signature(path: str) -> tuple[str, str]:
    signature, _, rest = path[1:].partition("/")
    return signature, "/" + rest


def test_the_builders_signature_is_ours(builder: Builder) -> None:
    security = make_settings(IMGPROXY_KEY=KEY, IMGPROXY_SALT=SALT).security
    for build in SIGNED:
        path = builder.path(build)
        _, rest = split_signature(path)
        assert sign_path(security, rest) == path


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.mark.parametrize("signature_size", [1, 8, 16, 31, 32])
async def test_truncated_signatures(builder: Builder, client_factory: ClientFactory, signature_size: int) -> None:
    """The builder cannot truncate; its signature's first N bytes are our IMGPROXY_SIGNATURE_SIZE=N signature,
    and a full signature is refused when N < 32 (imgproxy compares the whole decoded signature)."""
    path = builder.path(SIGNED[1])
    signature, rest = split_signature(path)
    security = make_settings(IMGPROXY_KEY=KEY, IMGPROXY_SALT=SALT, IMGPROXY_SIGNATURE_SIZE=str(signature_size)).security
    truncated = _b64url(base64.urlsafe_b64decode(signature + "==")[:signature_size])
    assert sign_path(security, rest) == f"/{truncated}{rest}"
    async with server(client_factory, IMGPROXY_SIGNATURE_SIZE=str(signature_size)) as client:
        assert (await client.get(f"/{truncated}{rest}")).status_code == 200
        assert (await client.get(path)).status_code == (200 if signature_size == 32 else 403)


UNSIGNED = url({"width": 50}, key=None, salt=None)
ROTATED = url({"width": 50}, key=f"{KEY},{OTHER_KEY}", salt=f"{SALT},{OTHER_SALT}")
FIRST_PAIR = url({"width": 50})


async def test_unsigned_urls(builder: Builder, client_factory: ClientFactory) -> None:
    path = builder.path(UNSIGNED)
    assert path.startswith("/insecure/")
    async with client_factory() as client:  # no key/salt: any signature segment
        assert (await client.get(path)).status_code == 200
    async with server(client_factory) as client:
        assert (await client.get(path)).status_code == 403


async def test_key_rotation_lists(builder: Builder, client_factory: ClientFactory) -> None:
    """Given comma lists the builder signs with the first pair; imgproxy tries every configured pair."""
    path = builder.path(ROTATED)
    assert path == builder.path(FIRST_PAIR)
    rotated = {"IMGPROXY_KEY": f"{OTHER_KEY},{KEY}", "IMGPROXY_SALT": f"{OTHER_SALT},{SALT}"}
    async with server(client_factory, **rotated) as client:
        assert (await client.get(path)).status_code == 200
    async with server(client_factory, IMGPROXY_KEY=OTHER_KEY, IMGPROXY_SALT=OTHER_SALT) as client:
        assert (await client.get(path)).status_code == 403


# --- geometry: exact sizes (§10 / §2 as in tests/processing/test_process.py's legend) ---


def fit(width: int, height: int, **extra: Any) -> dict[str, Any]:
    return {"resizing_type": "fit", "width": width, "height": height, **extra}


def fill(width: int, height: int, **extra: Any) -> dict[str, Any]:
    return {"resizing_type": "fill", "width": width, "height": height, **extra}


GEOMETRY: list[tuple[str, dict[str, Any], str, tuple[int, int]]] = [
    ("resize-fill", {"resize": fill(300, 200)}, PHOTO, (300, 200)),
    ("resize-fit", {"resize": fit(300, 300)}, PHOTO, (300, 245)),
    ("size-defaults-to-fit", {"size": {"width": 300, "height": 300}}, PHOTO, (300, 245)),
    ("separate-type-width-height", {"resizing_type": "fill", "width": 300, "height": 200}, PHOTO, (300, 200)),
    ("width-only", {"width": 300}, PHOTO, (300, 245)),
    ("height-only", {"height": 300}, PHOTO, (367, 300)),
    (
        "auto-same-orientation-fills",
        {"resize": {"resizing_type": "auto", "width": 300, "height": 200}},
        PHOTO,
        (300, 200),
    ),
    (
        "auto-other-orientation-fits",
        {"resize": {"resizing_type": "auto", "width": 200, "height": 300}},
        PHOTO,
        (200, 163),
    ),
    ("fill-no-enlarge", {"resize": fill(5000, 200)}, PHOTO, (2725, 200)),
    (
        "fill-down-keeps-aspect",
        {"resize": {"resizing_type": "fill-down", "width": 5000, "height": 200}},
        PHOTO,
        (2725, 109),
    ),
    ("force", {"resize": {"resizing_type": "force", "width": 300, "height": 200}}, PHOTO, (300, 200)),
    ("force-no-enlarge", {"resize": {"resizing_type": "force", "width": 5000, "height": 200}}, PHOTO, (2725, 109)),
    ("dpr-fit", {"resize": fit(300, 300), "dpr": 2}, PHOTO, (600, 490)),
    ("dpr-fill", {"resize": fill(300, 200), "dpr": 2}, PHOTO, (600, 400)),
    ("dpr-never-enlarges", {"resize": fit(2000, 2000), "dpr": 2}, PHOTO, (2725, 2225)),
    ("zoom", {"zoom": 0.5}, PHOTO, (1363, 1113)),
    ("zoom-with-size", {"resize": fit(300, 300), "zoom": 2}, PHOTO, (600, 490)),
    # no size given: each axis' shrink is 1/zoom, 2 and 4 → 160×60
    ("zoom-per-axis", {"zoom": {"zoom_x": 0.5, "zoom_y": 0.25}}, SMALL, (160, 60)),
    ("crop-then-fit", {"crop": {"width": 1000, "height": 1000}, "resize": fit(200, 200)}, PHOTO, (200, 200)),
    ("relative-crop", {"crop": {"width": 0.5, "height": 0.5}, "resize": fit(200, 0)}, PHOTO, (200, 163)),
    ("min-width-crops-back", {"resize": fit(300, 300), "min_width": 400}, PHOTO, (300, 300)),
    ("min-height-crops-back", {"resize": fit(300, 300), "min_height": 400}, PHOTO, (300, 300)),
    ("extend", {"resize": fit(300, 300), "extend": {"extend": 1}}, PHOTO, (300, 300)),
    (
        "extend-in-resize",
        {"resize": fit(300, 300, extend={"extend": True, "gravity": {"type": "no"}})},
        PHOTO,
        (300, 300),
    ),
    ("extend-in-size", {"size": {"width": 300, "height": 300, "extend": {"extend": "t"}}}, PHOTO, (300, 300)),
    ("extend-aspect-ratio", {"resize": fit(300, 300), "extend_aspect_ratio": {"extend": 1}}, PHOTO, (300, 300)),
    ("padding", {"resize": fit(300, 300), "padding": {"top": 10, "right": 20}}, PHOTO, (340, 265)),
    # top 0 and right 0 (empty arguments), bottom 30, left 40
    ("padding-bottom-left", {"resize": fit(300, 300), "padding": {"bottom": 30, "left": 40}}, PHOTO, (340, 275)),
    # 600×490 at dpr 2, each side ScaleToEven(10·2) = 20
    ("padding-follows-dpr", {"resize": fit(300, 300), "padding": 10, "dpr": 2}, PHOTO, (640, 530)),
    ("rotate-swaps-axes", {"resize": fit(300, 200), "rotate": 90}, PHOTO, (163, 200)),
    # fit 640×640: shrinks 0.5 and 0.375, fit takes the larger (0.5) → doubled
    ("enlarge", {"resize": fit(640, 640, enlarge=1)}, SMALL, (640, 480)),
    ("no-enlarge-by-default", {"resize": fit(640, 640)}, SMALL, (320, 240)),
    ("separate-enlarge", {"resize": fit(640, 640), "enlarge": "t"}, SMALL, (640, 480)),
    ("extend-small", {"resize": fit(640, 640, extend={"extend": 1})}, SMALL, (640, 640)),
    ("enlarge-and-extend", {"resize": fill(640, 640, enlarge=True, extend={"extend": 1})}, SMALL, (640, 640)),
    # EXIF orientation 6: stored 450×600, shown 600×450
    ("auto-rotate", {"width": 300}, "Landscape_6.jpg", (300, 225)),
    ("auto-rotate-on", {"width": 300, "auto_rotate": 1}, "Landscape_6.jpg", (300, 225)),
    ("auto-rotate-off", {"width": 300, "auto_rotate": False}, "Landscape_6.jpg", (300, 400)),
    ("gravity-does-not-change-size", {"resize": fill(300, 200), "gravity": {"type": "sm"}}, PHOTO, (300, 200)),
    ("cachebuster", {"resize": fit(300, 300), "cachebuster": "v2"}, PHOTO, (300, 245)),
    ("far-expiry", {"resize": fit(300, 300), "expires": 4102444800}, PHOTO, (300, 245)),
]
GEOMETRY_BUILDS = {
    case: [url(options, src, display) for src, display in forms(name)] for case, options, name, _ in GEOMETRY
}


@pytest.mark.parametrize(
    ("case", "expected"), [pytest.param(case, expected, id=case) for case, _, _, expected in GEOMETRY]
)
async def test_output_size(
    builder: Builder, client_factory: ClientFactory, case: str, expected: tuple[int, int]
) -> None:
    async with server(client_factory) as client:
        for build in GEOMETRY_BUILDS[case]:
            response = await fetch(client, builder, build)
            assert response.headers["content-type"] == "image/jpeg"  # a JPEG source stays JPEG (§9)
            assert size(response) == expected, builder.path(build)


# --- where the pixels come from: gravity, crop, extend, padding, rotation, flips ----------------
# The references are libvips operations on the fixture itself; the result must be much closer
# to the region imgproxy's geometry documents than to any other candidate.


def closest(result: Any, candidates: dict[str, Any]) -> str:
    diffs = {name: mean_abs_diff(result, img) for name, img in candidates.items()}
    best = min(diffs, key=lambda name: diffs[name])
    assert diffs[best] < 4 and all(diffs[best] < d / 2 for name, d in diffs.items() if name != best), diffs
    return best


@functools.cache
def photo_300() -> Any:
    """The photo fitted into 300×300: 300×245 (§10)."""
    return thumbnail(PHOTO, 300, 300)


async def fetch_image(client: httpx.AsyncClient, builder: Builder, build: Build) -> Any:
    return load((await fetch(client, builder, build)).content)


# fill 300×200 out of 300×245 drops 45 rows: `ce` takes RoundToEven(46/2) = 23 off the top, `so`
# 45, `no` 0, `no` with y_offset 10 takes 10; fp y=0.3 → RoundToEven(73.5) − 100 < 0 → 0 (§3.1, §10)
FILL_GRAVITY: dict[str, tuple[dict[str, Any], int]] = {
    "default-ce": ({}, 23),
    "no": ({"type": "no"}, 0),
    "so": ({"type": "so"}, 45),
    "no-y-offset": ({"type": "no", "x_offset": 0, "y_offset": 10}, 10),
    "fp": ({"type": "fp", "x": 0.5, "y": 0.3}, 0),
}
FILL_GRAVITY_BUILDS = {
    name: url({"resize": fill(300, 200), "format": "png", **({"gravity": gravity} if gravity else {})})
    for name, (gravity, _) in FILL_GRAVITY.items()
}


@pytest.mark.parametrize("name", FILL_GRAVITY)
async def test_fill_gravity_keeps_the_documented_rows(
    builder: Builder, client_factory: ClientFactory, name: str
) -> None:
    base = photo_300()
    candidates = {f"top={top}": base.crop(0, top, 300, 200) for top in (0, 10, 23, 45)}
    async with server(client_factory) as client:
        result = await fetch_image(client, builder, FILL_GRAVITY_BUILDS[name])
    assert (result.width, result.height) == (300, 200)
    assert closest(result, candidates) == f"top={FILL_GRAVITY[name][1]}"


# fill 200×245 out of 300×245: fp x=0.4 → left RoundToEven(120) − 100 = 20; ce → RoundToEven(101/2) = 50
FP_X = url({"resize": fill(200, 245), "gravity": {"type": "fp", "x": 0.4, "y": 0.5}, "format": "png"})
CE_X = url({"resize": fill(200, 245), "format": "png"})


async def test_focus_point_gravity_across(builder: Builder, client_factory: ClientFactory) -> None:
    base = photo_300()
    candidates = {f"left={left}": base.crop(left, 0, 200, 245) for left in (0, 20, 50, 100)}
    async with server(client_factory) as client:
        assert closest(await fetch_image(client, builder, FP_X), candidates) == "left=20"
        assert closest(await fetch_image(client, builder, CE_X), candidates) == "left=50"


# crop 1000×1000 before the resize, on the 1/4 shrink-on-load image (681×556, a 250×250 crop): ce is at
# RoundToEven((681−250+1)/2) = 216, RoundToEven(307/2) = 154, i.e. (864, 616) in the photo (§10 step detail)
CROP_GRAVITY = {"nowe": (0, 0), "soea": (1725, 1225), "noea": (1725, 0), "ce": (864, 616)}
CROP_BUILDS = {
    name: url(
        {"crop": {"width": 1000, "height": 1000, "gravity": {"type": name}}, "resize": fit(200, 200), "format": "png"}
    )
    for name in CROP_GRAVITY
}
CROP_FALLS_BACK_TO_GRAVITY = url(
    {"crop": {"width": 1000, "height": 1000}, "gravity": {"type": "soea"}, "resize": fit(200, 200), "format": "png"}
)


@pytest.mark.parametrize("name", CROP_GRAVITY)
async def test_crop_gravity(builder: Builder, client_factory: ClientFactory, name: str) -> None:
    photo = pyvips.Image.new_from_file(str(images_dir() / PHOTO))
    candidates = {k: photo.crop(left, top, 1000, 1000).resize(0.2) for k, (left, top) in CROP_GRAVITY.items()}
    async with server(client_factory) as client:
        result = await fetch_image(client, builder, CROP_BUILDS[name])
        assert (result.width, result.height) == (200, 200)
        assert closest(result, candidates) == name
        # without its own gravity the crop uses `gravity`
        assert closest(await fetch_image(client, builder, CROP_FALLS_BACK_TO_GRAVITY), candidates) == "soea"


# 300×245 extended to 300×300; the new area is transparent in a format with alpha (§7)
EXTEND_NORTH = url({"resize": fit(300, 300), "extend": {"extend": 1, "gravity": {"type": "no"}}, "format": "png"})
EXTEND_SOUTH = url({"resize": fit(300, 300, extend={"extend": 1, "gravity": {"type": "so"}}), "format": "png"})
EXAR_SOUTH = url(
    {"resize": fit(300, 300), "extend_aspect_ratio": {"extend": 1, "gravity": {"type": "so"}}, "format": "png"}
)
# ce: RoundToEven((300−245+1)/2) = 28 transparent rows on top (§10)
EXTEND_JPEG = url({"resize": fit(300, 300), "extend": {"extend": 1}})


def opaque_rows(img: Any) -> tuple[int, int]:
    """First and last row (inclusive) with any opaque pixel."""
    _, row_sums = img[3].project()
    rows = [y for y, (total,) in enumerate(row_sums.tolist()) if total > 0]
    return rows[0], rows[-1]


async def test_extend_gravity_and_transparency(builder: Builder, client_factory: ClientFactory) -> None:
    async with server(client_factory) as client:
        north = await fetch_image(client, builder, EXTEND_NORTH)
        south = await fetch_image(client, builder, EXTEND_SOUTH)
        exar = await fetch_image(client, builder, EXAR_SOUTH)
        jpeg = await fetch_image(client, builder, EXTEND_JPEG)
    assert (north.width, north.height, north.bands) == (300, 300, 4)
    assert opaque_rows(north) == (0, 244)
    assert opaque_rows(south) == (55, 299)
    assert opaque_rows(exar) == (55, 299)
    assert closest(north.crop(0, 0, 300, 245), {"photo": photo_300(), "flipped": photo_300().flipver()}) == "photo"
    # JPEG has no alpha: the added area is flattened onto white
    assert jpeg.bands == 3
    assert jpeg.crop(0, 0, 300, 24).avg() > 250 and jpeg.crop(0, 278, 300, 22).avg() > 250
    assert jpeg.crop(0, 30, 300, 240).avg() < 200


PAD_PNG = url({"resize": fit(300, 300), "padding": 10, "format": "png"})
PAD_RED = url({"resize": fit(300, 300), "padding": 10, "background": {"r": 255, "g": 0, "b": 0}})


async def test_padding_is_filled_with_the_background(builder: Builder, client_factory: ClientFactory) -> None:
    async with server(client_factory) as client:
        transparent = await fetch_image(client, builder, PAD_PNG)
        red = await fetch_image(client, builder, PAD_RED)
    assert (transparent.width, transparent.height) == (320, 265)
    assert transparent[3].crop(0, 0, 320, 10).max() == 0 and transparent[3].crop(0, 255, 320, 10).max() == 0
    assert transparent[3].crop(10, 10, 300, 245).min() == 255
    assert (red.width, red.height, red.bands) == (320, 265, 3)
    r, g, b = mean_rgb(red.crop(0, 0, 320, 8))
    assert r > 240 and g < 15 and b < 15


# user rotation is clockwise, then the flips (§6); 300×245 before
TURNS: dict[str, tuple[dict[str, Any], Any]] = {
    "rot90": ({"rotate": 90}, lambda img: img.rot90()),
    "rot180": ({"rotate": 180}, lambda img: img.rot180()),
    "rot270": ({"rotate": 270}, lambda img: img.rot270()),
    "flip-h": ({"flip": {"horizontal": True}}, lambda img: img.fliphor()),
    "flip-v": ({"flip": {"vertical": 1}}, lambda img: img.flipver()),
    "flip-both": ({"flip": {"horizontal": "t", "vertical": "t"}}, lambda img: img.rot180()),
    "rot90-flip-h": ({"rotate": 90, "flip": {"horizontal": True}}, lambda img: img.rot90().fliphor()),
}
TURN_BUILDS = {name: url({"resize": fit(300, 300), "format": "png", **opts}) for name, (opts, _) in TURNS.items()}


@pytest.mark.parametrize("name", TURNS)
async def test_rotate_and_flip_match_libvips(builder: Builder, client_factory: ClientFactory, name: str) -> None:
    base = photo_300()
    candidates = {"none": base} | {k: turn(base) for k, (_, turn) in TURNS.items() if k != "flip-both"}
    expected = TURNS[name][1](base)
    async with server(client_factory) as client:
        result = await fetch_image(client, builder, TURN_BUILDS[name])
    assert (result.width, result.height) == (expected.width, expected.height)
    same_shape = {k: img for k, img in candidates.items() if (img.width, img.height) == (result.width, result.height)}
    assert closest(result, same_shape) == ("rot180" if name == "flip-both" else name)


UPRIGHT = url({"width": 300, "format": "png"}, "local:///Landscape_6.jpg")
AS_STORED = url({"width": 300, "auto_rotate": False, "format": "png"}, "{fixtures}/Landscape_6.jpg")


async def test_auto_rotate_follows_the_exif_orientation(builder: Builder, client_factory: ClientFactory) -> None:
    upright = thumbnail("Landscape_6.jpg", 300, 300)  # libvips applies the orientation too
    stored = thumbnail("Landscape_6.jpg", 300, 400, no_rotate=True)
    async with server(client_factory) as client:
        turned = await fetch_image(client, builder, UPRIGHT)
        kept = await fetch_image(client, builder, AS_STORED)
    assert closest(turned, {"upright": upright, "rot180": upright.rot180(), "mirrored": upright.fliphor()}) == "upright"
    assert closest(kept, {"stored": stored, "rot180": stored.rot180(), "mirrored": stored.fliphor()}) == "stored"


# --- colours and filters -------------------------------------------------------------------

# with-alpha.png is (91, 0, 194) at alpha 168/255 everywhere: flattening gives c·a + bg·(1 − a)
ALPHA = "with-alpha.png"
A = 168 / 255
BG_RED = url({"background": "ff0000", "format": "png"}, f"local:///{ALPHA}")
BG_BLUE = url({"background": {"r": 0, "g": 0, "b": 255}, "format": "png"}, f"{{fixtures}}/{ALPHA}", "plain")
NO_BG_PNG = url({"format": "png"}, f"local:///{ALPHA}")
NO_BG_JPEG = url({"format": "jpg"}, f"local:///{ALPHA}")


def mix(bg: tuple[int, int, int]) -> tuple[float, float, float]:
    r, g, b = ((c * A + k * (1 - A)) for c, k in zip((91, 0, 194), bg, strict=True))
    return r, g, b


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        pytest.param(BG_RED, mix((255, 0, 0)), id="hex"),
        pytest.param(BG_BLUE, mix((0, 0, 255)), id="rgb"),
        pytest.param(NO_BG_JPEG, mix((255, 255, 255)), id="jpeg-flattens-on-white"),
    ],
)
async def test_background_flattens(
    builder: Builder, client_factory: ClientFactory, build: Build, expected: tuple[float, float, float]
) -> None:
    async with server(client_factory) as client:
        result = await fetch_image(client, builder, build)
        kept = await fetch_image(client, builder, NO_BG_PNG)
    assert result.bands == 3
    assert all(abs(got - want) < 3 for got, want in zip(mean_rgb(result), expected, strict=True)), mean_rgb(result)
    assert kept.bands == 4  # no background, a format with alpha: the alpha stays


PLAIN_PNG = url({"resize": fit(300, 300), "format": "png"})
BLUR = url({"resize": fit(300, 300), "blur": 5, "format": "png"})
SHARPEN = url({"resize": fit(300, 300), "sharpen": 3, "format": "png"})
PIXELATE = url({"resize": fit(300, 300), "pixelate": 10, "format": "png"})


async def test_blur_sharpen_pixelate(builder: Builder, client_factory: ClientFactory) -> None:
    async with server(client_factory) as client:
        plain = await fetch_image(client, builder, PLAIN_PNG)
        blurred = await fetch_image(client, builder, BLUR)
        sharpened = await fetch_image(client, builder, SHARPEN)
        pixelated = await fetch_image(client, builder, PIXELATE)
    for img in (blurred, sharpened, pixelated):
        assert (img.width, img.height) == (300, 245)
    # blur: a Gaussian blur of the result with that sigma
    assert detail(blurred) < detail(plain) / 3
    assert mean_abs_diff(blurred, plain.gaussblur(5)) < 2
    assert detail(sharpened) > detail(plain) * 1.1
    # pixelate: 10×10 blocks from the top-left corner, each one colour
    blocks = pixelated.crop(0, 0, 300, 240)
    assert (blocks - blocks.subsample(10, 10).zoom(10, 10)).abs().max() == 0
    assert mean_abs_diff(pixelated, plain) < 10 and detail(pixelated) < detail(plain)


# --- watermark (IMGPROXY_WATERMARK_DATA: red 40×20) on a flat grey 300×300 -------------------

GREY_BASE = {"background": "808080", "format": "png"}
WATERMARKS: dict[str, tuple[dict[str, Any], tuple[int, int, int, int]]] = {
    # compass positions: offsets inward from that edge
    "soea-offsets": ({"opacity": 1, "position": "soea", "x_offset": 10, "y_offset": 20}, (250, 260, 40, 20)),
    "nowe": ({"opacity": 1, "position": "nowe"}, (0, 0, 40, 20)),
    # scale 0.3 → fits a ScaleToEven(300·0.3) = 90 square, enlarging: 90×45
    "scaled": ({"opacity": 1, "position": "nowe", "scale": 0.3}, (0, 0, 90, 45)),
    # ce: RoundToEven((300−40+1)/2) = 130, RoundToEven((300−20+1)/2) = 140
    "centre": ({"opacity": 1}, (130, 140, 40, 20)),
    "tiled": ({"opacity": 1, "position": "re"}, (0, 0, 300, 300)),
}
WATERMARK_BUILDS = {
    name: url({**GREY_BASE, "watermark": wm}, "local:///full-transparent.png") for name, (wm, _) in WATERMARKS.items()
}
HALF_WATERMARK = url({**GREY_BASE, "watermark": {"opacity": 0.5}}, "local:///full-transparent.png")


@pytest.mark.parametrize("name", WATERMARKS)
async def test_watermark_position_and_scale(builder: Builder, client_factory: ClientFactory, name: str) -> None:
    async with server(client_factory) as client:
        result = await fetch_image(client, builder, WATERMARK_BUILDS[name])
    assert (result.width, result.height) == (300, 300)
    box = red_box(result)
    assert all(abs(got - want) <= 1 for got, want in zip(box, WATERMARKS[name][1], strict=True)), box
    if box != (0, 0, 300, 300):
        assert all(abs(v - 128) < 3 for v in result.getpoint((box[0] + box[2] + 5) % 300, (box[1] + box[3] + 5) % 300))


async def test_watermark_opacity(builder: Builder, client_factory: ClientFactory) -> None:
    async with server(client_factory) as client:
        result = await fetch_image(client, builder, HALF_WATERMARK)
    # half red over grey 128: (255 + 128) / 2, 128 / 2, 128 / 2
    inside = mean_rgb(result.crop(135, 145, 30, 10))
    assert all(abs(got - want) < 3 for got, want in zip(inside, (191.5, 64, 64), strict=True)), inside
    assert all(abs(v - 128) < 3 for v in mean_rgb(result.crop(0, 0, 100, 100)))


# --- metadata ------------------------------------------------------------------------------

TAGGED = "{generated}/tagged.jpg"  # EXIF Copyright, Artist and Make
META_DEFAULT = url({"width": 200}, TAGGED)
META_KEPT = url({"width": 200, "strip_metadata": False}, TAGGED, "plain")
META_NO_COPYRIGHT = url({"width": 200, "keep_copyright": 0}, TAGGED)
ICC_DEFAULT = url({"width": 300}, "local:///Landscape_6.jpg")
ICC_STRIPPED = url({"width": 300, "strip_color_profile": True}, "local:///Landscape_6.jpg")
ICC_KEPT = url({"width": 300, "strip_color_profile": "f"}, "local:///Landscape_6.jpg")


def exif_tags(img: Any) -> set[str]:
    return {f.removeprefix("exif-ifd0-") for f in img.get_fields() if f.startswith("exif-ifd0-")}


async def test_strip_metadata_and_keep_copyright(builder: Builder, client_factory: ClientFactory) -> None:
    async with server(client_factory) as client:
        default = await fetch_image(client, builder, META_DEFAULT)
        kept = await fetch_image(client, builder, META_KEPT)
        no_copyright = await fetch_image(client, builder, META_NO_COPYRIGHT)
    # defaults strip_metadata and keep_copyright: only the copyright notice and artist survive (§8.6)
    assert {"Copyright", "Artist"} <= exif_tags(default) and "Make" not in exif_tags(default)
    assert {"Copyright", "Artist", "Make"} <= exif_tags(kept)
    assert not exif_tags(no_copyright) & {"Copyright", "Artist", "Make"}


async def test_strip_color_profile(builder: Builder, client_factory: ClientFactory) -> None:
    """Landscape_6.jpg carries an Apple ICC profile: converted to sRGB and dropped unless scp is false."""
    async with server(client_factory) as client:
        default = await fetch_image(client, builder, ICC_DEFAULT)
        stripped = await fetch_image(client, builder, ICC_STRIPPED)
        kept = await fetch_image(client, builder, ICC_KEPT)
    assert "icc-profile-data" not in default.get_fields()
    assert "icc-profile-data" not in stripped.get_fields()
    source_icc = pyvips.Image.new_from_file(str(images_dir() / "Landscape_6.jpg")).get("icc-profile-data")
    assert kept.get("icc-profile-data") == source_icc


# thumbed.avif: a red 320×240 primary image with a blue 80×60 embedded thumbnail
THUMBNAIL = url({"enforce_thumbnail": 1, "format": "png"}, "{generated}/thumbed.avif")
PRIMARY = url({"format": "png"}, "{generated}/thumbed.avif")


async def test_enforce_thumbnail(builder: Builder, client_factory: ClientFactory) -> None:
    async with server(client_factory) as client:
        embedded = await fetch_image(client, builder, THUMBNAIL)
        primary = await fetch_image(client, builder, PRIMARY)
    assert (embedded.width, embedded.height) == (80, 60)
    assert mean_rgb(embedded)[2] > 150
    assert (primary.width, primary.height) == (320, 240)
    assert mean_rgb(primary)[0] > 150


# --- quality, format_quality, max_bytes ---------------------------------------------------------

QUALITY = {
    "default": url({"resize": fit(300, 300)}),
    "q10": url({"resize": fit(300, 300), "quality": 10}),
    "q90": url({"resize": fit(300, 300), "quality": 90}),
    "fq-jpg10": url({"resize": fit(300, 300), "format_quality": [{"format": "jpg", "quality": 10}]}),
    "fq-webp10": url({"resize": fit(300, 300), "format_quality": [{"format": "webp", "quality": 10}]}),
    "q90-over-fq": url({"resize": fit(300, 300), "quality": 90, "format_quality": [{"format": "jpg", "quality": 10}]}),
    "webp": url({"resize": fit(300, 300), "format": "webp"}),
    "webp-fq10": url(
        {"resize": fit(300, 300), "format": "webp", "format_quality": [{"format": "webp", "quality": 10}]}
    ),
}
MAX_BYTES = url({"resize": fit(600, 600), "max_bytes": 10000})
NO_MAX_BYTES = url({"resize": fit(600, 600)})


def close(a: int, b: int) -> bool:
    return abs(a - b) <= 0.02 * max(a, b)


async def test_quality_and_format_quality(builder: Builder, client_factory: ClientFactory) -> None:
    """Precedence q > fq (for the output format) > IMGPROXY_FORMAT_QUALITY > IMGPROXY_QUALITY (80)."""
    async with server(client_factory) as client:
        got = {name: (await fetch(client, builder, build)).content for name, build in QUALITY.items()}
    n = {name: len(data) for name, data in got.items()}
    assert n["q10"] < n["default"] / 2 < n["q90"] / 2
    assert close(n["fq-jpg10"], n["q10"])
    assert close(n["fq-webp10"], n["default"])  # a WebP quality does not touch a JPEG
    assert close(n["q90-over-fq"], n["q90"])
    assert n["webp-fq10"] < n["webp"] / 2
    reference = photo_300()
    assert mean_abs_diff(load(got["q10"]), reference) > mean_abs_diff(load(got["q90"]), reference)


async def test_max_bytes(builder: Builder, client_factory: ClientFactory) -> None:
    async with server(client_factory) as client:
        limited = await fetch(client, builder, MAX_BYTES)
        unlimited = await fetch(client, builder, NO_MAX_BYTES)
    assert len(unlimited.content) > 10000  # otherwise the check below proves nothing
    assert len(limited.content) <= 10000
    assert size(limited) == size(unlimited) == (600, 490)


# --- output formats ----------------------------------------------------------------------------

FORMATS = [
    ("png", "image/png", "png"),
    ("jpg", "image/jpeg", "jpeg"),
    ("webp", "image/webp", "webp"),
    ("avif", "image/avif", "heif"),
    ("gif", "image/gif", "gif"),
    ("tiff", "image/tiff", "tiff"),
]
FORMAT_BUILDS = {
    fmt: url({"resize": fit(300, 300), "format": fmt}, src, display)
    for (fmt, _, _), (src, display) in zip(FORMATS, forms(PHOTO) * 2, strict=False)
}


@pytest.mark.parametrize(("fmt", "content_type", "loader"), FORMATS)
async def test_output_format(
    builder: Builder, client_factory: ClientFactory, fmt: str, content_type: str, loader: str
) -> None:
    async with server(client_factory) as client:
        response = await fetch(client, builder, FORMAT_BUILDS[fmt])
    assert response.headers["content-type"] == content_type
    img = load(response.content)
    assert str(img.get("vips-loader")).startswith(loader)
    assert (img.width, img.height) == (300, 245)
    assert closest(img, {"photo": photo_300(), "flipped": photo_300().flipver()}) == "photo"


ICO = url({"resize": fit(300, 300), "format": "ico"})


async def test_ico_output(builder: Builder, client_factory: ClientFactory) -> None:
    """ICO is limited to 256 px: 300×245 becomes 256 × Round(245·256/300) = 256×209 (§7 fixSize)."""
    async with server(client_factory) as client:
        response = await fetch(client, builder, ICO)
    assert response.headers["content-type"] == "image/x-icon"
    data = response.content
    reserved, kind, count = struct.unpack_from("<HHH", data, 0)
    assert (reserved, kind, count) == (0, 1, 1)
    width, height, _, _, _, _, length, offset = struct.unpack_from("<BBBBHHII", data, 6)
    assert (width or 256, height or 256) == (256, 209)
    image = load(data[offset : offset + length])  # a PNG inside
    assert (image.width, image.height) == (256, 209)


SVG_FROM_RASTER = url({"format": "svg"})
SVG_PASSTHROUGH = url({"format": "svg"}, "local:///check.svg")
SVG_RASTERISED = url({"width": 50, "format": "png"}, "{fixtures}/check.svg")


async def test_svg(builder: Builder, client_factory: ClientFactory) -> None:
    async with server(client_factory) as client:
        await fetch(client, builder, SVG_FROM_RASTER, 422)  # only an SVG source can become SVG
        passthrough = await fetch(client, builder, SVG_PASSTHROUGH)
        assert passthrough.headers["content-type"].startswith("image/svg+xml")
        assert b"<svg" in passthrough.content
        assert size(await fetch(client, builder, SVG_RASTERISED)) == (50, 50)


# --- skip_processing -------------------------------------------------------------------------

SKIP_AS_BUILT = url({"skip_processing": ["jpg"], "resize": fit(300, 300)})
SKIP_WILD = url({"wild_options": [["skp", "jpg"]], "resize": fit(300, 300)})
SKIP_WILD_OTHER_FORMAT = url({"wild_options": [["skp", "jpg"]], "resize": fit(300, 300), "format": "png"})


async def test_skip_processing(builder: Builder, client_factory: ClientFactory) -> None:
    """The builder spells skip_processing ``sp:``, which imgproxy does not know (its aliases are skip_processing
    and skp): such a URL is an unknown option, 404, here as in imgproxy. ``skp`` through wild_options works."""
    assert "/sp:jpg/" in builder.path(SKIP_AS_BUILT)
    async with server(client_factory) as client:
        await fetch(client, builder, SKIP_AS_BUILT, 404)
        skipped = await fetch(client, builder, SKIP_WILD)
        assert skipped.headers["content-type"] == "image/jpeg"
        assert size(skipped) == (2725, 2225)  # the source as it is, despite the resize
        processed = await fetch(client, builder, SKIP_WILD_OTHER_FORMAT)  # skipped only for the same format
        assert processed.headers["content-type"] == "image/png"
        assert size(processed) == (300, 245)


RAW = [url({"raw": 1, "resize": fit(300, 300)}, src, display) for src, display in forms(PHOTO)]


async def test_raw_passes_the_source_through(builder: Builder, client_factory: ClientFactory) -> None:
    """raw: the source as it is, whatever the other options say."""
    async with server(client_factory) as client:
        for build in RAW:
            response = await fetch(client, builder, build)
            img = load(response.content)
            assert (img.width, img.height) == (2725, 2225)
            assert str(img.get("vips-loader")).startswith("jpeg")


# --- response headers: filename, return_attachment, expires; presets ---------------------------

SOON = int(time.time()) + 86400  # at import, so a day ahead: still capping IMGPROXY_TTL (a year) when tested
PAST = int(time.time()) - 60
HEADERS = {
    "default": (url({"width": 100}), f'inline; filename="{PHOTO.removesuffix(".jpg")}.jpg"'),
    "http-source": (url({"width": 100}, "{fixtures}/flowers.jpeg", "plain"), 'inline; filename="flowers.jpg"'),
    "filename": (url({"width": 100, "filename": {"name": "holiday"}}), 'inline; filename="holiday.jpg"'),
    "filename-encoded": (
        url({"width": 100, "format": "png", "filename": {"name": _b64url(b"holiday-2024"), "encoded": True}}),
        'inline; filename="holiday-2024.png"',
    ),
    "attachment": (
        url({"width": 100, "format": "webp", "return_attachment": 1}),
        f'attachment; filename="{PHOTO.removesuffix(".jpg")}.webp"',
    ),
    "attachment-named": (
        url({"width": 100, "return_attachment": "t", "filename": {"name": "holiday"}}, "{fixtures}/flowers.jpeg"),
        'attachment; filename="holiday.jpg"',
    ),
}


@pytest.mark.parametrize("name", HEADERS)
async def test_content_disposition(builder: Builder, client_factory: ClientFactory, name: str) -> None:
    build, expected = HEADERS[name]
    async with server(client_factory) as client:
        response = await fetch(client, builder, build)
    assert response.headers["content-disposition"] == expected
    assert response.headers["cache-control"] == "max-age=31536000, public"


EXPIRES_SOON = url({"width": 100, "expires": SOON})
EXPIRED = url({"width": 100, "expires": PAST}, "{fixtures}/flowers.jpeg")


async def test_expires(builder: Builder, client_factory: ClientFactory) -> None:
    async with server(client_factory) as client:
        response = await fetch(client, builder, EXPIRES_SOON)
        remaining = SOON - time.time()
        max_age = int(response.headers["cache-control"].removeprefix("max-age=").split(",")[0])
        assert remaining - 5 <= max_age <= remaining + 1  # capped by the expiry, not IMGPROXY_TTL
        expired = await fetch(client, builder, EXPIRED, 404)
        assert "cache-control" not in expired.headers


PRESETS = url({"preset": ["small", "webp"]})  # IMGPROXY_PRESETS: small=rs:fit:100:100, webp=f:webp
UNKNOWN_PRESET = url({"preset": ["nope"]})


async def test_presets(builder: Builder, client_factory: ClientFactory) -> None:
    async with server(client_factory) as client:
        response = await fetch(client, builder, PRESETS)
        # fit 100×100: shrink 27.25 → 100 × Round(2225/27.25 = 81.65)
        assert response.headers["content-type"] == "image/webp"
        assert size(response) == (100, 82)
        await fetch(client, builder, UNKNOWN_PRESET, 404)


# --- security options (only with IMGPROXY_ALLOW_SECURITY_OPTIONS; 403 otherwise) ---------------

ANIMATED = "local:///animated-loop-3.gif"  # 10 frames of 370×285
SECURITY: dict[str, tuple[Build, int]] = {
    "msr-too-low": (url({"max_src_resolution": 1}), 422),  # 2725×2225 = 6.06 MP
    "msr": (url({"max_src_resolution": 10, "resize": fit(100, 100)}), 200),
    "msfs-too-low": (url({"max_src_file_size": 1000}, f"{{fixtures}}/{PHOTO}"), 422),  # 829 183 bytes
    "msfs": (url({"max_src_file_size": 10_000_000, "resize": fit(100, 100)}, f"{{fixtures}}/{PHOTO}"), 200),
    "mafr-too-low": (url({"max_animation_frame_resolution": 0.01, "format": "gif"}, ANIMATED), 422),  # 0.105 MP
    "maf": (url({"max_animation_frames": 2, "format": "gif"}, ANIMATED), 200),
    "mrd": (url({"max_result_dimension": 100, "resize": fit(300, 300)}), 200),
}


@pytest.mark.parametrize("name", SECURITY)
async def test_security_options(builder: Builder, client_factory: ClientFactory, name: str) -> None:
    build, status = SECURITY[name]
    async with server(client_factory) as client:
        await fetch(client, builder, build, 403)
    async with server(client_factory, IMGPROXY_ALLOW_SECURITY_OPTIONS="true") as client:
        response = await fetch(client, builder, build, status)
    if name == "maf":  # only the first two frames are kept
        frames = pyvips.Image.new_from_buffer(response.content, "", n=-1)
        assert frames.get("n-pages") == 2 and (frames.width, frames.get("page-height")) == (370, 285)
    if name == "mrd":  # 300×245 scaled to fit 100: 100 × Round(245/3)
        assert size(response) == (100, 82)


# --- preserve_hdr, BMP output, and the one OSS feature this server lacks (JXL output) ---------

PRESERVE_HDR = url({"preserve_hdr": 1, "resize": fit(300, 300)})
BMP = url({"resize": fit(300, 300), "format": "bmp"})
JXL = url({"resize": fit(300, 300), "format": "jxl"})


async def test_preserve_hdr_is_accepted(builder: Builder, client_factory: ClientFactory) -> None:
    async with server(client_factory) as client:
        response = await fetch(client, builder, PRESERVE_HDR)
    assert size(response) == (300, 245)  # an 8-bit source stays as it is


async def test_bmp_output(builder: Builder, client_factory: ClientFactory) -> None:
    async with server(client_factory) as client:
        response = await fetch(client, builder, BMP)
    assert response.headers["content-type"] == "image/bmp"
    data = response.content
    assert data[:2] == b"BM"
    width, height = struct.unpack_from("<ii", data, 18)  # BITMAPINFOHEADER; negative height: top-down
    assert (width, abs(height)) == (300, 245)


async def test_jxl_output(builder: Builder, client_factory: ClientFactory) -> None:
    async with server(client_factory) as client:
        response = await fetch(client, builder, JXL)
    assert response.headers["content-type"] == "image/jxl"
    assert response.content[:2] == b"\xff\x0a" or response.content[4:12] == b"JXL \r\n\x87\n"


# --- imgproxy Pro options the builder can express: refused with 404, never silently ignored -----

PRO: dict[str, dict[str, Any]] = {
    "resizing_algorithm": {"resizing_algorithm": "lanczos2"},
    "background_alpha": {"background_alpha": 0.5},
    "adjust": {"adjust": {"brightness": 10, "contrast": 0.9, "saturation": 1.1}},
    "brightness": {"brightness": 10},
    "contrast": {"contrast": 0.5},
    "saturation": {"saturation": 0.5},
    "monochrome": {"monochrome": {"intensity": 0.5}},
    "duotone": {"duotone": {"intensity": 1, "color1": "000000", "color2": "ffffff"}},
    "colorize": {"colorize": {"opacity": 0.5}},
    "gradient": {"gradient": {"opacity": 0.5}},
    "unsharp_masking": {"unsharp_masking": {"mode": "always"}},
    "blur_areas": {"blur_areas": {"sigma": 2, "areas": [{"left": 0, "top": 0, "width": 0.5, "height": 0.5}]}},
    "progressive_blur": {"progressive_blur": {"sigma": 2}},
    "watermark_url": {"watermark_url": _b64url(b"http://example.com/wm.png")},
    "watermark_text": {"watermark_text": _b64url(b"hello")},
    "watermark_size": {"watermark_size": {"width": 10, "height": 10}},
    "watermark_shadow": {"watermark_shadow": 2},
    "watermark-chessboard": {"watermark": {"opacity": 1, "position": "ch"}},
    "style": {"style": _b64url(b"svg{}")},
    "dpi": {"dpi": 300},
    "color_profile": {"color_profile": "srgb"},
    "jpeg_options": {"jpeg_options": {"progressive": True}},
    "png_options": {"png_options": {"interlaced": True}},
    "webp_options": {"webp_options": "lossless"},
    "avif_options": {"avif_options": "on"},
    "page": {"page": 1},
    "pages": {"pages": 2},
    "disable_animation": {"disable_animation": 1},
    "video_thumbnail_keyframes": {"video_thumbnail_keyframes": 1},
    "video_thumbnail_animation": {
        "video_thumbnail_animation": {"step": 1, "delay": 100, "frames": 3, "frame_width": 100, "frame_height": 100}
    },
    "video_thumbnail_tile": {
        "video_thumbnail_tile": {"step": 1, "columns": 2, "rows": 2, "tile_width": 100, "tile_height": 100}
    },
    "fallback_image_url": {"fallback_image_url": _b64url(b"http://example.com/fallback.png")},
    "crop_aspect_ratio": {"crop_aspect_ratio": {"aspect_ratio": 1.5}},
    "objects_position": {"objects_position": {"type": "ce"}},
    "crop_objects": {"crop_objects": {"scale_factor": 1.2}},
    "bypass_cache": {"bypass_cache": 1},
    "cache_tags": {"cache_tags": ["products"]},
    "format-mp4": {"format": "mp4"},
    "format-pdf": {"format": "pdf"},
}
PRO_BUILDS = {name: url({"width": 100, **options}) for name, options in PRO.items()}
# Pro options this server implements (issue 12: faces, auto-quality, best format), as the builder writes them.
IMPLEMENTED_PRO: dict[str, dict[str, Any]] = {
    "blur_detections": {"blur_detections": {"sigma": 2}},
    "draw_detections": {"draw_detections": {"draw": 1}},
    "autoquality": {"autoquality": {"method": "dssim"}},
    "gravity-obj": {"gravity": {"type": "obj", "class_names": ["face"]}},
    "crop-gravity-obj": {"crop": {"width": 100, "height": 100, "gravity": {"type": "obj", "class_names": ["face"]}}},
    "gravity-objw": {"gravity": {"type": "objw", "class_weights": [{"class": "face", "weight": 2}]}},
    "extend-obj": {"extend": {"extend": 1, "gravity": {"type": "obj", "class_names": ["face"]}}},
    "format-best": {"format": "best"},
}
IMPLEMENTED_BUILDS = {name: url({"width": 100, **options}) for name, options in IMPLEMENTED_PRO.items()}


VTS_BUILD = url({"width": 100, "video_thumbnail_second": 1})


async def test_video_thumbnail_second_is_understood(builder: Builder, client_factory: ClientFactory) -> None:
    """The Pro option this server implements (video stills): accepted, and a no-op for an image source."""
    async with server(client_factory) as client:
        response = await client.get(builder.path(VTS_BUILD))
    assert response.status_code == 200, response.text


async def test_pro_options_are_refused(builder: Builder, client_factory: ClientFactory) -> None:
    """Every Pro-only option the builder can write is 404 "Invalid URL", as in imgproxy OSS (one app for all)."""
    wrong = []
    async with server(client_factory) as client:
        for name, build in PRO_BUILDS.items():
            response = await client.get(builder.path(build))
            if response.status_code != 404 or response.text != "Invalid URL":
                wrong.append(f"{name}: {builder.path(build)} → {response.status_code} {response.text[:60]!r}")
    assert not wrong, "\n".join(wrong)


async def test_implemented_pro_options_work(builder: Builder, client_factory: ClientFactory) -> None:
    """The Pro options this server implements answer an image 100 px wide, written by the official builder."""
    wrong = []
    async with server(client_factory) as client:
        for name, build in IMPLEMENTED_BUILDS.items():
            response = await client.get(builder.path(build))
            if response.status_code != 200 or load(response.content).width != 100:
                wrong.append(f"{name}: {builder.path(build)} → {response.status_code} {response.text[:60]!r}")
    assert not wrong, "\n".join(wrong)


# --- /info (generateImageInfoUrl: imgproxy Pro's /info/<signature>/<options>/<source> form) -------

INFO = [url(None, src, display, info=True) for src, display in forms(PHOTO)]
INFO_CB_EXP = url({"cachebuster": "v2", "expires": SOON}, info=True)
INFO_EXPIRED = url({"expires": PAST}, info=True)
PRO_INFO: dict[str, dict[str, Any]] = {
    "size": {"size": 1},
    "format": {"format": 1},
    "dimensions": {"dimensions": 1},
    "exif": {"exif": 1},
    "iptc": {"iptc": 1},
    "xmp": {"xmp": 1},
    "video_meta": {"video_meta": 1},
    "detect_objects": {"detect_objects": 1},
    "classify": {"classify": {"top_k": 3}},
    "palette": {"palette": 4},
    "average": {"average": {"average": 1}},
    "dominant_colors": {"dominant_colors": {"dominant_colors": 1}},
    "blurhash": {"blurhash": {"x_components": 4, "y_components": 3}},
    "thumb_hash": {"thumb_hash": 1},
    "perceptual_hash": {"perceptual_hash": 1},
    "calc_hashsums": {"calcHashsums": ["md5"]},
    "pages_number": {"pages_number": 1},
    "page": {"page": 0},
    "crop": {"crop": {"width": 10, "height": 10}},
    "preset": {"preset": ["small"]},
}
PRO_INFO_BUILDS = {name: url(options, info=True) for name, options in PRO_INFO.items()}


async def test_info_urls(builder: Builder, client_factory: ClientFactory) -> None:
    async with server(client_factory) as client:
        for build in INFO:
            path = builder.path(build)
            assert path.startswith("/info/")
            response = await fetch(client, builder, build)
            assert response.headers["content-type"] == "application/json"
            facts = response.json()
            assert (facts["width"], facts["height"], facts["format"]) == (2725, 2225, "jpeg")
        response = await fetch(client, builder, INFO_CB_EXP)
        remaining = SOON - time.time()
        max_age = int(response.headers["cache-control"].removeprefix("max-age=").split(",")[0])
        assert remaining - 5 <= max_age <= remaining + 1
        await fetch(client, builder, INFO_EXPIRED, 404)


async def test_info_options_are_refused(builder: Builder, client_factory: ClientFactory) -> None:
    """The info options the builder writes are imgproxy Pro's: this /info takes only cachebuster and expires."""
    wrong = []
    async with server(client_factory) as client:
        for name, build in PRO_INFO_BUILDS.items():
            response = await client.get(builder.path(build))
            if response.status_code != 404:
                wrong.append(f"{name}: {builder.path(build)} → {response.status_code} {response.text[:60]!r}")
    assert not wrong, "\n".join(wrong)
