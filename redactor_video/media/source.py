"""Sources: decode a video or still image into upright RGB Frames with their original timing."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
import itertools
from pathlib import Path

import av
import numpy as np
from av.container import InputContainer
from av.video.stream import VideoStream

from redactor_video.errors import InputError, ProcessingError
from redactor_video.media.formats import IMAGE_FORMATS
from redactor_video.types import Frame

MAX_PICTURE = (7680, 4320)
"""The largest picture redactor decodes, in pixels (width, height; the limit is on their product, 33.2 Mpx):
8K UHD, the largest frame a camera or archive plausibly holds. Memory grows with the picture: one 8K still
took 0.99 GB peak and 51 s on the 2-core benchmark machine, the 1 GiB the tool is built to fit, while a
747 KB PNG of 16000x16000 had taken 1.5 GB and 60 s when it was stopped."""
MAX_PICTURE_PIXELS = MAX_PICTURE[0] * MAX_PICTURE[1]


@dataclass(frozen=True)
class VideoInfo:
    """What a sink needs to reproduce the input's timing; width/height are the coded (pre-rotation) size."""

    width: int
    height: int
    time_base: Fraction
    rate: Fraction | None
    frames: int | None
    duration: float | None
    is_image: bool
    codec: str


def rgb_upright(frame: av.VideoFrame) -> np.ndarray:
    """The frame as RGB pixels with its display rotation applied, so faces are upright for the
    detector and the output plays the same without rotation metadata."""
    image = frame.to_ndarray(format="rgb24")
    turns = round(int(frame.rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(image, k=turns)) if turns else image


def open_video(path: Path) -> tuple[InputContainer, VideoStream]:
    """A media file opened for decoding, and its first video stream; InputError if FFmpeg cannot read it, it
    has no video, or its picture is corrupt or over MAX_PICTURE_PIXELS, before any picture is decoded whole.

    Opening a file decodes its first picture when the container does not say everything about it (a still
    image's size is only in the picture), so FFmpeg's own `max_pixels` is given to that probe's decoder:
    it refuses a larger picture before allocating it, and leaves no size behind, so the message cannot
    name one. A size the stream declares without a decode (a raw H.264 stream's parameter sets) is
    checked and named here. The stream's decoder gets the same limit: a picture that grows past it mid-stream is never
    decoded (an error, or with frame threads that frame is left out, as FFmpeg leaves out any frame it
    cannot decode).
    """
    limit = {"max_pixels": str(MAX_PICTURE_PIXELS)}
    try:
        container = av.open(str(path), mode="r", options=limit)
    except (av.FFmpegError, UnicodeDecodeError, ValueError):
        raise InputError(f"{path}: not a video or image FFmpeg can read") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: contains no video stream")
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    most = (f"{MAX_PICTURE[0]}x{MAX_PICTURE[1]} ({MAX_PICTURE_PIXELS / 1e6:.1f} Mpx), "
            "the largest picture redactor decodes")
    if not width or not height:
        container.close()
        raise InputError(f"{path}: no picture size: corrupt, or larger than {most}")
    if width * height > MAX_PICTURE_PIXELS:
        container.close()
        raise InputError(f"{path}: picture is {width}x{height} ({width * height / 1e6:.1f} Mpx), larger than {most}")
    stream.codec_context.options = {**stream.codec_context.options, **limit}
    return container, stream


class FileSource:
    """The one decoder for files: the first video stream as upright RGB Frames, with `info` for its geometry and
    timing. Iterate for the whole file, or take `window` (a run of pts, as batch chunks read) or `span` (seconds
    from the first frame, as sar reads); a FileSource decodes once, so take one of the three."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"{self.path}: no such file")
        if not self.path.is_file():
            raise InputError(f"{self.path}: not a file")
        self._container, self._stream = open_video(self.path)
        self._stream.thread_type = "AUTO"
        ctx = self._stream.codec_context
        fmt = self._container.format.name
        is_image = bool(set(fmt.split(",")) & IMAGE_FORMATS)
        duration = float(self._stream.duration * self._stream.time_base) if self._stream.duration and self._stream.time_base else (
            self._container.duration / av.time_base if self._container.duration else None)
        self.info = VideoInfo(
            width=ctx.width, height=ctx.height,
            time_base=self._stream.time_base or Fraction(1, 25),
            rate=self._stream.average_rate or self._stream.guessed_rate,
            frames=self._stream.frames or None,
            duration=duration,
            is_image=is_image,
            codec=ctx.name,
        )

    def __iter__(self) -> Iterator[Frame]:
        """Every frame; a file with none, or one cut shorter than it declares, is an InputError after its last."""
        index, last = 0, None
        for vf in self._decoded(lambda: f" at frame {index}"):
            frame = Frame(index, rgb_upright(vf), vf.pts, vf.time_base or self.info.time_base, str(self.path))
            last = frame.seconds if frame.seconds is not None else last
            yield frame
            index += 1
        if index == 0:
            raise InputError(f"{self.path}: no decodable frames (corrupt or truncated?)")
        self._check_complete(index, last)

    def window(self, pts: Sequence[int], first_index: int, time_base: Fraction) -> Iterator[Frame]:
        """The frames whose pts are listed, indexed from `first_index` in the order listed and stamped in
        `time_base` (the one `pts` is counted in).

        `pts` is ascending and lists every frame from its first to its last, as a demux of the file read them;
        decoding seeks to the keyframe at or before its first, unless `first_index` is 0 (the window starts
        the file). A frame decoded inside the window that is not listed means the listing no longer describes
        the file, so the frames cannot be numbered: a ProcessingError.
        """
        index = first_index
        for vf in self._from(pts[0] if first_index > 0 else None, lambda: f" at frame {index}"):
            if vf.pts is None or vf.pts < pts[0]:
                continue
            if vf.pts > pts[-1]:
                return
            i = bisect.bisect_left(pts, vf.pts)
            if i == len(pts) or pts[i] != vf.pts:
                raise ProcessingError(f"{self.path}: decoded a frame at pts {vf.pts} that the probe did not list")
            yield Frame(first_index + i, rgb_upright(vf), vf.pts, time_base, str(self.path))
            index = first_index + i + 1

    def span(self, start: float = 0.0, end: float | None = None, rate: float | None = None) -> Iterator[Frame]:
        """The frames from `start` to `end` seconds (both included) after the stream's first frame, numbered from
        0 at `start`, their pts counted from that first frame, so that `Frame.seconds` is the offset into the
        recording, the clock sar places recordings on. Decoding seeks to the keyframe at or before `start`.

        With `rate`, only the first frame at or after each 1/rate step from `start` is yielded. The frames
        between are still decoded (each may be the reference of the next) but never converted to RGB, which
        is most of what a sparse search would otherwise spend on them. Frames without timestamps cannot be
        placed in time: an InputError.
        """
        origin, base = self._stream.start_time or 0, self._stream.time_base
        index, due, at = 0, start, start
        for vf in self._from(origin + int(start / base) if start > 0 else None, lambda: f" at {at:.3f} s"):
            if vf.pts is None:
                raise InputError(f"{self.path}: frames carry no timestamps; they cannot be placed in time")
            at = float((vf.pts - origin) * base)
            if end is not None and at > end:
                return
            if at < start:
                continue
            if at >= due:
                due = max(due + 1 / rate, at) if rate else due
                yield Frame(index, rgb_upright(vf), vf.pts - origin, base, str(self.path))
            index += 1

    def _from(self, seek: int | None, where: Callable[[], str]) -> Iterator[av.VideoFrame]:
        """The pictures from the keyframe at or before pts `seek` (from the first without one). A seek can
        overshoot (FFmpeg seeks an MPEG-TS file by bytes and may land a keyframe after the target): the frames
        before the first one it gives would be missing, so then decoding starts from the first frame instead."""
        if seek is None:
            return self._decoded(where)
        pictures = self._decoded(where, seek)
        first = next(pictures, None)
        if first is not None and first.pts is not None and first.pts > seek:
            pictures.close()
            return self._decoded(where, 0)  # not `origin`: a TS seek to the first frame's own pts overshoots too
        return itertools.chain([] if first is None else [first], pictures)

    def _decoded(self, where: Callable[[], str], seek: int | None = None) -> Iterator[av.VideoFrame]:
        """The stream's pictures in presentation order, from the keyframe at or before pts `seek` if given.

        A corrupt packet is refused rather than decoded: a file cut off mid-packet ends in one, and with frame
        threads the decoder would hide the error and pass a partial picture on. Any FFmpeg failure, the seek's
        included, becomes a one-line InputError naming the file and `where()` (how far it got).
        """
        try:
            if seek is not None:
                self._container.seek(seek, stream=self._stream, backward=True, any_frame=False)
            for packet in self._container.demux(self._stream):
                if packet.is_corrupt:
                    raise InputError(f"{self.path}: corrupt or truncated video{where()}")
                yield from packet.decode()
        except av.FFmpegError as exc:
            raise InputError(f"{self.path}: corrupt or truncated video{where()} "
                             f"({exc.strerror or 'decode error'})") from None

    def _check_complete(self, frames: int, last: float | None) -> None:
        """A container cut short (Matroska ends cleanly) still declares its full duration: compare."""
        declared = self._video_duration()
        if self.info.is_image or declared is None or last is None:
            return
        stream = self._stream
        start = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
        step = 1.0 / float(self.info.rate) if self.info.rate else 0.0
        missing = declared - (last - start + step)
        if missing > max(0.5, 0.05 * declared):
            raise InputError(f"{self.path}: truncated: {frames} frames decoded, {missing:.1f} s of the declared "
                             f"{declared:.1f} s missing")

    def _video_duration(self) -> float | None:
        """The video track's own declared length (never the container's, which may be a longer audio track)."""
        stream = self._stream
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
        tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
        if tag and tag.count(":") == 2:
            h, m, sec = tag.split(":")
            try:
                return int(h) * 3600 + int(m) * 60 + float(sec)
            except ValueError:
                return None
        return None

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
