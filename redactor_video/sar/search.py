"""Search: find the tracks in a recording that match the requester, fast, and merge them into segments.

Only sparse frames are looked at: BlazeFace on the whole frame `sample_rate`
times a second (cheap; it finds the large faces that move fast), and CenterFace
at a reduced scale `sweep_rate` times a second (it finds the faces down to the
match policy's `min_face_px`, the smallest the embedder is trusted with). The
frames in between are decoded but never converted or analysed, and a stretch
with no face costs only those detector calls. Every frame is decoded: skipping
non-reference frames would be faster, but the "smart" codecs of many cameras
mark most frames non-reference, and whole passes of people would go unseen.

A tracker joins the detections into tracks, and each track is embedded at
most `samples_per_track` times, once its face is whole, unoverlapped and at
least the policy's `min_face_px` wide. A track matches when one sample lies
within the policy's threshold of the requester's templates: the watchlist's
calibrated threshold (MatchPolicy, benchmarks/RESULTS.md), never a looser one
of the search's own, so search and export judge a sample by one rule. A track
is rejected after one sample beyond `decisive_distance` (dlib's same-person
limit, 0.6, which no sample of the requester at >= 40 px came near in
benchmarks/recognition.py) or after `samples_per_track` samples. Matching here
only proposes where to look: the export runs the full, voting matcher with the
same policy before anyone is left clear.

A sample that does not match is forgotten at once: its vector and distances
are zeroed before the next line runs, and of a rejected track only its id is
kept, so it is never embedded again. Nothing about any track but the
requester's leaves this module.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from redactor_video.detect import create_detector, nms
from redactor_video.errors import ProcessingError, RedactorError
from redactor_video.media.source import FileSource
from redactor_video.recognise.embedder import Embedder
from redactor_video.recognise.matcher import MAX_THRESHOLD, MatchPolicy, overlapping
from redactor_video.sar.archive import Recording
from redactor_video.track.tracker import Tracker
from redactor_video.types import Detections

T = TypeVar("T")
_MATCH, _UNSURE, _FAR = 1, 0, -1


@dataclass(frozen=True)
class ScanSettings:
    """How sparsely the archive is searched, and how matches become segments; recorded in the manifest.

    Which faces are embedded and when one matches is the match policy's (`MatchPolicy.min_face_px`,
    `threshold`), recorded beside these. `sweep_scale` 0.4 makes a 40 px face (the policy's smallest) 16 px
    wide at CenterFace's input, where it still finds it.
    """

    sample_rate: float = 3.0
    sweep_rate: float = 1.0
    sweep_scale: float = 0.4
    detect_threshold: float = 0.5
    decisive_distance: float = MAX_THRESHOLD
    samples_per_track: int = 2
    sample_gap_seconds: float = 0.5
    embeds_per_frame: int = 2
    hold_seconds: float = 2.5
    padding_seconds: float = 3.0

    def __post_init__(self) -> None:
        if not 0 < self.sweep_rate <= self.sample_rate:
            raise ValueError("need 0 < sweep_rate <= sample_rate")
        if not 0.0 < self.decisive_distance <= MAX_THRESHOLD:
            raise ValueError(f"the decisive distance must be in (0, {MAX_THRESHOLD}]")
        if self.samples_per_track < 1 or self.embeds_per_frame < 1:
            raise ValueError("samples_per_track and embeds_per_frame must be positive")
        if min(self.padding_seconds, self.hold_seconds, self.sample_gap_seconds) < 0:
            raise ValueError("padding, hold and sample gap must be >= 0 seconds")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ScanResult:
    """Where the requester was seen in one recording (offsets in seconds), and counts of the work done."""

    recording: Recording
    span: tuple[float, float]
    seen: list[tuple[float, float]] = field(default_factory=list)
    samples: int = 0
    tracks: int = 0
    embeddings: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Segment:
    """A stretch of one recording to export: the clip [start, end] and where in it the requester was seen."""

    recording: Recording
    start: float
    end: float
    seen_from: float
    seen_to: float


@dataclass
class _Track:
    first_seen: float
    last_seen: float
    samples: int = 0
    last_sample: float = float("-inf")


class Scanner:
    """Searches recordings for the requester with `policy`'s threshold and face size; load once, scan many files."""

    def __init__(self, settings: ScanSettings, embedder: Embedder, models_dir: str | Path | None = None,
                 policy: MatchPolicy | None = None) -> None:
        self.settings = settings
        self.policy = policy or MatchPolicy()
        if settings.decisive_distance < self.policy.threshold:
            raise ValueError("the decisive distance cannot be below the match threshold")
        self._embedder = embedder
        s = settings
        self._cheap = create_detector("blazeface", threshold=s.detect_threshold, models_dir=models_dir)
        try:
            self._sweep = create_detector("centerface", threshold=s.detect_threshold, models_dir=models_dir,
                                          scale=s.sweep_scale)
        except BaseException:
            self._cheap.close()
            raise

    def close(self) -> None:
        self._cheap.close()
        self._sweep.close()

    def __enter__(self) -> Scanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def scan(self, recording: Recording, span: tuple[float, float], templates: np.ndarray) -> ScanResult:
        """The stretches of `recording` within `span` where a track matching `templates` was seen."""
        s = self.settings
        result = ScanResult(recording, span)
        started = time.perf_counter()
        tracker: Tracker | None = None
        live: dict[int, _Track] = {}
        matched: dict[int, list[float]] = {}
        rejected: set[int] = set()
        next_sweep = span[0]
        for offset, image in _prefetch(_sampled(recording.path, span, s.sample_rate)):
            sweep = offset >= next_sweep
            if sweep:
                next_sweep = max(next_sweep + 1 / s.sweep_rate, offset)
            if tracker is None:
                tracker = Tracker(hold_seconds=s.hold_seconds, high=s.detect_threshold, low=s.detect_threshold / 2,
                                  frame_size=(image.shape[1], image.shape[0]))
            tracked = tracker.update(self._detect(image, sweep, recording, offset), offset, detected=sweep)
            result.samples += 1
            ids = [int(t) for t in tracked.tracker_id]
            for gone in set(live) - set(ids):
                del live[gone]
            wanted = []
            # Boxes sharing more of their area than the matcher allows give crops that mix two faces: not embedded.
            overlapped = overlapping(tracked.xyxy, self.policy.overlap)
            for i, tid in enumerate(ids):
                detected = not bool(tracked.predicted[i])
                if tid not in live and tid not in matched and tid not in rejected:
                    live[tid] = _Track(offset, offset)
                    result.tracks += 1
                if detected and tid in matched:
                    matched[tid][1] = offset
                track = live.get(tid)
                if track is None or tid in matched or tid in rejected:
                    continue
                if detected:
                    track.last_seen = offset
                if detected and not overlapped[i] and self._eligible(track, tracked.xyxy[i], image, offset):
                    wanted.append((track.samples, -float(tracked.widths[i]), tid, i))
            for _, _, tid, i in sorted(wanted)[: s.embeds_per_frame]:
                track = live[tid]
                track.samples += 1
                track.last_sample = offset
                result.embeddings += 1
                verdict = self._judge(image, tracked.xyxy[i], templates)
                if verdict == _MATCH:
                    matched[tid] = [track.first_seen, track.last_seen]
                elif verdict == _FAR or track.samples >= s.samples_per_track:
                    rejected.add(tid)
                    del live[tid]
        result.seen = sorted((a, b) for a, b in matched.values())
        result.seconds = time.perf_counter() - started
        return result

    def _detect(self, image: np.ndarray, sweep: bool, recording: Recording, offset: float) -> Detections:
        try:
            parts = [self._cheap.detect(image)] + ([self._sweep.detect(image)] if sweep else [])
        except Exception as exc:  # a search that cannot see is no search: fail, never skip the frame
            raise ProcessingError(f"{recording.path}: face detection failed at {offset:.1f} s "
                                  f"({type(exc).__name__}); nothing was exported") from None
        return nms(Detections.merge(parts))

    def _eligible(self, track: _Track, box: np.ndarray, image: np.ndarray, offset: float) -> bool:
        s = self.settings
        if track.samples >= s.samples_per_track or offset - track.last_sample < s.sample_gap_seconds:
            return False
        x1, y1, x2, y2 = (float(v) for v in box)
        whole = x1 > 0 and y1 > 0 and x2 < image.shape[1] and y2 < image.shape[0]
        return whole and min(x2 - x1, y2 - y1) >= self.policy.min_face_px

    def _judge(self, image: np.ndarray, box: np.ndarray, templates: np.ndarray) -> int:
        """One sample's verdict (_MATCH, _UNSURE or _FAR); the vector and the distances are zeroed first."""
        try:
            vector = self._embedder.embed(image, box)
        except Exception:  # an unusable crop is a sample that did not match
            return _UNSURE
        distances = np.linalg.norm(templates - vector, axis=1)
        vector.fill(0.0)
        nearest = float(distances.min())
        distances.fill(0.0)
        if nearest <= self.policy.threshold:
            return _MATCH
        return _FAR if nearest > self.settings.decisive_distance else _UNSURE


def segments(result: ScanResult, padding: float) -> list[Segment]:
    """The requester's sightings padded by `padding` seconds, kept inside the searched span, overlaps merged."""
    lo, hi = result.span
    frame = 1 / result.recording.fps
    out: list[Segment] = []
    for seen_from, seen_to in sorted(result.seen):
        start, end = max(lo, seen_from - padding), min(hi, seen_to + padding)
        end = min(hi, max(end, start + frame))
        if out and start <= out[-1].end:
            last = out[-1]
            out[-1] = Segment(last.recording, last.start, max(last.end, end), last.seen_from,
                              max(last.seen_to, seen_to))
        else:
            out.append(Segment(result.recording, start, end, seen_from, seen_to))
    return out


def _sampled(path: Path, span: tuple[float, float], rate: float) -> Iterator[tuple[float, np.ndarray]]:
    """(offset, RGB image) of the first frame at or after each 1/rate step; the others are never converted."""
    with FileSource(path) as source:
        for frame in source.span(span[0], span[1], rate):
            yield frame.seconds, frame.image


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


def _prefetch(items: Iterator[T], depth: int = 4) -> Iterator[T]:
    """Run `items` in a thread up to `depth` ahead, so decoding overlaps detection (both release the GIL)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Failed(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="sar-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                if isinstance(item.error, RedactorError):
                    raise item.error
                raise ProcessingError(f"{type(item.error).__name__} while decoding: {item.error}") from None
            yield item
    finally:
        stop.set()
        worker.join()
