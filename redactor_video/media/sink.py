"""Sinks: encode redacted frames to a video or image file, keeping the source's timing and side streams."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from redactor_video.errors import OutputError
from redactor_video.media.source import VideoInfo
from redactor_video.types import Frame

_CRF_CODECS = {"libx264", "libx265", "libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1"}
_PRESET_CODECS = {"libx264", "libx265", "libsvtav1"}


@dataclass(frozen=True)
class EncodeSettings:
    """How the output is encoded; the defaults match what most VMS and players expect."""

    codec: str = "libx264"
    crf: int = 20
    preset: str = "veryfast"
    keep_audio: bool = True


def video_frame(image: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """RGB pixels as a frame for an encoder that takes `pix_fmt`. To 4:2:0 OpenCV converts, with FFmpeg's
    default matrix and range (BT.601, limited: luma within one level of FFmpeg's scaler), in a twentieth of the
    scaler's time (0.65 against 13.77 ms at 1080p, RESULTS.md): at 1080p a quarter of the thread that masks and
    encodes, which sets the pace. Other formats go through FFmpeg's scaler."""
    if pix_fmt == "yuv420p":
        return av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
    return av.VideoFrame.from_ndarray(image, format="rgb24")


def _why(exc: Exception) -> str:
    """The cause of a write error without its file name: that is the hidden temporary file, which the user
    never asked for; messages name the user's output instead."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, av.FFmpegError) and len(exc.args) >= 2:
        return str(exc.args[1])
    return str(exc)


class ImageSink:
    """Writes the one frame of a still image.

    `name` is the path messages give, when `path` is a temporary file that becomes it (the default: `path`).
    """

    def __init__(self, path: Path, name: Path | None = None) -> None:
        self.path = path
        self.name = name or path
        self._written = False

    def write(self, frame: Frame, image: np.ndarray) -> None:
        if self._written:
            raise OutputError(f"{self.name}: an image output can hold only one frame; use a video extension")
        ok, data = cv2.imencode(self.path.suffix.lower(), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OutputError(f"{self.name}: cannot encode an image of this type")
        try:
            self.path.write_bytes(data.tobytes())
        except OSError as exc:  # a full disk or a file size limit is an output problem, not a processing one
            raise OutputError(f"{self.name}: cannot write the image ({_why(exc)})") from None
        self._written = True

    def close(self) -> None:
        if not self._written:
            raise OutputError(f"{self.name}: nothing was written")

    def abort(self) -> None:
        """Nothing buffered to discard; the atomic wrapper removes the file."""


class VideoSink:
    """Encodes frames with the source's pts and time base; copies audio and subtitles after the video.

    `name` is the path messages give, when `path` is a temporary file that becomes it (the default: `path`).
    """

    def __init__(self, path: Path, info: VideoInfo, settings: EncodeSettings, passthrough_from: Path | None,
                 name: Path | None = None) -> None:
        self.path = path
        self.name = name or path
        self.info = info
        self.settings = settings
        try:
            self._out = av.open(str(path), mode="w")
        except (av.FFmpegError, ValueError) as exc:
            raise OutputError(f"{self.name}: cannot write this container ({_why(exc)})") from None
        self._video: av.VideoStream | None = None
        self._copies: list[tuple[av.stream.Stream, av.stream.Stream]] = []
        self._source: av.container.InputContainer | None = None
        # Side streams are added after the video (on the first frame), so the video stays stream 0.
        self._passthrough_from = passthrough_from if settings.keep_audio else None
        self._last_pts: int | None = None
        self._count = 0

    def _add_passthrough(self, src: Path) -> None:
        self._source = av.open(str(src), mode="r")
        for stream in self._source.streams:
            if stream.type not in ("audio", "subtitle"):
                continue
            try:
                out = self._out.add_stream_from_template(stream)
            except (av.FFmpegError, ValueError) as exc:
                raise OutputError(
                    f"{self.name.suffix} cannot carry the input's {stream.type} ({stream.codec_context.name}): {exc}; "
                    "use --drop-audio or another output extension"
                ) from None
            self._copies.append((stream, out))

    def _open_video(self, width: int, height: int) -> av.VideoStream:
        s = self.settings
        rate = self.info.rate or Fraction(25)
        try:
            stream = self._out.add_stream(s.codec, rate=rate)
        except (av.FFmpegError, ValueError) as exc:
            raise OutputError(f"unknown or unavailable codec {s.codec!r} ({exc})") from None
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        stream.time_base = self.info.time_base
        stream.codec_context.time_base = self.info.time_base
        options = {}
        if s.codec in _CRF_CODECS:
            options["crf"] = str(s.crf)
        if s.codec in _PRESET_CODECS:
            options["preset"] = s.preset
        stream.options = options
        return stream

    def write(self, frame: Frame, image: np.ndarray) -> None:
        if self._video is None:
            self._video = self._open_video(image.shape[1], image.shape[0])
            if self._passthrough_from is not None:
                self._add_passthrough(self._passthrough_from)
        vf = video_frame(image, self._video.pix_fmt)
        pts = frame.pts
        if pts is None or frame.time_base != self.info.time_base:
            pts = self._fallback_pts(frame)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        vf.pts, vf.time_base = pts, self.info.time_base
        self._last_pts = pts
        try:
            self._out.mux(self._video.encode(vf))
        except av.FFmpegError as exc:
            raise OutputError(f"{self.name}: encoder failed ({_why(exc)})") from None
        self._count += 1

    def _fallback_pts(self, frame: Frame) -> int:
        if frame.pts is not None and frame.time_base:
            return int(round(frame.pts * frame.time_base / self.info.time_base))
        rate = self.info.rate or Fraction(25)
        return int(round(frame.index / rate / self.info.time_base))

    def close(self) -> None:
        if self._video is None:
            self.abort()
            raise OutputError(f"{self.name}: no frames to write")
        try:
            self._out.mux(self._video.encode(None))
            self._copy_passthrough()
            self._out.close()
        except av.FFmpegError as exc:
            self.abort()
            raise OutputError(f"{self.name}: could not finish the file ({_why(exc)})") from None
        self._close_source()

    def _copy_passthrough(self) -> None:
        if self._source is None or not self._copies:
            return
        mapping = {src.index: out for src, out in self._copies}
        for packet in self._source.demux([src for src, _ in self._copies]):
            if packet.dts is None:
                continue
            packet.stream = mapping[packet.stream.index]
            self._out.mux(packet)

    def abort(self) -> None:
        """Stop without finishing; the half-written file is removed by the atomic wrapper."""
        self._close_source()
        try:
            self._out.close()
        except av.FFmpegError:
            pass

    def _close_source(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None
