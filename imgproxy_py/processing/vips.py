"""The only module that imports pyvips: start-up tuning and typed load/save helpers.

libvips reads VIPS_CONCURRENCY when it starts, which happens at ``import pyvips``,
so callers that want to tune it set the environment before importing this module.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from imgproxy_py.cancel import current_token
from imgproxy_py.imagetype import ImageFormat

os.environ.setdefault("VIPS_CONCURRENCY", "1")

import pyvips  # after the environment is prepared: libvips reads it at import

Image = pyvips.Image
ffi = pyvips.ffi  # also the name _lenient_to_string finds in pyvips.error once swapped in
T = TypeVar("T")
Error = pyvips.Error

log = logging.getLogger("imgproxy_py.vips")

_initialised = False

# What processing can open (libvips, and the PyPI codecs of processing/codecs/ handed to it);
# /info opens the same minus ICO (processing/describe.py).
LOADABLE = frozenset(
    {
        ImageFormat.JPEG,
        ImageFormat.PNG,
        ImageFormat.WEBP,
        ImageFormat.AVIF,
        ImageFormat.HEIC,
        ImageFormat.GIF,
        ImageFormat.TIFF,
        ImageFormat.SVG,
        ImageFormat.ICO,  # PNG entries only (processing/ico.py)
        ImageFormat.BMP,  # Pillow (processing/codecs/bmp.py)
        ImageFormat.JXL,  # libjxl through imagecodecs (processing/codecs/jxl.py)
    }
)


def init() -> None:
    """Tune libvips for an image proxy (idempotent).

    - the operation cache is off: every request is a different image, and a cache only
      holds memory (libvips developer checklist; imgproxy does the same);
    - untrusted loaders are blocked, so only well-fuzzed image loaders are reachable.
    """
    global _initialised
    if _initialised:
        return
    logging.getLogger("pyvips").setLevel(logging.WARNING)  # libvips chatter is not our log
    _quiet_libvips_info()
    _route_glib_warnings()
    _decode_text_leniently()
    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.cache_set_max_files(0)
    pyvips.block_untrusted_set(True)
    # libvips marks svgload untrusted, but SVG is an input this server must take. Only the
    # memory-source variant is re-enabled: with no base file librsvg resolves no external
    # reference (file:, relative or http), so the document cannot make it read anything.
    pyvips.operation_block_set("VipsForeignLoadSvgSource", False)
    # Loaders that can read other files or URLs, or that we never want to reach.
    for operation in ("VipsForeignLoadMatrix", "VipsForeignLoadCsv", "VipsForeignLoadVips", "VipsForeignLoadRaw"):
        with contextlib.suppress(pyvips.Error):  # not built into every libvips
            pyvips.operation_block_set(operation, True)
    if not pyvips.API_mode:  # pragma: no cover - depends on the installed build
        log.warning("pyvips runs in ABI mode, which is about 20%% slower; install a build with API mode")
    _initialised = True


def _decode_text_leniently() -> None:
    """Make pyvips decode libvips' text (error messages, field names) with replacement characters.

    pyvips decodes every C string as strict UTF-8. A hostile file can put other bytes into
    a metadata field name (a Latin-1 PNG keyword) or into libvips' global error buffer (a
    long librsvg message cut mid-character): the decode then raises UnicodeDecodeError
    instead of pyvips.Error, and a poisoned error buffer makes every later libvips call in
    the process fail that way. The helper is imported by name into several pyvips modules,
    so its code object is swapped in place rather than the name rebound.
    """
    with contextlib.suppress(AttributeError, TypeError, ValueError):
        pyvips.error._to_string.__code__ = _lenient_to_string.__code__


def _lenient_to_string(x: Any) -> Any:
    # Runs as pyvips.error._to_string (its globals: ``ffi``); mirrors it with errors="replace".
    if x == ffi.NULL:
        x = "NULL"
    else:
        x = ffi.string(x)
        if isinstance(x, bytes):
            x = x.decode("utf-8", "replace")
    return x


def _route_glib_warnings() -> None:
    """GLib's own warnings (e.g. "value … is out of range for property 'sigma'") go to stderr
    as raw text by default, breaking JSON logs; send them through logging like libvips' own."""
    with contextlib.suppress(AttributeError):
        flags = pyvips.GLogLevelFlags
        levels = flags.LEVEL_WARNING | flags.LEVEL_CRITICAL | flags.FLAG_FATAL | flags.FLAG_RECURSION
        for domain in (b"GLib-GObject", b"GLib"):
            handler = pyvips.glib_lib.g_log_set_handler(domain, levels, pyvips._log_handler_cb, pyvips.ffi.NULL)
            # before pyvips' own exit handler (atexit is LIFO): no callback into a finalising interpreter
            atexit.register(pyvips.glib_lib.g_log_remove_handler, domain, handler)


