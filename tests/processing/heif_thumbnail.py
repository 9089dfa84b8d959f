"""Build an AVIF that carries an embedded thumbnail, for the enforce_thumbnail tests.

libvips cannot write HEIF thumbnails, so two single-image AVIFs made by libvips (the
primary and the thumbnail) are taken apart and put into one ISOBMFF file: item 1 is the
primary, item 2 the thumbnail, linked by a ``thmb`` reference (ISO/IEC 23008-12 §6.6.2).
"""

from __future__ import annotations

import struct
from typing import Any


def _boxes(data: bytes, start: int, end: int) -> dict[bytes, tuple[int, int]]:
    """Child boxes of one level: type → (payload start, box end)."""
    found: dict[bytes, tuple[int, int]] = {}
    while start < end:
        size, kind = struct.unpack_from(">I4s", data, start)
        found[kind] = (start + 8, start + size)
        start += size
    return found


def _av1_item(avif: bytes) -> tuple[bytes, list[bytes]]:
    """The coded image and its properties (av1C, ispe, pixi, …) of a single-item libvips AVIF."""
    top = _boxes(avif, 0, len(avif))
    meta_start, meta_end = top[b"meta"]
    meta = _boxes(avif, meta_start + 4, meta_end)  # meta is a full box
    iloc_start, _ = meta[b"iloc"]
    version = avif[iloc_start]
    sizes = avif[iloc_start + 4] << 8 | avif[iloc_start + 5]
    offset_size, length_size, base_size = sizes >> 12, (sizes >> 8) & 15, (sizes >> 4) & 15
    pos = iloc_start + 6
    pos += 2  # item count (the first item is the image)
    pos += 2 + (2 if version == 1 else 0) + 2  # item id, construction method, data reference index
    base = int.from_bytes(avif[pos : pos + base_size], "big") if base_size else 0
    pos += base_size + 2  # base offset, extent count (1)
    offset = base + int.from_bytes(avif[pos : pos + offset_size], "big")
    length = int.from_bytes(avif[pos + offset_size : pos + offset_size + length_size], "big")
    ipco_start, ipco_end = _boxes(avif, *meta[b"iprp"])[b"ipco"]
    props = []
    pos = ipco_start
    while pos < ipco_end:
        size = struct.unpack_from(">I", avif, pos)[0]
        props.append(avif[pos : pos + size])
        pos += size
    return avif[offset : offset + length], props


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _full(kind: bytes, payload: bytes, version: int = 0) -> bytes:
    return _box(kind, struct.pack(">I", version << 24) + payload)


def avif_with_thumbnail(primary: Any, thumbnail: Any) -> bytes:
    main_data, main_props = _av1_item(bytes(primary.heifsave_buffer(compression="av1", Q=60, keep="none")))
    thumb_data, thumb_props = _av1_item(bytes(thumbnail.heifsave_buffer(compression="av1", Q=60, keep="none")))
    ftyp = _box(b"ftyp", b"avif" + struct.pack(">I", 0) + b"mif1avifmiaf")
    hdlr = _full(b"hdlr", struct.pack(">I", 0) + b"pict" + bytes(12) + b"\0")
    pitm = _full(b"pitm", struct.pack(">H", 1))
    infe = [_full(b"infe", struct.pack(">HH", item, 0) + b"av01\0", version=2) for item in (1, 2)]
    iinf = _full(b"iinf", struct.pack(">H", 2) + b"".join(infe))
    iref = _full(b"iref", _box(b"thmb", struct.pack(">HHH", 2, 1, 1)))
    ipco = _box(b"ipco", b"".join(main_props + thumb_props))
    n = len(main_props)
    assoc_main = bytes([0x80 | 1] + list(range(2, n + 1)))  # av1C (first) is essential
    assoc_thumb = bytes([0x80 | (n + 1)] + list(range(n + 2, n + len(thumb_props) + 1)))
    ipma = _full(
        b"ipma",
        struct.pack(">I", 2)
        + struct.pack(">HB", 1, len(assoc_main))
        + assoc_main
        + struct.pack(">HB", 2, len(assoc_thumb))
        + assoc_thumb,
    )
    iprp = _box(b"iprp", ipco + ipma)

    def iloc(first: int) -> bytes:
        entries = struct.pack(">HHHII", 1, 0, 1, first, len(main_data))
        entries += struct.pack(">HHHII", 2, 0, 1, first + len(main_data), len(thumb_data))
        return _full(b"iloc", bytes([0x44, 0x00]) + struct.pack(">H", 2) + entries)

    def meta(first: int) -> bytes:
        return _full(b"meta", hdlr + pitm + iloc(first) + iinf + iref + iprp)

    head = len(ftyp) + len(meta(0)) + 8  # the mdat header comes before the data
    return ftyp + meta(head) + _box(b"mdat", main_data + thumb_data)
