"""Hostile inputs, built at test time from the shared fixtures and by hand with ``struct``.

Every case names the file it is served as (the extension may lie), the URL options, the
status the server must answer with and, for a 200, why the input is in fact a valid image.
Every case has exactly one right answer, bit-flipped files included (FLIPPED says which).
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from imgproxy_py.processing import ico, vips
from tests.support import fixture_path

SOURCES = {
    "jpeg": "320x240.jpg",
    "png": "trim-mc.png",
    "webp": "4.webp",
    "gif": "rotating-squares.gif",
    "avif": "sdr_cosmos12920_cicp1-13-6_yuv444_full_qp10.avif",
}
EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp", "gif": "gif", "avif": "avif"}
PAYLOAD_HTML = b"<html><body><script>alert('polyglot')</script></body></html>"
PAYLOAD_JS = b"*/=1;alert('polyglot');/*"


@dataclass(frozen=True, slots=True)
class Case:
    name: str  # file name in the served root
    data: bytes
    status: int
    options: str = "rs:fit:100:100"
    suffix: str = ""  # e.g. "@png": rasterise an SVG
    why: str = ""  # why a 200 is right
    payload: bytes = b""  # must never come back in a 200 body
    max_pixels: int = 0  # a 200's width × height must not exceed this (0: not checked)

    @property
    def path(self) -> str:
        return f"/insecure/{self.options}/plain/local:///{self.name}{self.suffix}"

    @property
    def id(self) -> str:
        extra = "" if self.options == "rs:fit:100:100" else f"[{self.options}]"
        return f"{self.name}{self.suffix}{extra}"


def fixture(kind: str) -> bytes:
    return fixture_path(SOURCES[kind]).read_bytes()


# --- format surgery --------------------------------------------------------------------------


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def small_png(bits: int = 8, bands: int = 4, side: int = 64) -> bytes:
    """A flat ``side``×``side`` PNG of the given depth and bands."""
    img = vips.Image.black(side, side, bands=bands) + (1000 if bits == 16 else 100)
    img = img.cast("ushort" if bits == 16 else "uchar")
    interpretation = ("rgb16" if bits == 16 else "srgb") if bands >= 3 else ("grey16" if bits == 16 else "b-w")
    return bytes(img.copy(interpretation=interpretation).pngsave_buffer())


def png_with_size(data: bytes, width: int, height: int) -> bytes:
    """The PNG with its IHDR rewritten (and its CRC fixed): the header lies, the pixels do not."""
    assert data[12:16] == b"IHDR"
    ihdr = png_chunk(b"IHDR", struct.pack(">II", width, height) + data[24:29])
    return data[:8] + ihdr + data[33:]


def jpeg_frame_offset(data: bytes) -> int:
    """Offset of the SOFn marker of the main image (the EXIF thumbnail's is inside APP1, skipped)."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError(f"not a marker at {i}")
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return i
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    raise ValueError("no SOF marker")


def jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    i = jpeg_frame_offset(data)
    out = bytearray(data)
    out[i + 5 : i + 9] = struct.pack(">HH", height, width)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class GifParts:
    header: bytes  # signature, logical screen descriptor, global colour table
    blocks: list[bytes]  # extensions and images, each complete
    trailer: bytes


def gif_parts(data: bytes) -> GifParts:
    """Split a GIF into its header, its blocks (extensions, image descriptors with data) and trailer."""
    flags = data[10]
    i = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    header, blocks = data[:i], []
    while data[i] != 0x3B:
        start = i
        if data[i] == 0x21:  # extension: introducer, label, sub-blocks
            i += 2
        elif data[i] == 0x2C:  # image descriptor (+ local colour table) + LZW minimum code size
            local = data[i + 9]
            i += 10 + (3 * 2 ** ((local & 7) + 1) if local & 0x80 else 0) + 1
        else:
            raise ValueError(f"unexpected GIF block {data[i]:#x} at {i}")
        while data[i]:
            i += data[i] + 1
        i += 1
        blocks.append(data[start:i])
    return GifParts(header, blocks, data[i:])


def gif_comment(text: bytes) -> bytes:
    chunks = [text[k : k + 255] for k in range(0, len(text), 255)]
    return b"\x21\xfe" + b"".join(bytes([len(c)]) + c for c in chunks) + b"\x00"


def many_frame_gif(width: int, height: int, frames: int) -> bytes:
    """An animated GIF of ``frames`` full frames, alternating two colours (built by repeating blocks)."""
    import pyvips  # here, not at the top: imgproxy_py.processing.vips must set VIPS_CONCURRENCY first

    pair = vips.Image.black(width, height * 2).draw_rect(255, 0, height, width, height, fill=True)
    pair = pair.copy()
    pair.set_type(pyvips.GValue.gint_type, "page-height", height)
    parts = gif_parts(bytes(pair.gifsave_buffer(effort=1)))
    frame_starts = [k for k, b in enumerate(parts.blocks) if b[0] == 0x2C]
    graphic = [k for k, b in enumerate(parts.blocks) if b[:2] == b"\x21\xf9"]
    assert len(frame_starts) == 2, "expected two frames"
    first = b"".join(parts.blocks[: frame_starts[0] + 1])  # NETSCAPE loop, GCE, frame A
    second_start = max([k for k in graphic if k > frame_starts[0]], default=frame_starts[1])
    second = b"".join(parts.blocks[second_start : frame_starts[1] + 1])
    first_gce = b"".join(b for b in parts.blocks[: frame_starts[0]] if b[:2] == b"\x21\xf9")
    frame_a = first_gce + parts.blocks[frame_starts[0]]
    body = first + second + (frame_a + second) * ((frames - 2) // 2)
    return parts.header + body + parts.trailer


def many_frame_webp(width: int, height: int, frames: int) -> bytes:
    import pyvips  # see many_frame_gif

    xyz = vips.Image.xyz(width, height * frames)
    strip = ((xyz[1] // height) % 2 * 255).cast("uchar")  # alternate black and white frames
    strip = strip.bandjoin([strip, strip]).copy(interpretation="srgb")
    strip.set_type(pyvips.GValue.gint_type, "page-height", height)
    return bytes(strip.webpsave_buffer(effort=0, lossless=True))


def webp_with_canvas(data: bytes, width: int, height: int) -> bytes:
    """An extended (VP8X) WebP with its canvas size rewritten (24-bit fields, stored minus one)."""
    assert data[12:16] == b"VP8X", "needs an extended WebP"
    out = bytearray(data)
    out[24:30] = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return bytes(out)


def avif_with_size(data: bytes, width: int, height: int) -> bytes:
    """Every ``ispe`` (image spatial extent) property rewritten: what libheif reports as the size."""
    out = bytearray(data)
    at = out.find(b"ispe")
    assert at > 0, "no ispe box"
    while at > 0:
        out[at + 8 : at + 16] = struct.pack(">II", width, height)  # after the version/flags word
        at = out.find(b"ispe", at + 4)
    return bytes(out)


# The answer to each bit-flipped header (flipped() is seeded, so the bytes are fixed): a 200
# only where the flips land on fields no decoder can check, said here byte by byte.
FLIPPED: dict[tuple[str, int], tuple[int, str]] = {
    ("jpeg", 0): (200, "bytes 5, 49, 62: the APP0 length low byte (still inside the segment) and two DQT values"),
    ("jpeg", 1): (200, "bytes 17, 32, 63: the JFIF vertical density and two DQT values"),
    ("jpeg", 2): (422, ""),  # byte 7 breaks the JFIF header libjpeg parses
    ("jpeg", 3): (200, "bytes 8, 30, 47: the JFIF identifier (APP0 is then just skipped) and two DQT values"),
    ("png", 0): (422, ""),  # byte 5 is in the PNG signature
    ("png", 1): (422, ""),  # byte 17 makes the width 131272, over the 65535 side limit
    ("png", 2): (422, ""),  # byte 7 is in the PNG signature
    ("png", 3): (422, ""),  # bytes 8, 30: the IHDR length and CRC
    ("webp", 0): (422, ""),
    ("webp", 1): (422, ""),
    ("webp", 2): (422, ""),  # bytes 7, 10: the RIFF size and the WEBP tag
    ("webp", 3): (422, ""),  # byte 8: the WEBP tag
    ("gif", 0): (422, ""),  # byte 5: "GIF89a" becomes "GIF89q"
    ("gif", 1): (200, "bytes 17, 32, 63: three global palette entries (other colours, same image)"),
    ("gif", 2): (200, "bytes 7, 10, 21: the logical screen width (frames fit), colour resolution, a palette entry"),
    ("gif", 3): (200, "bytes 8, 30, 47: the logical screen height (80 to 81) and two palette entries"),
    ("avif", 0): (422, ""),  # byte 5 is in the ftyp box size/type
    ("avif", 1): (422, ""),
    ("avif", 2): (422, ""),  # byte 7: the ftyp box type
    ("avif", 3): (422, ""),  # byte 8: the major brand
}


def flipped(data: bytes, seed: int, flips: int = 3, within: int = 64) -> bytes:
    rng = random.Random(seed)
    out = bytearray(data)
    for _ in range(flips):
        out[rng.randrange(min(within, len(out)))] ^= 1 << rng.randrange(8)
    return bytes(out)


def zip_payload() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("evil.js", "alert('polyglot')")
    return buffer.getvalue()


# --- a progressive JPEG with the longest valid scan script ---------------------------------------


class _Bits:
    """MSB-first bit writer with JPEG byte stuffing; pads the last byte with 1 bits."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.count = 0

    def put(self, code: int, length: int) -> None:
        for shift in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((code >> shift) & 1)
            self.count += 1
            if self.count == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)
                self.acc = self.count = 0

    def flush(self) -> bytes:
        while self.count:
            self.put(1, 1)
        return bytes(self.out)


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def many_scan_jpeg(width: int, height: int, components: int = 1) -> bytes:
    """A uniform grey progressive JPEG whose scan script is as long as the standard allows.

    Each component gets a DC scan, then every AC coefficient on its own (Ss = Se) in a first
    scan at Al = 13 and thirteen refinement scans down to Al = 0: 1 + 63 × 14 = 883 scans per
    component, each a few bytes (end-of-band runs cover every block), but each one makes the
    decoder walk the whole coefficient buffer. Nothing here is malformed.
    """
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    out = bytearray(b"\xff\xd8")
    out += _segment(0xDB, b"\x00" + bytes([1] * 64))
    comps = b"".join(bytes([c + 1, 0x11, 0]) for c in range(components))
    out += _segment(0xC2, struct.pack(">BHHB", 8, height, width, components) + comps)
    out += _segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00")  # DC: category 0, code "0"
    out += _segment(0xC4, b"\x10" + bytes([0, 0, 0, 15] + [0] * 12) + bytes(r << 4 for r in range(15)))  # EOB0..14

    def sos(component: int, ss: int, se: int, ah: int, al: int) -> bytes:
        return _segment(0xDA, bytes([1, component + 1, 0, ss, se, (ah << 4) | al]))

    dc = _Bits()
    for _ in range(blocks):
        dc.put(0, 1)
    dc_data = dc.flush()
    ac = _Bits()
    left = blocks
    while left:  # EOBr covers 2**r .. 2**(r+1) - 1 blocks
        r = min(14, left.bit_length() - 1)
        run = min(left, (1 << (r + 1)) - 1)
        ac.put(r, 4)
        ac.put(run - (1 << r), r)
        left -= run
    ac_data = ac.flush()
    for c in range(components):
        out += sos(c, 0, 0, 0, 0) + dc_data
    for c in range(components):
        for k in range(1, 64):
            out += sos(c, k, k, 0, 13) + ac_data
            for al in range(12, -1, -1):
                out += sos(c, k, k, al + 1, al) + ac_data
    return bytes(out + b"\xff\xd9")


# --- SVG -------------------------------------------------------------------------------------------

SVG_NS = 'xmlns="http://www.w3.org/2000/svg"'


def nested_svg(depth: int) -> bytes:
    return (
        f'<svg {SVG_NS} width="100" height="100">'.encode()
        + b"<g>" * depth
        + b'<rect width="50" height="50" fill="red"/>'
        + b"</g>" * depth
        + b"</svg>"
    )


def huge_svg(side: int) -> bytes:
    return (
        f'<svg {SVG_NS} width="{side}" height="{side}"><rect width="{side}" height="{side}" fill="red"/></svg>'.encode()
    )


def billion_laughs() -> bytes:
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">' for n in range(1, 10)
    ]
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE svg [\n' + "\n".join(entities) + "\n]>\n"
        f'<svg {SVG_NS} width="100" height="100"><text x="0" y="20">&lol9;</text></svg>'
    ).encode()


def external_entity_svg() -> bytes:
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        f'<svg {SVG_NS} width="400" height="100"><text x="0" y="20">&xxe;</text></svg>'
    ).encode()


def filter_svg(side: int, layers: int, deviation: int = 100) -> bytes:
    """A few hundred bytes that make librsvg blur a ``side``² canvas ``layers`` times."""
    head = f'<svg {SVG_NS} width="{side}" height="{side}">'
    head += f'<filter id="b"><feGaussianBlur stdDeviation="{deviation}"/></filter>'
    return (head + f'<rect width="{side}" height="{side}" fill="red" filter="url(#b)"/>' * layers + "</svg>").encode()


def use_bomb_svg(levels: int = 10, fanout: int = 10, via: str = "g") -> bytes:
    """``fanout`` ``<use>``s per level through ``levels`` nested ``<g>``/``<symbol>``s: fanout**levels elements."""
    parts = [f'<svg {SVG_NS} xmlns:xlink="http://www.w3.org/1999/xlink" width="100" height="100"><defs>']
    parts.append('<rect id="l0" width="1" height="1" fill="red"/>')
    for level in range(1, levels + 1):
        uses = "".join(f'<use xlink:href="#l{level - 1}"/>' for _ in range(fanout))
        parts.append(f'<{via} id="l{level}">{uses}</{via}>')
    parts.append(f'</defs><use href="#l{levels}"/></svg>')
    return "".join(parts).encode()


def use_cycle_svg() -> bytes:
    return (
        f'<svg {SVG_NS} width="100" height="100"><g id="a"><rect width="5" height="5"/>'
        '<g id="b"><use href="#a"/></g></g></svg>'
    ).encode()


def error_buffer_poison_svg() -> bytes:
    """librsvg's parse error quotes the bad attribute as U+FFFD characters, over 10 KB of them:
    libvips cuts its error buffer at 10 KB, mid-character, and pyvips cannot decode it."""
    return f'<svg {SVG_NS} xmlns:xlink="http:/'.encode() + b"\xff" * 4000 + b'" width="10" height="10"/>'


def declared_encoding_svg(encoding: str) -> bytes:
    return f'<?xml version="1.0" encoding="{encoding}"?><svg {SVG_NS} width="10" height="10"/>'.encode()


def latin1_keyword_png() -> bytes:
    """A valid PNG whose tEXt keyword is Latin-1 (allowed by the PNG spec), not UTF-8."""
    png = fixture("png")
    return png[:33] + png_chunk(b"tEXt", b"Aufl\xf6sung\x00300 dpi") + png[33:]


def external_reference_svg(with_references: bool) -> bytes:
    """XInclude of a local file and an <image> pointing at one: librsvg must load neither."""
    refs = (
        '<text x="0" y="20" font-size="20"><xi:include href="/etc/passwd" parse="text"/></text>'
        '<image href="file:///etc/passwd" width="100" height="100"/>'
        '<image href="https://example.com/x.png" width="100" height="100"/>'
        if with_references
        else ""
    )
    return (
        f'<svg {SVG_NS} xmlns:xi="http://www.w3.org/2001/XInclude" width="400" height="100">'
        f'<rect width="400" height="100" fill="white"/>{refs}</svg>'
    ).encode()


# --- the catalogue -------------------------------------------------------------------------------


def cases() -> Iterator[Case]:
    """Every hostile input; building them all takes about a second."""
    yield Case("zero.jpg", b"", 422)
    yield Case("random.png", random.Random(7).randbytes(4096), 422)
    yield Case("text.jpg", b"This is not an image, whatever the name says.\n" * 20, 422)
    yield Case("html.png", PAYLOAD_HTML, 422)

    for kind, ext in EXTENSIONS.items():
        data = fixture(kind)
        for cut in (16, 64, 200, len(data) // 2):
            valid = kind == "gif" and cut == len(data) // 2
            why = "the first frame is complete and is the only one decoded" if valid else ""
            yield Case(f"truncated-{kind}-{cut}.{ext}", data[:cut], 200 if valid else 422, why=why)
        yield Case(f"bad-magic.{ext}", bytes([data[0] ^ 0xFF]) + data[1:], 422)
        for seed in range(4):
            status, why = FLIPPED[kind, seed]
            yield Case(f"flipped-{kind}-{seed}.{ext}", flipped(data, seed), status, why=why)

    png = fixture("png")
    yield Case("ihdr-bad-depth.png", png[:24] + b"\x07" + png[25:], 422)  # bit depth 7, CRC now wrong
    yield Case(
        "ihdr-bad-crc.png",
        png[:29] + bytes([png[29] ^ 1]) + png[30:],
        200,
        why="only the IHDR checksum is wrong: libvips takes PNG CRC errors as warnings below fail_on=error",
    )
    jpeg = fixture("jpeg")
    sof = jpeg_frame_offset(jpeg)
    yield Case("sof-zero-components.jpg", jpeg[: sof + 9] + b"\x00" + jpeg[sof + 10 :], 422)

    # Wrong extension: the type comes from the bytes, never the name.
    yield Case("png-named.jpg", png, 200, why="a valid PNG; the name is ignored")
    yield Case("jpeg-named.gif", jpeg, 200, why="a valid JPEG; the name is ignored")
    svg = fixture_path("check.svg").read_bytes()
    yield Case("svg-named.png", svg, 200, options="q:80", why="a valid SVG, passed through sanitised")
    yield Case("svg-named.png", svg, 200, suffix="@png", why="a valid SVG, rasterised")

    # Polyglots: a valid image with something else attached. The image is re-encoded, so the
    # rest never reaches the client.
    zipped = zip_payload()
    yield Case("jpeg-html.jpg", jpeg + PAYLOAD_HTML, 200, why="a JPEG ends at EOI", payload=b"<script>")
    yield Case("jpeg-zip.jpg", jpeg + zipped, 200, why="a JPEG ends at EOI", payload=b"PK\x03\x04")
    com = _segment(0xFE, PAYLOAD_JS)
    yield Case("jpeg-js-comment.jpg", jpeg[:2] + com + jpeg[2:], 200, why="COM segments are skipped", payload=b"alert(")
    gif = fixture("gif")
    parts = gif_parts(gif)
    js_gif = b"GIF89a/*" + parts.header[8:] + gif_comment(PAYLOAD_JS) + b"".join(parts.blocks) + parts.trailer
    yield Case(
        "gif-js.gif",
        js_gif,
        200,
        why="a GIF whose screen width is '/*' (10799); libnsgif draws the frame size",
        payload=b"alert(",
    )
    yield Case("png-trailing.png", png + zipped + PAYLOAD_HTML, 200, why="a PNG ends at IEND", payload=b"PK\x03\x04")

    # Sizes declared in the header: refused before a pixel is decoded.
    yield Case("ihdr-60000.png", png_with_size(png, 60000, 60000), 422)
    yield Case("sof-60000.jpg", jpeg_with_size(jpeg, 60000, 60000), 422)
    yield Case("sof-65535.jpg", jpeg_with_size(jpeg, 65535, 65535), 422)  # over libjpeg's 65500 too
    screen = bytearray(gif)
    screen[6:10] = struct.pack("<HH", 65535, 65535)
    yield Case(
        "screen-65535.gif",
        bytes(screen),
        200,
        why="libnsgif ignores an absurd logical screen and uses the frame's 80×80",
        max_pixels=80 * 80,
    )
    first_image = next(k for k, b in enumerate(parts.blocks) if b[0] == 0x2C)
    frame = bytearray(parts.blocks[first_image])
    frame[5:9] = struct.pack("<HH", 65535, 65535)
    big_frame = parts.blocks[:first_image] + [bytes(frame)] + parts.blocks[first_image + 1 :]
    yield Case("frame-65535.gif", parts.header + b"".join(big_frame) + parts.trailer, 422)
    yield Case(
        "canvas-16384.webp", webp_with_canvas(fixture_path("animated-loop-3.webp").read_bytes(), 16384, 16384), 422
    )
    yield Case("ispe-60000.avif", avif_with_size(fixture("avif"), 60000, 60000), 422)
    yield Case("bomb.png", fixture_path("65536-uint32-limit.png").read_bytes(), 422)
    yield Case("giant.jpg", fixture_path("giant-image.jpg").read_bytes(), 422)

    # ICO: the largest PNG entry is loaded and checked like any PNG.
    bomb = fixture_path("65536-uint32-limit.png").read_bytes()
    yield Case("bomb-inside.ico", ico.wrap_png(bomb, 256, 256), 422)
    yield Case("jpeg-inside.ico", ico.wrap_png(jpeg, 256, 256), 422)  # only PNG entries are read
    yield Case("ico-65535-entries.ico", struct.pack("<HHH", 0, 1, 65535) + bytes(64), 422)
    far = struct.pack("<HHHBBBBHHII", 0, 1, 1, 0, 0, 0, 0, 1, 32, 2**32 - 1, 2**32 - 1)
    yield Case("ico-entry-out-of-file.ico", far + png, 422)
    yield Case("png-inside.ico", ico.wrap_png(png, 200, 240), 200, why="a valid PNG-in-ICO")

    # Many frames: at most IMGPROXY_MAX_ANIMATION_FRAMES (100) are decoded, and the resolution
    # limit counts those frames together.
    capped = "only the first 100 frames are used (IMGPROXY_MAX_ANIMATION_FRAMES): 100 x {} px is within 50 MP"
    yield Case("frames-3000.gif", many_frame_gif(16, 16, 3000), 200, why=capped.format(256))
    yield Case("frames-3000.webp", many_frame_webp(16, 16, 3000), 200, why=capped.format(256))
    # 3000 × 200×200 = 120 MP in the file, but only 100 × 40 000 px = 4 MP is decoded.
    many = many_frame_gif(200, 200, 3000)
    yield Case("frames-120mp.gif", many, 200, why=capped.format(40_000))
    yield Case("frames-120mp.gif", many, 200, suffix="@jpg", why="to a still format only the first frame is used")
    # 150 × 800×800: the 100 frames that would be used are 64 MP together, over the limit.
    over = many_frame_gif(800, 800, 150)
    yield Case("frames-64mp.gif", over, 422)
    yield Case("frames-64mp.gif", over, 422, suffix="@webp")
    yield Case("frames-64mp.gif", over, 200, suffix="@png", why="to a still format only the first frame (640 000 px)")

    # SVG: passed through (sanitised) by default, rasterised with @png.
    for suffix in ("", "@png"):
        yield Case("nested-10000.svg", nested_svg(10_000), 422, suffix=suffix)
        yield Case("billion-laughs.svg", billion_laughs(), 422, suffix=suffix)
        yield Case("xxe.svg", external_entity_svg(), 422, suffix=suffix)
        yield Case("use-bomb.svg", use_bomb_svg(), 422, suffix=suffix)  # 10^10 elements from 2.6 KB
        yield Case("use-bomb-symbols.svg", use_bomb_svg(via="symbol"), 422, suffix=suffix)
        yield Case("use-cycle.svg", use_cycle_svg(), 422, suffix=suffix)
        yield Case("blur-layers.svg", filter_svg(2500, 5), 422, suffix=suffix)  # 31 M pixel blur passes
    yield Case("some-uses.svg", use_bomb_svg(3, 10), 200, suffix="@png", why="4688 elements: a sprite sheet's size")
    yield Case("huge.svg", huge_svg(100_000), 200, options="q:80", why="passed through as text: nothing is rendered")
    yield Case(
        "huge.svg",
        huge_svg(100_000),
        200,
        options="q:80",
        suffix="@png",
        why="rendered at the 50 MP resolution limit (7071×7071), not at 10 GP",
        max_pixels=50_000_000,
    )
    yield Case("huge.svg", huge_svg(100_000), 200, suffix="@png", why="rendered straight at 100×100", max_pixels=10_000)
    yield Case(
        "references.svg",
        external_reference_svg(True),
        200,
        options="q:80",
        suffix="@png",
        why="rendered without the external references (checked against a reference-free drawing)",
    )
    yield from codec_cases()


def codec_cases() -> Iterator[Case]:
    """HEIC, JPEG XL, BMP and video (stills on): see hostile_codecs.py."""
    from tests.security import hostile_codecs

    for name, data, status, why in hostile_codecs.cases():
        yield Case(name, data, status, why=why)


def sniff_pixels(data: bytes) -> tuple[int, int]:
    img: Any = vips.open_source(data)
    return int(img.width), int(img.height)
