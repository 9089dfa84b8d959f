"""Stills from video (MP4/MOV, WebM/MKV) through PyAV, whose wheel ships FFmpeg.

FFmpeg can read far more than an image server should: playlists (HLS), concat lists, MOV
data references and network protocols all make it open other files or URLs. So the demuxer
is never probed: the container is sniffed here by its magic bytes and only FFmpeg's MP4/MOV
or Matroska/WebM demuxer is named, with MOV references off and no protocol allowed (the
bytes come from memory, so none is needed). Only a short list of video decoders is used.
Duration and stream size come from the container header and are checked before any frame
is decoded; the demux/decode loop checks the cancel token and a packet budget, so a hostile
clip cannot hold a worker past the request deadline.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np

from imgproxy_py.errors import BrokenImageError, ImgproxyError, InvalidImageError
from imgproxy_py.processing.codecs import Decoded

# Container → (FFmpeg demuxer, MIME type). WebM is Matroska to FFmpeg.
CONTAINERS = {
    "mp4": ("mov", "video/mp4"),
    "mov": ("mov", "video/quicktime"),
    "webm": ("matroska", "video/webm"),
    "mkv": ("matroska", "video/x-matroska"),
}
CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4"})
MAX_PACKETS = 2000  # demuxed packets one still may cost (a keyframe interval is far shorter)
_OPTIONS = {"protocol_whitelist": "none", "enable_drefs": "0", "use_absolute_path": "0"}


@dataclass(frozen=True, slots=True)
class VideoHeader:
    container: str
    codec: str
    width: int
    height: int
    duration: float  # seconds (0: unknown)


def _open(data: bytes, container: str) -> Any:
    demuxer = CONTAINERS[container][0]
    try:
        return av.open(io.BytesIO(data), mode="r", format=demuxer, options=dict(_OPTIONS))
    except Exception as exc:  # FFmpeg reports a hostile container in many ways
        raise BrokenImageError(f"video: {type(exc).__name__}: {str(exc)[:200]}") from None


def _stream(box: Any) -> Any:
    streams = list(box.streams.video)
    if not streams:
        raise BrokenImageError("video: no video stream")
    stream = streams[0]
    name = stream.codec_context.name
    if name not in CODECS:
        raise InvalidImageError(f"video codec {name!r} is not allowed")
    return stream


def _duration(box: Any, stream: Any) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if box.duration:
        return float(box.duration / av.time_base)
    return 0.0


def probe(data: bytes, container: str) -> VideoHeader:
    box = _open(data, container)
    try:
        stream = _stream(box)
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        return VideoHeader(container, str(stream.codec_context.name), width, height, _duration(box, stream))
    finally:
        box.close()


def still(
    data: bytes,
    container: str,
    second: float | None,
    check: Callable[[VideoHeader], None],
    stop: Callable[[], None],
) -> tuple[VideoHeader, Decoded]:
    """The frame at ``second`` (the first keyframe when None, the last frame if past the end).

    ``check`` sees the header before anything is decoded (limits) and ``stop`` is called
    between packets (it raises once the deadline has passed or the clients have gone).
    """
    box = _open(data, container)
    try:
        stream = _stream(box)
        header = VideoHeader(
            container,
            str(stream.codec_context.name),
            int(stream.codec_context.width),
            int(stream.codec_context.height),
            _duration(box, stream),
        )
        check(header)
        stream.thread_type = "SLICE"  # no frame threads: they would decode frames ahead for nothing
        target = None
        if second is not None and second > 0 and stream.time_base:
            target = int(Fraction(second).limit_denominator(1000) / stream.time_base)
            box.seek(target, stream=stream, backward=True, any_frame=False)  # the keyframe before it
        frame = _decode_until(box, stream, target, stop)
        rgb = frame.to_ndarray(format="rgb24")
        orientation = _orientation(frame)
    except ImgproxyError:
        raise
    except Exception as exc:  # a corrupt bitstream fails inside FFmpeg's demuxers and decoders
        raise BrokenImageError(f"video: {type(exc).__name__}: {str(exc)[:200]}") from None
    finally:
        box.close()
    height, width = int(rgb.shape[0]), int(rgb.shape[1])
    return header, Decoded(np.ascontiguousarray(rgb), width, height, 3, 8, orientation=orientation)


def _decode_until(box: Any, stream: Any, target: int | None, stop: Callable[[], None]) -> Any:
    last = None
    for packets, packet in enumerate(box.demux(stream)):
        stop()
        if packets >= MAX_PACKETS:
            break
        for frame in packet.decode():
            last = frame
            if target is None or frame.pts is None or frame.pts >= target:
                return frame
    if last is None:
        raise BrokenImageError("video: no frame could be decoded")
    return last  # the requested second is past the end: the last frame decoded


def _orientation(frame: Any) -> int:
    """The display rotation phones record (degrees counter-clockwise) as an EXIF orientation."""
    rotation = round(float(getattr(frame, "rotation", 0) or 0)) % 360
    return {90: 8, 180: 3, 270: 6}.get(rotation, 1)
