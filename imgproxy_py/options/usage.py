"""What each URL option expects, and the nearest option name for a typo.

Only for development error bodies (IMGPROXY_DEVELOPMENT_ERRORS_MODE) and tools; the parser
does not depend on it. The syntax strings follow imgproxy's documentation.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

_GRAVITY = "%type[:%x:%y] (type: ce no so ea we noea nowe soea sowe, sm, fp:%x:%y)"
SYNTAX = {
    "resize": "rs:%resizing_type:%width:%height:%enlarge:%extend",
    "size": "s:%width:%height:%enlarge:%extend",
    "resizing_type": "rt:fit|fill|fill-down|force|auto",
    "width": "w:%width (integer ≥ 0)",
    "height": "h:%height (integer ≥ 0)",
    "min-width": "mw:%width (integer ≥ 0)",
    "min-height": "mh:%height (integer ≥ 0)",
    "zoom": "z:%factor or z:%x_factor:%y_factor (numbers > 0)",
    "dpr": "dpr:%dpr (number > 0)",
    "enlarge": "el:%bool (1/0, t/f, true/false)",
    "extend": "ex:%bool[:%gravity[:%x:%y]] (no sm)",
    "extend_aspect_ratio": "exar:%bool[:%gravity[:%x:%y]]",
    "gravity": "g:" + _GRAVITY,
    "crop": "c:%width:%height[:%gravity] (≥ 1 pixels, < 1 a share, 0 all)",
    "trim": "t:%threshold[:%hex_color:%equal_hor:%equal_ver]",
    "padding": "pd:%top[:%right:%bottom:%left] (integers, CSS order)",
    "auto_rotate": "ar:%bool",
    "rotate": "rot:%angle (a multiple of 90)",
    "flip": "fl:%horizontal:%vertical (bools)",
    "background": "bg:%R:%G:%B (0..255) or bg:%hex_color",
    "blur": "bl:%sigma (number ≥ 0)",
    "sharpen": "sh:%sigma (number ≥ 0)",
    "pixelate": "pix:%size (integer ≥ 0)",
    "watermark": "wm:%opacity(0..1)[:%position(ce no so ea we noea nowe soea sowe re):%x:%y:%scale]",
    "strip_metadata": "sm:%bool",
    "keep_copyright": "kcr:%bool",
    "strip_color_profile": "scp:%bool",
    "preserve_hdr": "ph:%bool",
    "enforce_thumbnail": "eth:%bool",
    "return_attachment": "att:%bool",
    "raw": "raw:%bool",
    "quality": "q:%quality (0..100, 0 = default)",
    "format_quality": "fq:%format:%quality[:%format:%quality…]",
    "max_bytes": "mb:%bytes (integer ≥ 0)",
    "format": "f:jpg|png|webp|avif|gif|ico|tiff|bmp|svg (or @%ext at the end of the URL)",
    "skip_processing": "skp:%format[:%format…]",
    "cachebuster": "cb:%string",
    "expires": "exp:%unix_timestamp",
    "filename": "fn:%name[:%encoded] (encoded: the name in base64url)",
    "preset": "pr:%name[:%name…] (IMGPROXY_PRESETS)",
    "max_src_resolution": "msr:%megapixels (needs IMGPROXY_ALLOW_SECURITY_OPTIONS)",
    "max_src_file_size": "msfs:%bytes (needs IMGPROXY_ALLOW_SECURITY_OPTIONS)",
    "max_animation_frames": "maf:%frames (needs IMGPROXY_ALLOW_SECURITY_OPTIONS)",
    "max_animation_frame_resolution": "mafr:%megapixels (needs IMGPROXY_ALLOW_SECURITY_OPTIONS)",
    "max_result_dimension": "mrd:%pixels (needs IMGPROXY_ALLOW_SECURITY_OPTIONS)",
}

# QWERTY positions: a one-letter slip to a neighbouring key ("rz" for "rs") is the likeliest typo.
_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")
_KEYS = {ch: (row, col + row * 0.5) for row, keys in enumerate(_ROWS) for col, ch in enumerate(keys)}


def _key_distance(typed: str, candidate: str) -> float:
    """Summed keyboard distance of the differing letters (same length only), else a large number."""
    if len(typed) != len(candidate):
        return 100.0
    total = 0.0
    for a, b in zip(typed.lower(), candidate.lower(), strict=True):
        if a != b:
            pa, pb = _KEYS.get(a), _KEYS.get(b)
            total += 10.0 if pa is None or pb is None else abs(pa[0] - pb[0]) + abs(pa[1] - pb[1])
    return total


def nearest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name``: one slip to a neighbouring key, else the most similar (difflib)."""
    names = list(known)
    close = difflib.get_close_matches(name, names, n=8, cutoff=0.5)
    if not close:
        return None

    def rank(candidate: str) -> tuple[bool, float, float]:
        ratio = difflib.SequenceMatcher(None, name, candidate).ratio()
        distance = _key_distance(name, candidate)
        return (distance > 1.5, -round(ratio, 6), distance)  # a slip to a neighbouring key first

    return min(close, key=rank)
