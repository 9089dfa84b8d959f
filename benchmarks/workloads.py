"""Workloads: which operations each one requests, in what order, and every system's URL for them.

Every system gets the same sequence of operations (source image, width, format, quality);
only the URL syntax differs:

- this server: ``/insecure/rs:fit:<w>:0/q:<q>/plain/local:///<image>@<ext>``
- thumbor:     ``/unsafe/<w>x0/filters:quality(<q>):format(<fmt>):no_upscale()/<image>``
- ipx:         ``/w_<w>,q_<q>,f_<fmt>/<image>``

All three fit the source to width ``w`` keeping the aspect ratio and never enlarge.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PHOTO = "2569067123_aca715a2ee_o.jpg"  # 2725x2225 baseline JPEG, sharp's benchmark photo
QUALITY = {"jpeg": 80, "webp": 79, "avif": 63, "jxl": 77}
SERVER_SUFFIX = {"jpeg": "jpg", "webp": "webp", "avif": "avif", "jxl": "jxl"}
# Sources no shared fixture provides, made from PHOTO by prepare_root (benchmarks/codec_seeds.py).
CODEC_DIR = "codecs"
HEIC_SOURCE = f"{CODEC_DIR}/photo.heic"  # PHOTO as an 8-bit HEVC HEIC, full size
VIDEO_SOURCE = f"{CODEC_DIR}/clip.mp4"  # 2 s of 1280x720 H.264 panning over PHOTO, keyframe every 5 frames

# 400 distinct widths in a fixed shuffled order: any prefix of the run (a slow system gets
# through fewer requests) asks for the same mix of sizes as the whole list.
W1_WIDTHS = tuple(random.Random(1).sample(range(200, 600), 400))
W3_WIDTH = 272  # the bare endpoint serves this same result (about 12 KB)
COLD_COUNT = 256  # byte-distinct copies of the photo for W1cold
COLD_DIR = "cold"

# W4: a Zipf mix over fixtures x variants. The fixtures are every shared image that all
# three servers can turn into a JPEG/WebP/AVIF; left out on purpose: the broken files
# (truncated.*, corrupt-header.jpg), the decompression bomb (65536-uint32-limit.png),
# giant-image.jpg (280 MP, over every server's pixel limit) and the SVGs (ipx never
# rasterises SVG, so the operation would not be the same).
W4_FIXTURES = (
    "16-bit-grey-alpha.png",
    PHOTO,
    "320x240.jpg",
    "4.webp",
    "Channel_digital_image_CMYK_color.jpg",
    "G31D.TIF",
    "Landscape_1.jpg",
    "Landscape_3.jpg",
    "Landscape_6.jpg",
    "Landscape_8.jpg",
    "Portrait_1.jpg",
    "Portrait_3.jpg",
    "Portrait_6.jpg",
    "Portrait_8.jpg",
    "animated-loop-3.gif",
    "animated-loop-3.webp",
    "concert.jpg",
    "embedgravitybird.png",
    "flowers.jpeg",
    "gamma_dalai_lama_gray.jpg",
    "p3.png",
    "rotating-squares.gif",
    "sdr_cosmos12920_cicp1-13-6_yuv444_full_qp10.avif",
    "trim-mc.png",
    "with-alpha.png",
)
W4_WIDTHS = tuple(64 + 16 * i for i in range(67))  # 64..1120: 67 widths x 3 formats = 201 variants
W4_FORMATS = ("jpeg", "webp", "avif")
W4_ZIPF_S = 1.0
W4_LENGTH = 50_000
W4_SEED = 20240611

CYCLE = "{cycle}"  # replaced by the Lua script with how often the list has wrapped


@dataclass(frozen=True, slots=True)
class Op:
    image: str  # path under the fixtures root
    width: int
    fmt: str  # jpeg | webp | avif | jxl

    @property
    def quality(self) -> int:
        return QUALITY[self.fmt]


def server_path(op: Op, cachebuster: str | None = None) -> str:
    cb = f"cb:{cachebuster}/" if cachebuster else ""
    return f"/insecure/{cb}rs:fit:{op.width}:0/q:{op.quality}/plain/local:///{op.image}@{SERVER_SUFFIX[op.fmt]}"


def thumbor_path(op: Op, cachebuster: str | None = None) -> str:
    del cachebuster  # thumbor runs without result storage for the cache-miss workloads
    return f"/unsafe/{op.width}x0/filters:quality({op.quality}):format({op.fmt}):no_upscale()/{op.image}"


def ipx_path(op: Op, cachebuster: str | None = None) -> str:
    del cachebuster  # ipx has no result cache
    return f"/w_{op.width},q_{op.quality},f_{op.fmt}/{op.image}"


PATH_BUILDERS: dict[str, Callable[[Op, str | None], str]] = {
    "server": server_path,
    "thumbor": thumbor_path,
    "ipx": ipx_path,
    "bare": server_path,  # the bare endpoint answers any path with the same bytes
    "floor": server_path,  # benchmarks/floor_app.py reads this server's W1/W1cold paths
}


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    title: str
    systems: tuple[str, ...]
    kind: str  # miss | cold | hit | mix
    fmt: str = "jpeg"
    server_env: dict[str, str] = field(default_factory=dict)
    source: str = PHOTO  # what the cache-miss workloads read

    @property
    def cache_busting(self) -> bool:
        """Every request must miss any result cache (the server gets a per-request cachebuster)."""
        return self.kind in ("miss", "cold")

    def ops(self) -> list[Op]:
        if self.kind == "miss":
            return [Op(self.source, w, self.fmt) for w in W1_WIDTHS]
        if self.kind == "cold":
            # lcm(256, 400) entries: every source file comes back only after 255 others.
            n = COLD_COUNT * len(W1_WIDTHS) // _gcd(COLD_COUNT, len(W1_WIDTHS))
            return [Op(cold_name(i % COLD_COUNT), W1_WIDTHS[i % len(W1_WIDTHS)], self.fmt) for i in range(n)]
        if self.kind == "hit":
            return [Op(PHOTO, W3_WIDTH, "jpeg")]
        if self.kind == "mix":
            return zipf_ops()
        raise ValueError(self.kind)

    def warmup_ops(self) -> list[Op]:
        if self.kind == "mix":
            # Odd widths never occur in W4 (all multiples of 16): warming up primes no cache entry.
            return [Op(PHOTO, w, "jpeg") for w in W1_WIDTHS if w % 2]
        return self.ops()

    def paths(self, system: str, token: str, warmup: bool = False) -> list[str]:
        """The request paths for ``system``; ``token`` keeps runs apart in any result cache."""
        build = PATH_BUILDERS[system]
        if warmup:
            if self.kind == "hit":
                return [build(op, None) for op in self.warmup_ops()]
            return [build(op, f"{token}w-{CYCLE}") for op in self.warmup_ops()]
        if self.cache_busting:
            return [build(op, f"{token}-{CYCLE}") for op in self.ops()]
        return [build(op, None) for op in self.ops()]


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def cold_name(i: int) -> str:
    return f"{COLD_DIR}/photo-{i:03d}.jpg"


def zipf_ops(length: int = W4_LENGTH, seed: int = W4_SEED) -> list[Op]:
    """A fixed, reproducible Zipf(s=1) sequence over every fixture x variant pair."""
    keys = [Op(image, w, fmt) for image in W4_FIXTURES for w in W4_WIDTHS for fmt in W4_FORMATS]
    rng = random.Random(seed)
    rng.shuffle(keys)  # popularity rank is unrelated to image, width or format
    weights = [1.0 / (rank**W4_ZIPF_S) for rank in range(1, len(keys) + 1)]
    return rng.choices(keys, weights=weights, k=length)


def ideal_hit_ratio(ops: Sequence[Op], requests: int) -> float:
    """Share of the first ``requests`` requests (wrapping) that repeat an earlier one: an unbounded cache's."""
    if requests <= 0 or not ops:
        return 0.0
    seen: set[Op] = set()
    repeats = 0
    for i in range(requests):
        op = ops[i % len(ops)]
        if op in seen:
            repeats += 1
        else:
            seen.add(op)
    return repeats / requests


