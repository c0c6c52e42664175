"""Live outputs: one H.264 encoder, its packets sent to an RTSP/SRT/UDP publisher and/or rolling segment files.

Only redacted pictures ever reach the encoder, so nothing unredacted can be
buffered here. Encoding once and muxing the same packets into every output
keeps the CPU cost of a second output near zero. Every keyframe carries its
SPS/PPS, so an output that (re)connects, or a new segment, starts cleanly
at the next keyframe; outputs ask the encoder for one when they need it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np

from redactor_video.errors import OutputError
from redactor_video.media.sink import video_frame
from redactor_video.stream.credentials import redact_url, safe_reason
from redactor_video.stream.source import Backoff

TIME_BASE = Fraction(1, 90000)
SEGMENT_FORMATS = {".mkv": "matroska", ".mp4": "mp4", ".ts": "mpegts"}
log = logging.getLogger("redactor.stream")


@dataclass(frozen=True)
class LiveEncodeSettings:
    """x264 tuned for live: no B-frames or look-ahead (tune=zerolatency), a keyframe every `gop_seconds`."""

    preset: str = "veryfast"
    crf: int = 23
    gop_seconds: float = 2.0


class LiveEncoder:
    """Encodes RGB pictures stamped with wall-clock pts (1/90000 s) into H.264 packets."""

    def __init__(self, settings: LiveEncodeSettings, fps: float) -> None:
        self.settings, self.fps = settings, fps
        self._ctx: av.video.codeccontext.VideoCodecContext | None = None
        self.size: tuple[int, int] | None = None

    def _open(self, width: int, height: int) -> None:
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = TIME_BASE
        ctx.framerate = Fraction(self.fps).limit_denominator(1001)
        ctx.options = {"preset": self.settings.preset, "tune": "zerolatency", "crf": str(self.settings.crf),
                       "g": str(max(1, round(self.settings.gop_seconds * self.fps)))}
        ctx.open()
        self._ctx, self.size = ctx, (width, height)

    def encode(self, image: np.ndarray, pts: int, keyframe: bool = False) -> list[av.Packet]:
        h, w = image.shape[:2]
        if self._ctx is None:
            self._open(w - w % 2, h - h % 2)
        width, height = self.size
        vf = video_frame(np.ascontiguousarray(image[:height, :width]), "yuv420p")
        vf.pts, vf.time_base = pts, TIME_BASE
        if keyframe:
            vf.pict_type = av.video.frame.PictureType.I
        return list(self._ctx.encode(vf))

    def close(self) -> None:
        self._ctx = None


def _copy(packet: av.Packet, stream: av.video.stream.VideoStream) -> av.Packet:
    """A packet for one more output: muxing rescales a packet's timestamps in place."""
    out = av.Packet(bytes(packet))
    out.pts, out.dts, out.time_base = packet.pts, packet.dts, TIME_BASE
    out.is_keyframe = packet.is_keyframe
    out.stream = stream
    return out


class PacketOutput:
    """Where encoded packets go. `send` never raises for a lost connection: the output reconnects itself
    and tells `on_event(name, detail)` ("connected" or "error")."""

    name = "output"
    up = True

    def __init__(self) -> None:
        self.on_event: Callable[[str, str], None] = lambda name, detail: None

    @property
    def wants_keyframe(self) -> bool:
        return False

    def send(self, packets: list[av.Packet], size: tuple[int, int], fps: float) -> None: ...

    def close(self) -> None: ...


