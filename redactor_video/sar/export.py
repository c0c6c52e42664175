"""Export: each segment re-encoded through the redaction pipeline with only the requester left clear.

Each segment runs through the normal Pipeline, whose Recogniser is the
watchlist matcher (same MatchPolicy as the watchlist) holding only the
requester's entry: a face is clear only in the frames where the requester's
own matching samples cover it (`reveals`), every other face is masked, and the
pipeline's guarantees hold (a detector failure masks the frame whole; any
other failure aborts the run, and the package is never completed). Clips carry
no audio: voices of third parties cannot be redacted.

A redaction cut from the middle of a recording starts blind: a bystander whose
face the detector missed in the segment's first frames, but whose track a
whole-file run had started earlier and still holds there, would be written
clear. So the pipeline starts a pre-roll (`pre_roll`) ahead of the segment, or
at the recording's start, long enough for every track and every match alive at
the segment's first frame to be established, and runs a post-roll of one
look-ahead past its end, so a face found just after the segment is painted
back over its last frames, and the requester's samples there vouch for them,
as in a whole-file run. Frames of the pre-roll and post-roll are analysed like
the clip's and never written: the clip holds only the segment's frames,
renumbered from 0 with timestamps from 0. Thumbnails are taken from the frames
written to the clip, after their masks were decided, never from the source or
from a pre-roll frame.

With `context` (--blur-subject-context) the sink also blurs everything outside
the requester's head region, and frames where the requester is not confirmed
are blurred whole.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from redactor_video.audit import AuditLog
from redactor_video.errors import OutputError
from redactor_video.mask.kernels import redact_everything
from redactor_video.mask.masker import Masker
from redactor_video.media.sink import VideoSink
from redactor_video.media.source import FileSource
from redactor_video.pipeline import Pipeline, RedactSettings
from redactor_video.recognise.embedder import Embedder
from redactor_video.recognise.keys import Key
from redactor_video.recognise.matcher import MatchPolicy, WatchlistMatcher
from redactor_video.recognise.watchlist import Entry
from redactor_video.sar.search import Segment
from redactor_video.track.policy import POLICY
from redactor_video.types import Frame, Tracks

THUMBNAILS = 3
THUMBNAIL_WIDTH = 320
_NOTHING = (np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, bool))


@dataclass(frozen=True)
class ExportedClip:
    """One exported clip: paths relative to the package folder, its frame count, and in how many of them the
    requester was detected and left clear."""

    segment: Segment
    clip: Path
    thumbnails: tuple[Path, ...]
    frames: int
    requester_frames: int
    first_offset: float
    last_offset: float


class _Witness:
    """The Recogniser the pipeline sees: the matcher, plus where each track was in each frame still in flight,
    so the sink can tell the requester's head region once the matcher has decided."""

    def __init__(self, matcher: WatchlistMatcher) -> None:
        self.matcher = matcher
        self._where: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def observe(self, frame: Frame, tracked: Tracks) -> None:
        with self._lock:
            self._where[frame.index] = (np.array(tracked.tracker_id), np.array(tracked.xyxy),
                                        np.array(tracked.predicted))
        self.matcher.observe(frame, tracked)

    def reveals(self, track_id: int, index: int) -> bool:
        return self.matcher.reveals(track_id, index)

    def close(self) -> None:
        self.forget()
        self.matcher.close()

    def take(self, index: int) -> tuple[np.ndarray, bool]:
        """The boxes in frame `index` of the tracks the matcher shows clear there (the requester), and whether one
        of them was detected there rather than predicted; the frame is then forgotten."""
        with self._lock:
            ids, boxes, predicted = self._where.pop(index, _NOTHING)
        shown = np.array([self.matcher.reveals(int(t), index) for t in ids], bool)
        return boxes[shown].reshape(-1, 4), bool(np.any(shown & ~predicted))

    def forget(self) -> None:
        with self._lock:
            self._where.clear()


class _Thumbnails:
    """A bounded, evenly spread pool of small stills of the finished frames, preferring frames showing the
    requester; the pool halves its density whenever it fills, so any clip length costs the same memory."""

    def __init__(self, pool: int = 48) -> None:
        self._pool_size = pool
        self._every = 1
        self._pool: list[tuple[int, bool, np.ndarray]] = []

    def offer(self, index: int, image: np.ndarray, requester: bool) -> None:
        if index % self._every:
            return
        h, w = image.shape[:2]
        size = (THUMBNAIL_WIDTH, max(2, round(h * THUMBNAIL_WIDTH / w))) if w > THUMBNAIL_WIDTH else (w, h)
        self._pool.append((index, requester, cv2.resize(image, size, interpolation=cv2.INTER_AREA)))
        if len(self._pool) > self._pool_size:
            self._every *= 2
            self._pool = [p for p in self._pool if p[0] % self._every == 0]

    def write(self, folder: Path, stem: str) -> list[Path]:
        shown = [p for p in self._pool if p[1]] or self._pool
        picks = sorted({int(round(x)) for x in np.linspace(0, len(shown) - 1, min(THUMBNAILS, len(shown)))})
        paths = []
        for k, pick in enumerate(picks, start=1):
            path = folder / f"{stem}_{k}.jpg"
            ok, data = cv2.imencode(".jpg", cv2.cvtColor(shown[pick][2], cv2.COLOR_RGB2BGR))
            if not ok:
                raise OutputError(f"{path}: cannot encode the thumbnail")
            path.write_bytes(data.tobytes())
            paths.append(path)
        return paths


