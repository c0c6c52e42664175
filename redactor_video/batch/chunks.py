"""Long recordings: split at keyframes, redact the chunks apart, join them back losslessly and frame-exact.

Each chunk owns the frames in [start, end) and decodes [start - overlap, end +
overlap], with overlap >= the longest hold (a small face's) + look-ahead + one sweep interval: every face
detection that could mask one of its own frames in a whole-file run (a track held
from before the seam, a face found after the seam and painted back by the
look-ahead) is therefore seen by the chunk too, so tracks are continuous across
seams. Frames keep their whole-file index, so the detection schedule is the same.

The chunk encodes start with an IDR frame (every encode does) and carry the
source's timestamps, so the join is a stream copy: packets concatenated into one
file, audio and subtitles copied from the source, then checked against the
source to hold the same frames with the same timestamps.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from redactor_video.errors import InputError, OutputError, ProcessingError
from redactor_video.media.sink import VideoSink
from redactor_video.media.source import FileSource, open_video
from redactor_video.pipeline import RedactSettings
from redactor_video.track.policy import POLICY
from redactor_video.types import Frame

_START_TOLERANCE = Fraction(1, 1000)
"""MP4 places a track's first frame with an edit list counted in milliseconds."""


@dataclass(frozen=True)
class Probe:
    """Every video frame's pts (presentation order) and the keyframes', read by demuxing without decoding."""

    pts: tuple[int, ...]
    keyframes: tuple[int, ...]
    time_base: Fraction


@dataclass(frozen=True)
class Chunk:
    """One chunk: it writes frames with start <= pts < end (end None: to the last frame) and decodes `window`.

    `window` is every pts decoded, ascending, from the keyframe it seeks to;
    `first_index` is the whole-file index of `window[0]`.
    """

    index: int
    start: int
    end: int | None
    window: tuple[int, ...]
    first_index: int

    @property
    def frames(self) -> int:
        """How many frames this chunk writes."""
        lo = bisect.bisect_left(self.window, self.start)
        hi = len(self.window) if self.end is None else bisect.bisect_left(self.window, self.end)
        return hi - lo


def overlap_seconds(settings: RedactSettings, fps: float) -> float:
    """Enough context on each side of a seam for hold (a small face's, the longest), look-ahead and the next
    small-face sweep."""
    return POLICY.small_hold * settings.hold_seconds + settings.longest_lookahead + 1 / settings.sweep_rate


def probe(path: Path) -> Probe:
    """Read every packet's timing; a file whose video packets lack timestamps cannot be split."""
    pts: list[int] = []
    keys: list[int] = []
    container, stream = open_video(path)
    try:
        with container:
            tb = stream.time_base
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.is_corrupt:
                    raise InputError(f"{path}: corrupt or truncated video at packet {len(pts)}")
                if packet.pts is None:
                    raise ProcessingError(f"{path}: video packets without timestamps cannot be split into chunks")
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
    except av.FFmpegError as exc:
        raise InputError(f"{path}: cannot read its packets ({exc})") from None
    if tb is None or not pts:
        raise InputError(f"{path}: no video packets")
    ordered = sorted(pts)
    if len(set(ordered)) != len(ordered):
        raise ProcessingError(f"{path}: two video frames share a timestamp; cannot split into chunks")
    return Probe(tuple(ordered), tuple(sorted(keys)), Fraction(tb))


def plan(info: Probe, chunk_seconds: float, overlap: float) -> list[Chunk]:
    """Chunks of about `chunk_seconds`, cut at the first keyframe after each multiple of it.

    Returns a single chunk (the whole file) when the file is shorter than two
    chunks or has no keyframe to cut at; the last chunk is at least half a chunk.
    """
    pts, keys, tb = info.pts, info.keyframes, info.time_base
    if chunk_seconds <= 0 or (pts[-1] - pts[0]) * tb < 2 * chunk_seconds:
        return [Chunk(0, pts[0], None, pts, 0)]
    length = int(math.ceil(chunk_seconds / tb))
    margin = int(math.ceil(overlap / tb))
    cuts: list[int] = []
    target = pts[0] + length
    while True:
        k = bisect.bisect_left(keys, target)
        if k == len(keys) or keys[k] > pts[-1] - length // 2:
            break
        cuts.append(keys[k])
        target = keys[k] + length
    bounds = [pts[0], *cuts, None]
    chunks = []
    for i, (start, end) in enumerate(zip(bounds, bounds[1:])):
        # Decoding starts at the last keyframe at or before start - overlap (the first frame for chunk 0).
        k = bisect.bisect_right(keys, start - margin) - 1
        seek = keys[k] if i > 0 and k >= 0 else pts[0]
        lo = bisect.bisect_left(pts, seek)
        hi = len(pts) if end is None else bisect.bisect_right(pts, end + margin)
        chunks.append(Chunk(i, start, end, pts[lo:hi], lo))
    return chunks


def chunk_frames(path: Path, chunk: Chunk, time_base: Fraction) -> Iterator[Frame]:
    """Decode the chunk's window as Frames with whole-file indices; any frame the probe did not list is an error."""
    with FileSource(path) as source:
        yield from source.window(chunk.window, chunk.first_index, time_base)