class Publisher(PacketOutput):
    """Publishes to a live URL (RTSP ANNOUNCE/RECORD, SRT, UDP MPEG-TS); reconnects with backoff when it fails.

    While disconnected, packets are dropped: nothing is queued, in memory or on disk.
    PyAV holds the GIL through FFmpeg's connection handshake, so a peer that accepts
    the connection and never answers freezes the whole process until FFmpeg's I/O
    `timeout`; it is short, and attempts back off to one every `backoff.most` seconds.
    """

    name = "publish"

    def __init__(self, url: str, transport: str = "tcp", timeout: float = 2.0,
                 backoff: Backoff = Backoff(first=1.0, most=30.0)) -> None:
        super().__init__()
        self.url, self.shown_url = url, redact_url(url)
        self.transport, self.timeout, self.backoff = transport, timeout, backoff
        self._out: av.container.OutputContainer | None = None
        self._stream = None
        self._attempt = 0
        self._next_try = 0.0
        self.up = False

    @property
    def wants_keyframe(self) -> bool:
        """Only for the frame a (re)connect attempt will start with, not for every frame while down."""
        return self._out is None and time.monotonic() >= self._next_try

    def _format(self) -> tuple[str | None, dict[str, str]]:
        if self.url.startswith(("rtsp://", "rtsps://")):
            # FFmpeg's own socket I/O timeout (microseconds): PyAV's `timeout` does not reach the handshake.
            return "rtsp", {"rtsp_transport": self.transport, "timeout": str(int(self.timeout * 1_000_000))}
        if self.url.startswith(("udp://", "srt://", "tcp://")):
            return "mpegts", {}
        return None, {}

    def send(self, packets: list[av.Packet], size: tuple[int, int], fps: float) -> None:
        if self._out is None:
            if not packets or not packets[0].is_keyframe or time.monotonic() < self._next_try:
                return
            fmt, options = self._format()
            try:
                self._out = av.open(self.url, mode="w", format=fmt, options=options, timeout=self.timeout)
                self._stream = self._out.add_mux_stream("h264", rate=Fraction(fps).limit_denominator(1001),
                                                        width=size[0], height=size[1], time_base=TIME_BASE)
            except (av.FFmpegError, OSError, ValueError) as exc:
                self._fail(f"cannot publish to {self.shown_url}: {safe_reason(exc)}")
                return
        try:  # the session itself is set up by the first mux
            for packet in packets:
                self._out.mux(_copy(packet, self._stream))
        except (av.FFmpegError, OSError, ValueError) as exc:
            self._fail(f"lost {self.shown_url}: {safe_reason(exc)}")
            return
        if not self.up:
            self.up, self._attempt = True, 0
            self.on_event("connected", self.shown_url)

    def _fail(self, detail: str) -> None:
        self._drop()
        self._next_try = time.monotonic() + self.backoff.delay(self._attempt)
        self._attempt += 1
        self.up = False
        self.on_event("error", detail)

    def _drop(self) -> None:
        if self._out is not None:
            try:
                self._out.close()
            except (av.FFmpegError, OSError, ValueError):
                pass
        self._out, self._stream = None, None

    def close(self) -> None:
        self._drop()


class SegmentRecorder(PacketOutput):
    """Rolling recordings: a new file at the first keyframe after `seconds`, named by camera and UTC start.

    Each segment is written as a hidden .partial file and renamed when it is complete,
    so a reader of the folder never sees a half-written segment.
    """

    name = "record"

    def __init__(self, folder: Path, camera: str, seconds: float, suffix: str = ".mkv") -> None:
        super().__init__()
        if seconds <= 0:
            raise ValueError("the segment length must be > 0 seconds")
        if suffix not in SEGMENT_FORMATS:
            raise ValueError(f"segments can be {', '.join(SEGMENT_FORMATS)}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{folder}: cannot create the recording folder ({exc.strerror})") from None
        if not os.access(folder, os.W_OK):
            raise OutputError(f"{folder}: recording folder is not writable")
        self.folder, self.camera, self.seconds, self.suffix = folder, camera, seconds, suffix
        self.up = False
        self._out: av.container.OutputContainer | None = None
        self._stream = None
        self._paths: tuple[Path, Path] | None = None
        self._start_pts = 0
        self._last_pts = 0
        self.finished: list[Path] = []

    @property
    def wants_keyframe(self) -> bool:
        return self._out is None or self._last_pts - self._start_pts >= self.seconds / TIME_BASE

    def send(self, packets: list[av.Packet], size: tuple[int, int], fps: float) -> None:
        if not packets:
            return
        if packets[0].is_keyframe and self.wants_keyframe:
            self._finish()
            self._begin(packets[0].pts, size, fps)
        if self._out is None:
            return
        try:
            for packet in packets:
                self._out.mux(_copy(packet, self._stream))
                self._last_pts = packet.pts
        except (av.FFmpegError, OSError, ValueError) as exc:
            self.up = False
            self.on_event("error", f"recording {self._paths[1].name}: {safe_reason(exc)}")
            self._finish()

    def _begin(self, pts: int, size: tuple[int, int], fps: float) -> None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        final = self.folder / f"{self.camera}_{stamp}{self.suffix}"
        partial = self.folder / f".{final.name}.partial"
        try:
            self._out = av.open(str(partial), mode="w", format=SEGMENT_FORMATS[self.suffix])
        except (av.FFmpegError, OSError) as exc:
            self.up = False
            self.on_event("error", f"cannot record {final.name}: {safe_reason(exc)}")
            return
        self._stream = self._out.add_mux_stream("h264", rate=Fraction(fps).limit_denominator(1001),
                                                width=size[0], height=size[1], time_base=TIME_BASE)
        self._paths, self._start_pts, self._last_pts = (partial, final), pts, pts
        if not self.up:
            self.up = True
            self.on_event("connected", final.name)

    def _finish(self) -> None:
        if self._out is None:
            return
        partial, final = self._paths
        try:
            self._out.close()
            os.replace(partial, final)
            self.finished.append(final)
        except (av.FFmpegError, OSError) as exc:
            self.on_event("error", f"cannot finish {final.name}: {safe_reason(exc)}")
        self._out, self._stream, self._paths = None, None, None

    def close(self) -> None:
        self._finish()