class _ClipSink:
    """Writes the segment's frames of the pipeline's output to the video sink, renumbered from 0 with
    timestamps from 0, masking all but the requester's head with `context`, and offers each written frame to
    the thumbnails; frames of the pre-roll and post-roll only release what the witness holds for them."""

    def __init__(self, inner: VideoSink, cut: _Cut, witness: _Witness, masker: Masker, context: bool,
                 thumbnails: _Thumbnails) -> None:
        self._inner, self._cut, self._witness, self._masker = inner, cut, witness, masker
        self._context, self._thumbnails = context, thumbnails
        self._first_pts = 0
        self.frames = self.requester_frames = 0
        self.first_offset = self.last_offset = 0.0

    def write(self, frame: Frame, image: np.ndarray) -> None:
        boxes, seen = self._witness.take(frame.index)
        placed = self._cut.place(frame.index)
        if placed is None:
            return
        offset, pts = placed
        if self._context:
            image = _only(image, self._masker.regions(boxes, frame.width, frame.height).boxes)
        if not self.frames:
            self._first_pts, self.first_offset = pts, offset
        index, self.last_offset = self.frames, offset
        self.frames += 1
        self.requester_frames += seen
        self._thumbnails.offer(index, image, seen)
        self._inner.write(dataclasses.replace(frame, index=index, pts=pts - self._first_pts), image)

    def close(self) -> None:
        self._inner.close()

    def abort(self) -> None:
        self._inner.abort()


def _only(image: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The frame blurred whole except inside the `keep` boxes, which stay as the pipeline left them."""
    out = redact_everything(image)
    h, w = image.shape[:2]
    for x1, y1, x2, y2 in np.asarray(keep, np.int64).reshape(-1, 4):
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if x2 > x1 and y2 > y1:
            out[y1:y2, x1:x2] = image[y1:y2, x1:x2]
    return out


def pre_roll(settings: RedactSettings, fps: float) -> float:
    """Seconds redacted ahead of a segment: the longest a track outlives its last detection (a small face's
    hold), plus the look-ahead and one sweep period. A face the detector found at any time a whole-file run
    would still hold it at the segment's first frame is then found in the pre-roll too; the look-ahead on top
    leaves time for what needs several finds or samples (a track started from repeated faint finds, the
    requester's two matching samples), so the segment starts as a whole-file run would have it."""
    return POLICY.small_hold * settings.hold_seconds + settings.longest_lookahead + settings.sweep_period(fps) / fps


class _Cut:
    """The frames a segment is redacted from: `before` seconds ahead of it (or from the recording's start) to
    `after` seconds past it, numbered from 0 with timestamps from the first; remembers which are the
    segment's own (offsets in [start, end]) until the sink asks."""

    def __init__(self, segment: Segment, before: float, after: float) -> None:
        self.segment, self.before, self.after = segment, before, after
        self._inside: dict[int, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def frames(self) -> Iterator[Frame]:
        rec, seg = self.segment.recording, self.segment
        first_pts = None
        with FileSource(rec.path) as source:
            for frame in source.span(max(0.0, seg.start - self.before), seg.end + self.after):
                offset = frame.seconds
                if first_pts is None:
                    first_pts = frame.pts
                pts = frame.pts - first_pts
                if seg.start <= offset <= seg.end:
                    with self._lock:
                        self._inside[frame.index] = offset, pts
                yield Frame(frame.index, frame.image, pts, frame.time_base, frame.source)

    def place(self, index: int) -> tuple[float, int] | None:
        """(offset in the recording, pts) of frame `index` if it belongs to the segment, else None; asked once a
        frame, as it is written."""
        with self._lock:
            return self._inside.pop(index, None)


class Exporter:
    """Exports segments with one pipeline and one matcher that knows only the requester's entry."""

    def __init__(self, entry: Entry, embedder: Embedder, audit_path: Path, key: Key, settings: RedactSettings,
                 context: bool, models_dir: str | Path | None = None, policy: MatchPolicy | None = None) -> None:
        self.settings = dataclasses.replace(settings, encode=dataclasses.replace(settings.encode, keep_audio=False))
        self.context = context
        matcher = WatchlistMatcher((entry,), embedder, AuditLog(audit_path, key), reveal=True, policy=policy)
        self._witness = _Witness(matcher)
        try:
            self._pipeline = Pipeline(self.settings, models_dir, recogniser=self._witness)
        except BaseException:
            self._witness.close()
            raise

    def close(self) -> None:
        self._pipeline.close()

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def export(self, segment: Segment, root: Path, stem: str) -> ExportedClip:
        """Write `clips/<stem>.mp4` and `thumbs/<stem>_<k>.jpg` under `root`; any failure raises, and the caller
        discards the unfinished package."""
        rec = segment.recording
        with FileSource(rec.path) as source:
            info = source.info
        clip = Path("clips") / f"{stem}.mp4"
        (root / clip.parent).mkdir(parents=True, exist_ok=True)
        (root / "thumbs").mkdir(parents=True, exist_ok=True)
        cut, thumbnails = _Cut(segment, pre_roll(self.settings, rec.fps), self.settings.longest_lookahead), \
            _Thumbnails()
        self._witness.forget()
        sink = _ClipSink(VideoSink(root / clip, info, self.settings.encode, None), cut, self._witness,
                         self._pipeline.masker, self.context, thumbnails)
        self._pipeline.run(cut.frames(), sink, rec.fps)
        stills = thumbnails.write(root / "thumbs", stem)
        return ExportedClip(segment, clip, tuple(p.relative_to(root) for p in stills), sink.frames,
                            sink.requester_frames, sink.first_offset, sink.last_offset)