def _quiet_libvips_info() -> None:
    """Stop libvips' debug/info messages at the C level.

    pyvips routes every libvips log message into a Python callback, which takes the GIL on
    whatever thread libvips is running: about eight "threadpool completed" messages per image,
    dropped by the logging level only after that cost. Warnings and errors still come through.
    """
    with contextlib.suppress(AttributeError):
        flags = pyvips.GLogLevelFlags
        domain = b"VIPS"
        pyvips.glib_lib.g_log_remove_handler(domain, pyvips._log_handler_id)
        pyvips._log_handler_id = pyvips.glib_lib.g_log_set_handler(
            domain,
            flags.LEVEL_WARNING | flags.LEVEL_CRITICAL | flags.LEVEL_ERROR | flags.FLAG_FATAL | flags.FLAG_RECURSION,
            pyvips._log_handler_cb,
            pyvips.ffi.NULL,
        )


def version() -> str:
    return f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"


def memory_stats() -> dict[str, int]:
    """libvips' own tracked allocations (not the whole process RSS); zeros if unavailable."""
    lib = _tracking_library()
    if lib is None:
        return {"mem": 0, "mem_highwater": 0, "allocs": 0}
    return {
        "mem": int(lib.vips_tracked_get_mem()),
        "mem_highwater": int(lib.vips_tracked_get_mem_highwater()),
        "allocs": int(lib.vips_tracked_get_allocs()),
    }


