"""How many scans a JPEG can make libjpeg decode: cheap for the common single-scan file.

Each scan of a multi-scan JPEG (progressive, or sequential with components in separate
scans) re-reads the whole image in one libjpeg call nothing can cancel, so the scan count
is capped. Counting means reading every byte (about 1 ms per MB); but libjpeg refuses a
second scan outright when the file is sequential and its first scan holds every component
("EOI expected"), which is what nearly every camera and encoder writes. The header segments
up to the first scan say which kind a file is; only the others are counted.
"""

from __future__ import annotations

SOS = 0xDA
_PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # DHT, JPG and DAC share the range
STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RSTn, SOI: no length field


def scan_count_bound(data: bytes) -> int:
    """1 when libjpeg can decode at most one scan of ``data``, else the number of SOS markers."""
    progressive: bool | None = None
    frame_components = 0
    i, end = 2, len(data)
    while i + 4 <= end:
        if data[i] != 0xFF:
            break  # not a marker where one must be: libvips will judge the file
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in STANDALONE:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in SOF and progressive is None and i + 9 < end:
            progressive = marker in _PROGRESSIVE_SOF
            frame_components = data[i + 9]
        elif marker == SOS:
            if progressive is False and i + 4 < end and data[i + 4] == frame_components:
                return 1
            break
        i += 2 + length
    return data.count(b"\xff\xda")