ALL_SYSTEMS = ("ceiling", "server", "thumbor", "ipx", "bare", "floor")
DEFAULT_SYSTEMS = ALL_SYSTEMS[:5]  # the floor is asked for by name: it explains a gap, it is no peer
_PROCESSING = ("ceiling", "server", "thumbor", "ipx")
_MISSES = (*_PROCESSING, "floor")  # the floor serves W1 and W1cold's operation only
_CODECS = ("ceiling", "server")  # formats the peers do not take the same way: against the same-library loop

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("W1", "cache-miss JPEG q80, width 200-599", _MISSES, "miss", "jpeg"),
        Workload("W2-webp", "cache-miss WebP q79, width 200-599", _PROCESSING, "miss", "webp"),
        Workload("W2-avif", "cache-miss AVIF q63, width 200-599", _PROCESSING, "miss", "avif"),
        Workload("W3", f"cache hit: one URL (width {W3_WIDTH}, JPEG q80)", ("server", "bare"), "hit"),
        Workload("W4", "Zipf mix: 25 fixtures x 201 variants", ("server", "thumbor", "ipx"), "mix"),
        Workload(
            "W1cold",
            f"W1 over {COLD_COUNT} byte-distinct source files, intermediate reuse off",
            _MISSES,
            "cold",
            "jpeg",
            server_env={"IMGPROXY_INTERMEDIATE_CACHE_SIZE": "0"},
        ),
        Workload(
            "W5-heic", "cache-miss HEIC (HEVC) source -> JPEG q80, width 200-599", _CODECS, "miss", source=HEIC_SOURCE
        ),
        Workload("W5-jxl", "cache-miss JPEG -> JPEG XL q77 effort 4, width 200-599", _CODECS, "miss", "jxl"),
        Workload(
            "W5-video",
            "cache-miss MP4 (H.264 720p) first keyframe -> JPEG q80, width 200-599",
            _CODECS,
            "miss",
            server_env={"IMGPROXY_ENABLE_VIDEO_THUMBNAILS": "true"},
            source=VIDEO_SOURCE,
        ),
    )
}
ALIASES = {"W2": ("W2-webp", "W2-avif"), "W5": ("W5-heic", "W5-jxl", "W5-video")}