@functools.cache
def _tracking_library() -> Any:
    """The loaded libvips through ctypes: pyvips' API-mode binding does not export the counters."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libvips" in line and ".so" in line}
        path = next(p for p in sorted(paths) if os.path.basename(p).startswith("libvips"))
        lib = ctypes.CDLL(path)
        for name in ("vips_tracked_get_mem", "vips_tracked_get_mem_highwater"):
            getattr(lib, name).restype = ctypes.c_size_t
        lib.vips_tracked_get_allocs.restype = ctypes.c_int
        return lib
    except (OSError, StopIteration, AttributeError):
        return None


_LOAD_OPTIONS: dict[str, Any] = {"access": "sequential", "fail_on": "truncated"}
_SVG_LOAD_OPTIONS: dict[str, Any] = {"access": "sequential"}  # librsvg has no fail_on


def load_options(fmt: ImageFormat) -> dict[str, Any]:
    """Loader options shared by every load: stream top to bottom, fail on truncated data (a fresh dict)."""
    return dict(_SVG_LOAD_OPTIONS if fmt is ImageFormat.SVG else _LOAD_OPTIONS)


def open_source(data: bytes, **options: Any) -> Any:
    """Open an image from memory without copying it; pixels are decoded lazily.

    ``Source.new_from_memory`` pins ``data`` instead of copying it (``new_from_buffer``
    would copy the whole input once more).
    """
    source = pyvips.Source.new_from_memory(data)
    return pyvips.Image.new_from_source(source, "", **options)


def open_stream(fd: int, **options: Any) -> Any:
    """An image decoded from the descriptor ``fd`` (a pipe) as libvips reads it, in C, without the GIL.

    libvips reads a duplicate of ``fd`` (the caller still closes its own); a pipe cannot seek,
    so libvips keeps only the bytes it sniffs the header from.
    """
    source = pyvips.Source.new_from_descriptor(fd)
    return pyvips.Image.new_from_source(source, "", **options)


def save(img: Any, suffix: str, **options: Any) -> bytes:
    """Encode to ``suffix`` (e.g. ``.jpg``) in memory, abandoning the work if cancelled.

    Saving evaluates the whole lazy pipeline, so it is where the time goes; with a cancel
    token in the context, the evaluation is killed as soon as the deadline passes or the
    clients have gone (raising that error instead of a decode error).
    """

    def write(image: Any) -> bytes:
        target = pyvips.Target.new_to_memory()
        image.write_to_target(target, suffix, **options)
        return bytes(target.get("blob"))

    return _cancellable(img, write)


def save_streaming(img: Any, suffix: str, write: Callable[[bytes], None], **options: Any) -> None:
    """Encode to ``suffix``, handing the bytes to ``write`` (on this thread) as libvips produces
    them, cancellable like ``save``. JPEG and PNG write as rows are compressed; most other savers
    write everything at the end."""

    def run(image: Any) -> None:
        target = pyvips.TargetCustom()

        def on_write(chunk: Any) -> int:
            write(bytes(chunk))
            return len(chunk)

        target.on_write(on_write)
        image.write_to_target(target, suffix, **options)

    _cancellable(img, run)


def pixels(img: Any) -> Any:
    """Evaluate into memory, cancellable like ``save``: every step that materialises uses this,
    never ``copy_memory()`` directly, so no evaluation escapes the deadline and the kill flag."""
    return _cancellable(img, lambda image: image.copy_memory())


def evaluate(img: Any, compute: Callable[[Any], T]) -> T:
    """``compute(img)`` for operations that read every pixel of ``img`` (find_trim, smartcrop, …),
    killed with the request like ``save``. ``compute`` must read ``img`` only through its argument."""
    return _cancellable(img, compute)


_owned = threading.local()  # .image: the image this thread's job made for itself alone (``owning``)


@contextlib.contextmanager
def owning(img: Any) -> Iterator[None]:
    """While the block runs, ``img`` (an image this job made and shares with nobody, e.g.
    strip_metadata's copy) may take the kill flag itself: its evaluations skip the copy below,
    one libvips operation (about 60 µs of Python) less per request. None: nothing is owned."""
    _owned.image = img
    try:
        yield
    finally:
        _owned.image = None


def _cancellable(img: Any, evaluate: Callable[[Any], T]) -> T:
    token = current_token.get()
    if token is None:
        return evaluate(img)
    if token.should_stop():
        raise token.error()
    if img is not getattr(_owned, "image", None):
        img = img.copy()  # the kill flag goes on an image of our own, never one others share (intermediates)
    with token.watching(lambda: img.set_kill(True)):
        try:
            return evaluate(img)
        except pyvips.Error:
            if token.should_stop():
                raise token.error() from None
            raise


def thumbnail(data: bytes, width: int, **options: Any) -> Any:
    """A small version straight from memory: libvips shrinks on load, rotates upright (EXIF)
    and brings CMYK to sRGB, so a large source is never decoded at full size."""
    source = pyvips.Source.new_from_memory(data)
    return pyvips.Image.thumbnail_source(source, width, **options)


def analysis_copy(data: bytes, max_side: int, *, upright: bool) -> Any:
    """The source at most ``max_side`` pixels on its longest side, for detectors.

    Shrink-on-load (JPEG DCT scaling, WebP/SVG/HEIF scaled decode) and streaming reduction
    keep a large source from ever being decoded whole into memory. ``upright=False``
    keeps the stored orientation, the frame the pipeline works in before rotate_and_flip.
    """
    source = pyvips.Source.new_from_memory(data)
    return pyvips.Image.thumbnail_source(source, max_side, height=max_side, size="down", no_rotate=not upright)


def rgb_bytes(img: Any, max_side: int = 0) -> tuple[int, int, bytes]:
    """Packed 8-bit sRGB pixels (alpha flattened onto white), optionally shrunk; cancellable."""
    if max_side and max(img.width, img.height) > max_side:
        img = img.resize(max_side / max(img.width, img.height))
    if img.interpretation not in ("srgb", "b-w") or img.format != "uchar":
        img = img.colourspace("srgb")
    if img.hasalpha():
        img = img.flatten(background=[255] * (img.bands - 1))
    if img.bands == 1:
        img = img.bandjoin([img, img])
    elif img.bands > 3:
        img = img.extract_band(0, n=3)
    img = img.cast("uchar")
    memory = _cancellable(img, lambda image: image.write_to_memory())
    return int(img.width), int(img.height), bytes(memory)


def with_animation(img: Any, page_height: int, delays: list[int], loop: int) -> Any:
    """A copy of ``img`` (frames stacked vertically) carrying the metadata animated savers read."""
    out = img.copy()
    out.set_type(pyvips.GValue.gint_type, "page-height", page_height)
    out.set_type(pyvips.GValue.gint_type, "n-pages", img.height // page_height)
    out.set_type(pyvips.GValue.array_int_type, "delay", delays)
    out.set_type(pyvips.GValue.gint_type, "loop", loop)
    return out


def with_int_field(img: Any, name: str, value: int) -> Any:
    """A copy of ``img`` with an integer metadata field set (e.g. ``orientation``)."""
    out = img.copy()
    out.set_type(pyvips.GValue.gint_type, name, value)
    return out


def has_field(img: Any, name: str) -> bool:
    return bool(img.get_typeof(name) != 0)


def health_check() -> bool:
    """A tiny real operation: proves libvips can allocate, compute and encode."""
    img = pyvips.Image.black(8, 8).draw_rect(255, 2, 2, 4, 4, fill=True)
    return len(save(img, ".png")) > 0


def from_pixels(
    pixels: Any,
    width: int,
    height: int,
    bands: int,
    band_format: str,
    interpretation: str,
    *,
    icc: bytes | None = None,
    exif: bytes | None = None,
    xmp: bytes | None = None,
    orientation: int = 1,
    bits: int = 0,
) -> Any:
    """An image over pixels decoded by another library (processing/codecs), with its metadata.

    The image references ``pixels`` rather than copying them; the fields are the ones libvips'
    own loaders set, so the rest of the pipeline cannot tell the difference.
    """
    img = pyvips.Image.new_from_memory(pixels, width, height, bands, band_format).copy(interpretation=interpretation)
    for name, blob in (("icc-profile-data", icc), ("exif-data", exif), ("xmp-data", xmp)):
        if blob:
            img.set_type(pyvips.GValue.blob_type, name, blob)
    if bits:
        img.set_type(pyvips.GValue.gint_type, "bits-per-sample", bits)
    if orientation != 1 or has_field(img, "orientation"):
        # Setting exif-data makes libvips parse it and copy its orientation tag; the codec's
        # word wins (libheif has already applied the HEIF container's rotation).
        img.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return img


def thumbnail_image(img: Any, width: int, **options: Any) -> Any:
    """``thumbnail`` for an image already in memory (decoded by another library)."""
    return img.thumbnail_image(width, **options)


def operation_available(name: str) -> bool:
    """Whether this libvips build has the operation (``jpegload_buffer``, ``heifsave_buffer``…)."""
    return bool(pyvips.type_find("VipsOperation", name) != 0)
