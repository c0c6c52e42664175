"""Live input: anything FFmpeg opens live (RTSP, HTTP, SRT, UDP MPEG-TS, a V4L2 device), reconnected on loss.

A camera that drops looks to FFmpeg like a clean end of stream (RTSP
teardown) or a read timeout; either way the source waits with exponential
backoff and opens the input again. It never ends on its own: a live filter
runs until it is told to stop.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import av

from redactor_video.media.source import rgb_upright
from redactor_video.stream.credentials import redact_url, safe_reason
from redactor_video.types import Frame

log = logging.getLogger("redactor.stream")


@dataclass(frozen=True)
class Backoff:
    """Seconds to wait before reconnect attempt n (0-based): first * factor**n, at most `most`."""

    first: float = 0.5
    factor: float = 2.0
    most: float = 10.0

    def delay(self, attempt: int) -> float:
        return min(self.most, self.first * self.factor ** attempt)


class CaptureClock:
    """When each frame was taken, on our monotonic clock, from the stream's own timestamps.

    Arrival time alone lies after a stall (the process frozen, the network paused): the frames that
    waited in the socket arrive in a burst and would all look fresh, and the tracker would see faces
    jump between frames 1 ms apart. The delay baseline is the smallest (arrival - stream time) seen;
    it may creep up by DRIFT per second to absorb a camera clock running slow, and a timestamp that
    goes backwards or a frame that looks RESYNC seconds late is taken as a jump (the source looped or
    restarted its clock): the baseline starts again from that frame.

    The other way, frames that arrive sooner than their timestamps allow (each earlier than the baseline
    by more than half its gap from the frame before: an input read faster than real time, the frames a
    reconnect's probe read ahead) can only be stamped with their arrival, milliseconds apart; `ahead`
    says so for the latest frame, so the filter does not take them for a stream it sees at its own pace.
    """

    DRIFT = 0.001
    RESYNC = 5.0

    def __init__(self) -> None:
        self._offset: float | None = None
        self._last: float | None = None
        self.ahead = False

    def taken(self, stream_seconds: float | None, arrival: float) -> float:
        self.ahead = False
        if stream_seconds is None:
            return arrival
        jumped_back = self._last is not None and stream_seconds < self._last  # a looping or restarted source
        delay = arrival - stream_seconds
        if self._offset is not None and self._last is not None and not jumped_back:
            gap = stream_seconds - self._last
            self._offset += self.DRIFT * gap
            self.ahead = delay < self._offset - gap / 2
        self._last = stream_seconds
        if self._offset is None or jumped_back or delay < self._offset or delay - self._offset > self.RESYNC:
            self._offset = delay
        return stream_seconds + self._offset


@dataclass(frozen=True)
class Captured:
    """A live frame and what its timestamps cannot tell a filter, since they start again with every connection:
    when it was taken (time.monotonic seconds, CaptureClock) and whether it came ahead of the stream's own
    pace (CaptureClock.ahead)."""

    frame: Frame
    taken: float
    ahead: bool


@dataclass(frozen=True)
class InputSettings:
    url: str
    transport: str = "tcp"  # RTSP only: tcp or udp
    input_format: str | None = None  # e.g. v4l2 for /dev/video0
    open_timeout: float = 5.0
    read_timeout: float = 5.0
    backoff: Backoff = Backoff()

    def options(self) -> dict[str, str]:
        if self.url.startswith(("rtsp://", "rtsps://")):
            return {"rtsp_transport": self.transport}
        return {}


class LiveSource:
    """Decoded RGB pictures with when they were taken (time.monotonic) from a live input, until `stop` is set.

    `on_event(name, detail)` hears "connected", "ended" and "error" (detail never holds the URL's
    credentials), so the filter can count reconnects and mark the input down.
    """

    def __init__(self, settings: InputSettings) -> None:
        self.settings = settings
        self.shown_url = redact_url(settings.url)
        self.on_event: Callable[[str, str], None] = lambda name, detail: None
        self.fps: float | None = None

    def frames(self, stop: threading.Event) -> Iterator[Captured]:
        """Frames, indexed from 0 across reconnects, each with when it was taken; reconnects until `stop`."""
        s = self.settings
        attempt = index = 0
        while not stop.is_set():
            try:
                container = av.open(s.url, mode="r", format=s.input_format, options=s.options(),
                                    timeout=(s.open_timeout, s.read_timeout))
            except (av.FFmpegError, OSError, ValueError) as exc:
                self.on_event("error", f"cannot open {self.shown_url}: {safe_reason(exc)}")
            else:
                try:
                    if not container.streams.video:
                        self.on_event("error", f"{self.shown_url} has no video stream")
                    else:
                        stream = container.streams.video[0]
                        rate = stream.average_rate or stream.guessed_rate
                        self.fps = float(rate) if rate else self.fps
                        self.on_event("connected", f"{self.shown_url} {stream.codec_context.width}x"
                                                 f"{stream.codec_context.height}")
                        clock = CaptureClock()
                        for vf in container.decode(stream):
                            attempt = 0
                            taken = clock.taken(vf.time, time.monotonic())
                            frame = Frame(index, rgb_upright(vf), vf.pts, vf.time_base, self.shown_url)
                            yield Captured(frame, taken, clock.ahead)
                            index += 1
                            if stop.is_set():
                                return
                        self.on_event("ended", f"{self.shown_url} ended the stream")
                except (av.FFmpegError, OSError, ValueError) as exc:
                    self.on_event("error", f"{self.shown_url}: {safe_reason(exc)}")
                finally:
                    container.close()
            stop.wait(s.backoff.delay(attempt))
            attempt += 1