def select(names: Sequence[str]) -> list[Workload]:
    chosen: list[Workload] = []
    for name in names:
        for real in ALIASES.get(name, (name,)):
            if real not in WORKLOADS:
                raise ValueError(f"unknown workload {name!r} (known: {', '.join([*WORKLOADS, *ALIASES])})")
            if WORKLOADS[real] not in chosen:
                chosen.append(WORKLOADS[real])
    return chosen


def _codec_sources(shared: Path, root: Path) -> None:
    """The W5 sources, made once per root (a full-size HEVC encode takes a few seconds)."""
    (root / CODEC_DIR).mkdir(exist_ok=True)
    heic, clip = root / HEIC_SOURCE, root / VIDEO_SOURCE
    if heic.exists() and clip.exists():
        return
    from benchmarks import codec_seeds

    photo = (shared / PHOTO).read_bytes()
    if not heic.exists():
        heic.write_bytes(codec_seeds.heic(photo, width=4096, quality=80))
    if not clip.exists():
        clip.write_bytes(codec_seeds.clip(photo, width=1280))


def prepare_root(shared: Path, root: Path, cold: bool = True) -> Path:
    """One fixtures root for every system: the shared images plus (``cold``) the W1cold copies.

    Copies, not symlinks (this server refuses links that leave its root). Each cold copy
    carries a different JPEG comment, so no cache keyed by path or by content can match.
    """
    root.mkdir(parents=True, exist_ok=True)
    for src in sorted(shared.iterdir()):
        dest = root / src.name
        if src.is_file() and (not dest.exists() or dest.stat().st_size != src.stat().st_size):
            dest.write_bytes(src.read_bytes())
    _codec_sources(shared, root)
    if not cold:
        return root
    (root / COLD_DIR).mkdir(exist_ok=True)
    photo = (shared / PHOTO).read_bytes()
    for i in range(COLD_COUNT):
        dest = root / cold_name(i)
        if dest.exists():
            continue
        comment = f"imgproxy-py benchmark copy {i:03d}".encode()
        segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
        dest.write_bytes(photo[:2] + segment + photo[2:])
    return root