class WindowSink:
    """Passes on only the chunk's own frames, in order, and refuses to finish unless it got every one of them."""

    def __init__(self, inner: VideoSink, chunk: Chunk, on_frame: Callable[[int], None]) -> None:
        self._inner, self._chunk, self._on_frame = inner, chunk, on_frame
        self._written = 0
        self._last: int | None = None

    def write(self, frame: Frame, image: np.ndarray) -> None:
        c = self._chunk
        if frame.pts is None or frame.pts < c.start or (c.end is not None and frame.pts >= c.end):
            return
        if self._last is not None and frame.pts <= self._last:
            raise ProcessingError(f"chunk {c.index}: frames out of order at pts {frame.pts}")
        self._inner.write(frame, image)
        self._last = frame.pts
        self._written += 1
        self._on_frame(1)

    def close(self) -> None:
        if self._written != self._chunk.frames:
            self._inner.abort()
            raise ProcessingError(f"chunk {self._chunk.index}: decoded {self._written} of its "
                                  f"{self._chunk.frames} frames; cannot join it frame-exact")
        self._inner.close()

    def abort(self) -> None:
        self._inner.abort()


def join(parts: list[Path], starts: list[int], source: Path, out: Path, reference: Probe, keep_audio: bool) -> int:
    """Concatenate the chunk encodes into `out` by stream copy, add the source's audio and subtitles, and check
    the result has exactly the source's frames and timestamps; returns the frame count.

    `starts` is each chunk's first pts in the source's time base. A chunk's MP4
    file may report its timestamps shifted by under a millisecond (the edit list
    that places its first frame counts in milliseconds), so each chunk is put
    back at its exact start. The joined file's own start can carry the same
    sub-millisecond shift, as any MP4 encode of that source would; every other
    timestamp must match the source exactly.
    """
    try:
        _concatenate(parts, starts, reference.time_base, source, out, keep_audio)
    except av.FFmpegError as exc:
        raise OutputError(f"{out}: cannot join the chunks ({exc})") from None
    with av.open(str(out)) as joined:
        stream = joined.streams.video[0]
        got = sorted(p.pts for p in joined.demux(stream) if p.size and p.pts is not None)
        tb = Fraction(stream.time_base)
    ref, ref_tb = reference.pts, reference.time_base
    if len(got) != len(ref):
        raise ProcessingError(f"{out}: joined {len(got)} frames, the input has {len(ref)}")
    if abs(got[0] * tb - ref[0] * ref_tb) > _START_TOLERANCE:
        raise ProcessingError(f"{out}: joined video starts at {float(got[0] * tb):.6f} s, "
                              f"the input at {float(ref[0] * ref_tb):.6f} s")
    for mine, theirs in zip(got, ref):
        if (mine - got[0]) * tb != (theirs - ref[0]) * ref_tb:
            raise ProcessingError(f"{out}: joined frame at {float(mine * tb):.6f} s does not match the input's "
                                  f"{float(theirs * ref_tb):.6f} s")
    return len(got)


def _concatenate(parts: list[Path], starts: list[int], time_base: Fraction, source: Path, out: Path,
                 keep_audio: bool) -> None:
    """Video packets of every part in turn, then the source's audio and subtitles unchanged (as the whole-file
    sink copies them); every stream is added before the first packet is written."""
    with av.open(str(out), mode="w") as dst, av.open(str(source)) as side, av.open(str(parts[0])) as first:
        template = first.streams.video[0]
        extradata = template.codec_context.extradata
        video = dst.add_stream_from_template(template)
        copies = {s.index: dst.add_stream_from_template(s) for s in side.streams
                  if keep_audio and s.type in ("audio", "subtitle")}
        last_dts: Fraction | None = None
        for i, (part, start) in enumerate(zip(parts, starts)):
            with av.open(str(part)) as src:
                stream = src.streams.video[0]
                if stream.codec_context.extradata != extradata:
                    raise ProcessingError(f"chunk {i} was encoded with different parameters; "
                                          "cannot join by stream copy")
                packets = [p for p in src.demux(stream) if p.dts is not None and p.size]
                if not packets or not packets[0].is_keyframe:
                    raise ProcessingError(f"chunk {i} does not start with a keyframe; cannot join by stream copy")
                part_tb = Fraction(stream.time_base)
                shift = start * time_base / part_tb - min(p.pts for p in packets)
                if shift.denominator != 1:
                    raise ProcessingError(f"chunk {i}: its time base cannot hold the input's timestamps exactly")
                for packet in packets:
                    packet.pts += int(shift)
                    packet.dts += int(shift)
                    dts = packet.dts * part_tb
                    if last_dts is not None and dts <= last_dts:
                        raise ProcessingError(f"chunk {i} overlaps the one before it in decode order; cannot join")
                    last_dts = dts
                    packet.stream = video
                    dst.mux(packet)
        if copies:
            for packet in side.demux([s for s in side.streams if s.index in copies]):
                if packet.dts is None:
                    continue
                packet.stream = copies[packet.stream.index]
                dst.mux(packet)
