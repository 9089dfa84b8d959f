"""``imgproxy-py models collect``: labels for a folder of images, through the serving pipeline.

Each image is processed as ``rs:fit:W/aq:dssim/f:FMT`` for a few widths and formats, exactly
as a request would be, and each search's sample becomes a dataset row. Running the real
pipeline (not a copy of it) keeps offline features identical to the ones served.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from imgproxy_py.analysis.records import source_digest
from imgproxy_py.errors import ImgproxyError
from imgproxy_py.options.parser import Parser
from imgproxy_py.processing import Job, ProcessingConfig, Processor
from imgproxy_py.quality_model.dataset import Row, RowSink, dataset_row

WIDTHS = (320, 640, 1280)
FORMATS = ("jpeg", "webp", "avif")
TARGETS = (0.0025,)
SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".avif", ".tif", ".tiff", ".gif", ".heic", ".jxl", ".bmp"})


def images(folders: Iterable[str | Path]) -> list[Path]:
    found: list[Path] = []
    for folder in folders:
        path = Path(folder)
        found += [p for p in sorted(path.rglob("*") if path.is_dir() else [path]) if p.suffix.lower() in SUFFIXES]
    return found


def collect(
    paths: Sequence[Path],
    dataset: RowSink,
    config: ProcessingConfig,
    widths: Sequence[int] = WIDTHS,
    formats: Sequence[str] = FORMATS,
    targets: Sequence[float] = TARGETS,
    progress: Callable[[str], None] = lambda _: None,
) -> int:
    """Rows written; images that do not decode are skipped (reported through ``progress``)."""
    config = dataclasses.replace(config, collect_samples=True, quality_model=None)
    processor = Processor(config)
    parser = Parser(config.options)
    written = 0
    for path in paths:
        data = path.read_bytes()
        digest = source_digest(data)
        rows: list[Row] = []
        for width in widths:
            for fmt in formats:
                for target in targets:
                    url = f"/rs:fit:{width}:{width}:0/aq:dssim:{target:g}/f:{fmt}/plain/local:///x"
                    po = parser.parse(url).options
                    try:
                        result = processor.process(Job(data, po))
                    except (ImgproxyError, ValueError) as exc:
                        progress(f"skip {path.name} ({type(exc).__name__})")
                        break
                    rows += [dataset_row(digest, sample) for sample in result.samples]
        if rows:
            dataset.add(rows)
            written += len(rows)
            progress(f"{path.name}: {len(rows)} rows")
    return written
