"""The reference profile the server's drift gauges compare against (imgproxy_py/monitoring/reference.py).

Written by the offline evaluation (``python -m benchmarks.eval --only profile``; ``make
reference-profile`` rebuilds the one shipped in the package). Over the evaluation's images (the
labelled face set and the still fixtures, or ``--profile-images DIR``: a sample of your own
traffic's sources) it records, per model version:

- ``faces`` / the detector's version: faces found per image, whether any was (``has_faces``),
  each face's score, and the inference latency (the detector call only, 512 px copy);
- ``autoquality-dssim`` / the metric's version: the quality each format's search chose
  (``chosen_quality_<format>``) and the DSSIM it achieved, images fitted into 800 px;
- ``inputs`` / the profile's id: the input mix, source format (categorical), megapixels and
  source bytes.

Latency depends on the machine: rebuild the profile on the hardware the server runs on before
reading the ``inference_seconds`` gauge.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterable
from pathlib import Path

from benchmarks.faceset import FIXTURES, build
from imgproxy_py.analysis.detector import Detector
from imgproxy_py.imagetype import sniff
from imgproxy_py.monitoring.drift import FeatureProfile, ReferenceProfile
from imgproxy_py.monitoring.reference import INPUTS_MODEL, ProfileSet
from imgproxy_py.options.model import ProcessingOptions
from imgproxy_py.options.parser import Parser
from imgproxy_py.processing import LOADABLE, Job, ProcessingConfig, Processor, vips
from imgproxy_py.processing.quality import METRIC_VERSION
from imgproxy_py.settings import OptionSettings

AQ_MODEL = "autoquality-dssim"  # server/quality_models.py's SEARCH_NAME
FACES_MODEL = "faces"  # server/face_models.py's MODEL_NAME
# Fixtures made to break things (bombs, broken files, 65536 px, a 1-bit fax): not an input mix.
SKIP = {"giant-image.jpg", "corrupt-header.jpg", "truncated.jpg", "truncated.png", "65536-uint32-limit.png", "G31D.TIF"}


def _options(text: str) -> ProcessingOptions:
    return Parser(OptionSettings()).parse(f"/{text}/plain/local:///x").options


def sources(folder: Path | None = None) -> list[tuple[str, bytes]]:
    """The images profiled: ``folder``'s, or the face set and the shared still fixtures."""
    if folder is not None:
        return [(p.name, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file()]
    out = [(item.name, item.data) for item in build()]
    names = {name for name, _ in out}
    for path in sorted((FIXTURES / "images").iterdir()):
        if path.name not in SKIP and path.name not in names:
            out.append((path.name, path.read_bytes()))
    return out


def detector_profile(images: Iterable[tuple[str, bytes]], detector: Detector, size: int = 512) -> ReferenceProfile:
    found, has, scores, seconds = [], [], [], []
    for _, data in images:
        try:
            width, height, rgb = vips.rgb_bytes(vips.analysis_copy(data, size, upright=False))
        except vips.Error:
            continue
        started = time.perf_counter()
        faces = detector.detect(width, height, rgb)
        seconds.append(time.perf_counter() - started)
        found.append(float(len(faces)))
        has.append(1.0 if faces else 0.0)
        scores += [d.score for d in faces]
    features = {
        "faces_found": FeatureProfile.from_sample(found),
        "has_faces": FeatureProfile.from_sample(has),
        "inference_seconds": FeatureProfile.from_sample(seconds),
    }
    if scores:
        features["score"] = FeatureProfile.from_sample(scores)
    return ReferenceProfile(FACES_MODEL, detector.version, features)


def autoquality_profile(images: Iterable[tuple[str, bytes]], formats: Iterable[str]) -> ReferenceProfile:
    config = ProcessingConfig()
    chosen: dict[str, list[float]] = {}
    achieved: list[float] = []
    for _, data in images:
        fmt = sniff(data)
        if fmt is None or fmt not in LOADABLE:
            continue
        for target in formats:
            try:
                result = Processor(config).process(Job(data, _options(f"rs:fit:800:800/aq:dssim/f:{target}")))
            except Exception:  # an animation or a format the search skips: not part of the profile
                continue
            for name, quality, dssim in result.searched:
                chosen.setdefault(f"chosen_quality_{name}", []).append(float(quality))
                achieved.append(dssim)
    features = {name: FeatureProfile.from_sample(values) for name, values in chosen.items()}
    if achieved:
        features["achieved_dssim"] = FeatureProfile.from_sample(achieved)
    return ReferenceProfile(AQ_MODEL, METRIC_VERSION, features)


def inputs_profile(images: Iterable[tuple[str, bytes]], version: str) -> ReferenceProfile:
    formats, megapixels, sizes = [], [], []
    for _, data in images:
        fmt = sniff(data)
        if fmt is None:
            continue
        try:
            img = vips.open_source(data)
        except vips.Error:
            continue
        formats.append(fmt.value)
        megapixels.append(img.width * img.height / 1e6)
        sizes.append(float(len(data)))
    return ReferenceProfile(
        INPUTS_MODEL,
        version,
        {
            "source_format": FeatureProfile.from_categories(formats),
            "megapixels": FeatureProfile.from_sample(megapixels),
            "source_bytes": FeatureProfile.from_sample(sizes),
        },
    )


def build_profile(
    detector: Detector | None, folder: Path | None = None, formats: Iterable[str] = ("jpeg", "webp", "avif")
) -> ProfileSet:
    images = sources(folder)
    day = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    profile_id = f"eval-{day}"
    profiles = [inputs_profile(images, profile_id), autoquality_profile(images, formats)]
    if detector is not None:
        profiles.insert(0, detector_profile(images, detector))
    meta = {
        "command": "python -m benchmarks.eval --only profile" + (f" --profile-images {folder}" if folder else ""),
        "images": str(len(images)),
        "notes": "inference_seconds depends on the machine: rebuild on the serving hardware",
    }
    return ProfileSet(profile_id, tuple(profiles), meta)
