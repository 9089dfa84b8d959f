"""Which inputs can be decoded while they download, and the one-shot handle the decoder reads them through.

Only JPEG and PNG stream: their decoders read top to bottom once, with shrink-on-load for JPEG.
A file must show it is a plain one within its first bytes: a sequential JPEG whose first scan
carries every component (a progressive JPEG's scan count is checked over the whole file, and
each scan re-reads the image), a non-interlaced PNG without animation chunks. Every other
format or option that needs a second pass over the source is decoded from a buffer, as before.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from typing import Any

from imgproxy_py.imagetype import ImageFormat, sniff
from imgproxy_py.options.model import GravityType, ProcessingOptions
from imgproxy_py.processing import vips
from imgproxy_py.processing.jpeg_scans import SOF, SOS, STANDALONE
from imgproxy_py.processing.vips import load_options

MAX_HEAD = 512 * 1024  # a header larger than this (huge EXIF/ICC) is decoded from a buffer


class Head(enum.Enum):
    MORE = "more"  # the header is not complete yet
    STREAM = "stream"  # the header is complete and the body can be decoded as it arrives
    BUFFER = "buffer"  # decode this source from a buffer


def head_status(head: bytes) -> Head:
    """Whether the first bytes of a source hold a complete header of a streamable image."""
    fmt = sniff(head) if len(head) >= 16 else None
    if fmt is ImageFormat.JPEG:
        status = _jpeg_status(head)
    elif fmt is ImageFormat.PNG:
        status = _png_status(head)
    elif len(head) < 16:
        status = Head.MORE
    else:
        return Head.BUFFER
    if status is Head.MORE and len(head) >= MAX_HEAD:
        return Head.BUFFER
    return status


_SEQUENTIAL_SOF = frozenset({0xC0, 0xC1})  # baseline and extended Huffman


def _jpeg_status(data: bytes) -> Head:
    sequential: bool | None = None
    components = 0
    i, end = 2, len(data)
    while i + 4 <= end:
        if data[i] != 0xFF:
            return Head.BUFFER
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in STANDALONE:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in SOF:
            if sequential is not None or i + 10 > end:
                return Head.BUFFER if sequential is not None else Head.MORE
            sequential = marker in _SEQUENTIAL_SOF
            components = data[i + 9]
        elif marker == SOS:
            if i + 5 > end:
                return Head.MORE
            # one scan holding every component: libjpeg refuses any second scan ("EOI expected")
            return Head.STREAM if sequential and data[i + 4] == components else Head.BUFFER
        i += 2 + length
    return Head.MORE


def _png_status(data: bytes) -> Head:
    i, end = 8, len(data)
    while i + 8 <= end:
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        if kind == b"IHDR":
            if i + 8 + 13 > end:
                return Head.MORE
            if data[i + 8 + 12] != 0:  # Adam7 interlacing: the decoder needs every pass
                return Head.BUFFER
        elif kind in (b"acTL", b"fcTL"):  # APNG
            return Head.BUFFER
        elif kind == b"IDAT":
            return Head.STREAM
        i += 12 + length
    return Head.MORE


def options_allow(po: ProcessingOptions) -> bool:
    """Options whose pipeline reads the source once, top to bottom (the rest decode from a buffer)."""
    return not (
        po.trim.enabled
        or po.skip_processing
        or po.raw
        or po.gravity.type is GravityType.SMART
        or (po.crop.gravity is not None and po.crop.gravity.type is GravityType.SMART)
    )


@dataclass(slots=True)
class StreamedInput:
    """A source being downloaded: its header bytes and the read end of the pipe it arrives through.

    The descriptor is this object's to close (``close``, called when processing ends). An early
    end of file (the download failed or the request was cancelled) makes libvips fail the load.
    """

    head: bytes
    fd: int
    _opened: bool = False

    def open(self, fmt: ImageFormat, **extra: Any) -> Any:
        """The image decoded from the stream (lazily, as pixels are asked for); only once."""
        if self._opened:
            raise RuntimeError("a streamed source can be opened only once")
        self._opened = True
        return vips.open_stream(self.fd, **load_options(fmt), **extra)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
