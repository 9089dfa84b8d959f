"""Decoded, shrunk-on-load intermediates of hot sources, shared across their size variants.

A page asks for one photo at many widths (``srcset``); each variant decodes the same
JPEG at the same shrink-on-load factor. Decoding is most of the cost, so the decoded
pixels are kept in memory and every later variant starts from them: only the resize
and the encode remain.

Admission is on the second sighting of a source, so a stream of one-off images (no
reuse possible) pays nothing: no extra copy, no memory held. Entries are immutable
libvips memory images, safe to read from several threads at once. Bounded by bytes,
least recently used first out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

# How many source keys to remember for admission (a key is ~60 bytes).
_SEEN_LIMIT = 8192


class IntermediateCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], tuple[Any, int]] = OrderedDict()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    @property
    def size(self) -> int:
        return self._bytes

    def get(self, source_key: str, variant: str) -> Any | None:
        with self._lock:
            entry = self._entries.get((source_key, variant))
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end((source_key, variant))
            self.hits += 1
            return entry[0]

    def admit(self, source_key: str) -> bool:
        """True if this source was seen before (it is hot enough to keep decoded)."""
        with self._lock:
            if source_key in self._seen:
                self._seen.move_to_end(source_key)
                return True
            self._seen[source_key] = None
            if len(self._seen) > _SEEN_LIMIT:
                self._seen.popitem(last=False)
            return False

    def put(self, source_key: str, variant: str, image: Any, nbytes: int) -> None:
        if nbytes > self.max_bytes // 4:  # one huge image must not flush everything else
            return
        with self._lock:
            key = (source_key, variant)
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (image, nbytes)
            self._bytes += nbytes
            while self._bytes > self.max_bytes and self._entries:
                _, (_, size) = self._entries.popitem(last=False)
                self._bytes -= size


def memory_size(img: Any) -> int:
    """Bytes a decoded libvips image occupies in memory."""
    bytes_per_band = {"uchar": 1, "char": 1, "ushort": 2, "short": 2, "uint": 4, "int": 4, "float": 4}
    return int(img.width * img.height * img.bands * bytes_per_band.get(img.format, 8))
