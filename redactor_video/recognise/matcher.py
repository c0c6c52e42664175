"""Per-track watchlist matching on each track's best faces; a face is shown only where evidence covers that frame.

Looks and samples. While a track is judged, each frame where its face is
detected, at least `min_face_px`, whole and not overlapped by another face
gets a look (Embedder.look: the aligned chip, its quality, a colour
signature), which costs under 2 ms. Of the looks in each `window_seconds`,
only the best (sharpest, most frontal) is described and compared: one sample
per window, not the first face that happens to qualify. A sample matches an
entry when one of the entry's templates is within `threshold`.

Decision. `votes` matching samples that outnumber the misses confirm a
track; `votes` misses that outnumber the matches, or `max_samples` without a
decision, reject it, and a rejected track is never looked at again. A
confirmed track goes on being sampled, one sample per window (the periodic
re-check): `votes` misses in a row withdraw it.

Reveal. A track's life is cut into segments wherever its face may have
changed hands: it overlapped another face, went `recheck_after_seconds`
without a look, its box jumped by `jump` of its size, or the colour
signatures of two consecutive looks differ (similarity under `same_face`).
A frame is shown clear only if it lies within a confirmed segment, between
its first and last look, and no further than `margin_seconds` from the
segment's first and last matching samples: between two samples that both
matched, or just outside them, never across a change of face. The decision
is per (track, frame index), made when the frame is written, so frames held
in the look-ahead before a track was confirmed are shown only where this
evidence reaches them. A segment whose samples stop matching (withdrawn) is
masked in every frame still held.

Secrecy. Nothing of a non-match is kept: each chip, signature, vector and
distance is zeroed as soon as it has been used, a non-match's pending scores
the moment it is decided. No log line, audit record, exception or statistic
carries a non-match's vector or score. Work is bounded because it runs on the
pipeline's detect thread: at most `per_frame` descriptors a frame, and a
stranger is described at most `max_samples` times, ever.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from redactor_video.audit import AuditLog
from redactor_video.recognise.embedder import Embedder, Look
from redactor_video.recognise.watchlist import Entry, Refusal, today_utc
from redactor_video.types import Frame, Tracks

MAX_THRESHOLD = 0.6
"""dlib's documented same-person distance; a deployment may be stricter, never looser."""
DEFAULT_THRESHOLD = 0.49
"""Chosen on design material (benchmarks/recognition_real.py: Person A enrolled from 3 looks of headpose_female,
probed in headpose): the lowest distance at which >= 95% of the genuine samples match (98%; 89% at 0.48).
Validation: Person A in walking_pause and Person B in headpose match in 100% and 98% of samples; the nearest of
375 stranger samples (13 video tracks, portraits) is 0.566; modelled stranger-track false matches under the
2-vote rule: 5.5e-6 (RESULTS.md)."""


@dataclass(frozen=True)
class MatchPolicy:
    """How tracks are sampled, decided and revealed; every limit bounds work or errs towards masking.

    threshold: descriptor distance (dlib units) at or under which one sample matches an entry.
    votes: matching samples (outnumbering misses) that confirm a track; misses that reject it; misses in a row
        that withdraw a confirmed one. Two: one stray sample decides nothing, and every decided replay of Person A's
        design track confirms, in 2-3 samples (RESULTS.md).
    max_samples: samples without a decision after which a track is rejected (and never described again).
    per_frame: descriptors computed per frame at most (about 0.1 s of one core each).
    min_face_px: narrowest face (px) looked at: dlib's descriptor of smaller faces wanders (RESULTS.md).
    window_seconds: one sample per this many seconds, the best look of the window. On headpose_female (design)
        the best look of each half second matched in 30 of 30 windows, the first look in 90% (RESULTS.md).
    margin_seconds: how far (s) before a segment's first matching sample and after its last one its face is
        shown: one window, so a confirmed face sampled every window is clear throughout; never past a look.
    recheck_after_seconds: a track with no look for this long (s) may have changed hands: new segment (shorter
        only masks more).
    jump: a box whose size or centre moves by more than this fraction of its size between detections starts a
        new segment.
    overlap: boxes sharing more than this fraction of the smaller one's area mix two faces: not looked at, and
        each starts a new segment.
    same_face: consecutive looks whose colour signatures are less similar than this start a new segment: just
        under every design similarity of one person's consecutive looks (>= 0.985; two people of a clip <= 0.83).
        Validation: 1.6% of one person's consecutive looks split (a small face), every pair of two people (<= 0.969)
        does (RESULTS.md).
    """

    threshold: float = DEFAULT_THRESHOLD
    votes: int = 2
    max_samples: int = 5
    per_frame: int = 1
    min_face_px: float = 40.0
    window_seconds: float = 0.5
    margin_seconds: float = 0.5
    recheck_after_seconds: float = 0.3
    jump: float = 0.5
    overlap: float = 0.05
    same_face: float = 0.98

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= MAX_THRESHOLD:
            raise ValueError(f"match threshold must be in (0, {MAX_THRESHOLD}]; "
                             f"{MAX_THRESHOLD} is dlib's same-person limit and may not be loosened")
        if self.votes < 1 or self.max_samples < self.votes:
            raise ValueError("need 1 <= votes <= max_samples")
        if self.per_frame < 1 or self.min_face_px <= 0:
            raise ValueError("per_frame >= 1 and min_face_px > 0 are required")
        if min(self.window_seconds, self.margin_seconds, self.recheck_after_seconds) < 0:
            raise ValueError("times must be >= 0")
        if self.jump <= 0 or not 0.0 < self.same_face <= 1.0:
            raise ValueError("jump must be > 0 and same_face in (0, 1]")


@dataclass(frozen=True)
class _Window:
    """Frames lo..hi (indices, inclusive) of a track that evidence for `entry` shows clear."""

    entry: str
    lo: int
    hi: int


@dataclass
class _Track:
    """One track: its current segment's vote and evidence, and the windows its earlier segments earned.

    `scores` holds only distances towards a match, and only until the segment is confirmed. `looks` holds
    (frame index, seconds) of the segment's looks that a later matching sample may still stretch its evidence
    over. `lo`..`hi` are the frames the segment's matching samples reach so far. `previous` is the entry of a
    confirmed segment that ended in a possible change of face (for the audit's `recheck`).
    """

    embeddings: int = 0
    misses: int = 0
    streak: int = 0
    scores: dict[str, list[float]] = field(default_factory=dict)
    entry: str | None = None
    previous: str | None = None
    first_match: float | None = None
    last_match: float = float("-inf")
    lo: int = 0
    hi: int = -1
    looks: deque[tuple[int, float]] = field(default_factory=deque)
    last_look: float = float("-inf")
    signature: np.ndarray | None = None
    candidate: Look | None = None
    candidate_at: tuple[int, float] = (0, 0.0)
    window_opened: float | None = None
    last_box: np.ndarray | None = None
    windows: list[_Window] = field(default_factory=list)

    def current(self) -> _Window | None:
        return _Window(self.entry, self.lo, self.hi) if self.entry is not None and self.hi >= self.lo else None

    def restart(self) -> None:
        """A new segment: its vote and evidence start from nothing."""
        self.forget()
        self.embeddings = self.misses = self.streak = 0
        self.entry, self.first_match, self.last_match = None, None, float("-inf")
        self.lo, self.hi = 0, -1
        self.looks.clear()
        self.window_opened = None

    def forget_scores(self) -> None:
        for values in self.scores.values():
            values[:] = [0.0] * len(values)
            values.clear()
        self.scores.clear()

    def forget(self) -> None:
        """Zero and drop everything that came from a face: scores, the chip waiting to be described, the signature."""
        self.forget_scores()
        if self.candidate is not None:
            self.candidate.forget()
            self.candidate = None
        if self.signature is not None:
            self.signature.fill(0.0)
            self.signature = None


@dataclass
class MatchStats:
    """Counts only: how much was described and decided (for benchmarks and tests; nothing identifying).

    `confirmed` counts tracks confirmed once (re-confirmations are not counted again); `withdrawn` counts
    confirmed tracks that a later vote rejected; `splits` counts segments ended by a possible change of face.
    """

    embeddings: int = 0
    confirmed: int = 0
    rejected: int = 0
    withdrawn: int = 0
    splits: int = 0


class WatchlistMatcher:
    """The Recogniser: observes tracked frames, samples within its budget, and says which face of which frame to show.

    With `reveal` False (alert-only) matches are logged as alerts and nothing is
    ever revealed. With no usable entries nothing is ever looked at.
    """

    def __init__(self, entries: tuple[Entry, ...], embedder: Embedder | None,
                 audit: AuditLog, reveal: bool = True, camera: str | None = None,
                 policy: MatchPolicy | None = None, refusals: tuple[Refusal, ...] = ()) -> None:
        if entries and embedder is None:
            raise ValueError("an embedder is needed when there are watchlist entries")
        self.policy = policy or MatchPolicy()
        self.reveal = reveal
        self.camera = camera
        self.refusals = refusals
        self.stats = MatchStats()
        self._audit = audit
        self._embedder = embedder
        self._entries = {e.id: e for e in entries}
        self._lock = threading.Lock()
        self._shown: dict[int, tuple[_Window, ...]] = {}
        self._reset()
        self._set_entries(today_utc())

    @property
    def active(self) -> bool:
        """Whether any entry applies now; when False, nothing is looked at."""
        return bool(self._owners.size)

    def observe(self, frame: Frame, tracked: Tracks) -> None:
        """Update the evidence with one frame's tracks (called once per frame, in order)."""
        if frame.index <= self._last_index or frame.source != self._source:
            self._reset()
        self._last_index, self._source = frame.index, frame.source
        today = today_utc()
        if today != self._today:
            self._set_entries(today)
        if not self.active:
            self._publish()
            return
        # Without timestamps, treat frames as a second apart: only the sampling cadence depends on it.
        now = frame.seconds if frame.seconds is not None else float(frame.index)
        ids = [int(t) for t in tracked.tracker_id]
        for gone in set(self._tracks) - set(ids):
            self._depart(gone, self._tracks.pop(gone))
        self._prune()
        overlapped = overlapping(tracked.xyxy, self.policy.overlap)
        due = []
        for i, tid in enumerate(ids):
            if tid in self._rejected:
                continue
            track = self._tracks.setdefault(tid, _Track())
            if track.entry is not None and not self.reveal:
                continue  # alert-only: a confirmed track was alerted once and is never shown
            box = np.asarray(tracked.xyxy[i], np.float32)
            detected = not bool(tracked.predicted[i])
            if self._jumped(track, box, detected, overlapped[i]):
                self._split(track)
            if detected:
                track.last_box = box
            if detected and not overlapped[i] and self._lookable(box, frame):
                self._look(track, frame, box, now)
            if self._due(track, now):
                due.append(((track.previous is None, track.entry is not None, track.embeddings), tid))
        for _, tid in sorted(due)[: self.policy.per_frame]:
            self._sample(tid, self._tracks[tid], frame, now)
        self._publish()

    def reveals(self, track_id: int, index: int) -> bool:
        """Whether the face of track `track_id` in frame `index` may stay clear (thread-safe).

        Frames are asked about in order as they are written; evidence that only reaches frames before the latest
        one asked about is dropped, so asking about an earlier frame afterwards can only answer False (masked).
        """
        with self._lock:
            self._asked = max(self._asked, index)
            return any(w.lo <= index <= w.hi for w in self._shown.get(track_id, ()))

    def close(self) -> None:
        self._reset()
        self._audit.close()

    def _reset(self) -> None:
        """Forget every track: a new input starts with nobody confirmed."""
        for track in getattr(self, "_tracks", {}).values():
            track.forget()
        self._tracks: dict[int, _Track] = {}
        self._departed: dict[int, list[_Window]] = {}
        self._rejected: set[int] = set()
        self._last_index = -1
        self._source = ""
        with self._lock:
            self._shown = {}
            self._asked = -1

    def _set_entries(self, today: date) -> None:
        """Use only entries valid today; an entry that expires mid-run stops matching and its tracks are masked."""
        self._today = today
        for entry in [e for e in self._entries.values() if e.expires < today]:
            del self._entries[entry.id]
            self._audit.record("entry-expired", entry_id=entry.id, camera=self.camera)
            for tid, track in list(self._tracks.items()):
                if entry.id in (track.entry, track.previous) or any(w.entry == entry.id for w in track.windows):
                    self._reject(tid, track)
            for tid, windows in list(self._departed.items()):
                self._departed[tid] = [w for w in windows if w.entry != entry.id]
        entries = list(self._entries.values())
        self._ids = [e.id for e in entries]
        self._owners = np.concatenate([np.full(len(e.templates), k) for k, e in enumerate(entries)]) \
            if entries else np.zeros(0, int)
        self._templates = np.concatenate([e.templates for e in entries]) if entries else np.zeros((0, 128))

    def _jumped(self, track: _Track, box: np.ndarray, detected: bool, overlapped: bool) -> bool:
        """Could the tracker have handed this track to another face here (overlap, or a jump between detections)?"""
        if overlapped:
            return True
        if not detected or track.last_box is None:
            return False
        size, before = _size(box), _size(track.last_box)
        shift = float(np.linalg.norm((box[:2] + box[2:]) / 2 - (track.last_box[:2] + track.last_box[2:]) / 2))
        return abs(size / max(before, 1e-6) - 1) > self.policy.jump or shift > self.policy.jump * max(size, before)

    def _lookable(self, box: np.ndarray, frame: Frame) -> bool:
        x1, y1, x2, y2 = (float(v) for v in box)
        whole = x1 > 0 and y1 > 0 and x2 < frame.width and y2 < frame.height
        return whole and min(x2 - x1, y2 - y1) >= self.policy.min_face_px

    def _split(self, track: _Track) -> None:
        """The face may have changed hands: what the segment earned stays with its frames; a new one begins."""
        if track.entry is not None or track.embeddings or track.looks:
            self.stats.splits += 1
        window = track.current()
        if window is not None:
            track.windows.append(window)
        track.previous = track.entry or track.previous
        track.restart()

    def _look(self, track: _Track, frame: Frame, box: np.ndarray, now: float) -> None:
        """Align the face, split the segment if it is not the face of the last look, and keep the window's best."""
        p = self.policy
        try:
            look = self._embedder.look(frame.image, box)
        except Exception:  # an unusable crop is no look: continuity is not vouched for across it
            return
        if track.signature is not None and (now - track.last_look > p.recheck_after_seconds
                                            or float(np.dot(look.signature, track.signature)) < p.same_face):
            self._split(track)
        if track.signature is not None:
            track.signature.fill(0.0)
        track.signature, track.last_look = look.signature.copy(), now
        if track.window_opened is None:
            track.window_opened = now
        # Only looks a later matching sample (taken in this window or after) can reach are kept.
        oldest = track.window_opened - (p.margin_seconds if track.first_match is None else 0.0)
        while track.looks and track.looks[0][1] < oldest:
            track.looks.popleft()
        track.looks.append((frame.index, now))
        if track.first_match is not None and now <= track.last_match + p.margin_seconds:
            track.hi = frame.index
        if look.quality > 0 and (track.candidate is None or look.quality > track.candidate.quality):
            if track.candidate is not None:
                track.candidate.forget()
            track.candidate, track.candidate_at = look, (frame.index, now)
        else:
            look.forget()

    def _due(self, track: _Track, now: float) -> bool:
        if track.candidate is None or track.window_opened is None:
            return False
        if track.entry is None and track.embeddings >= self.policy.max_samples:
            return False
        return now - track.window_opened >= self.policy.window_seconds

    def _sample(self, tid: int, track: _Track, frame: Frame, now: float) -> None:
        """Describe the window's best look once, count the vote, and zero chip, vector and distances at once."""
        look, (index, at) = track.candidate, track.candidate_at
        track.candidate, track.window_opened = None, None
        track.embeddings += 1
        self.stats.embeddings += 1
        try:
            vector = self._embedder.describe(look)
        except Exception:  # an unusable face crop is a lost vote: the track stays masked
            self._decide(tid, track, frame, now)
            return
        finally:
            look.forget()
        distances = np.linalg.norm(self._templates - vector, axis=1)
        vector.fill(0.0)
        nearest = int(np.argmin(distances))
        score = float(distances[nearest])
        entry = self._ids[int(self._owners[nearest])] if score <= self.policy.threshold else None
        distances.fill(0.0)
        if entry is not None and track.entry in (None, entry):
            if track.entry is None:
                track.scores.setdefault(entry, []).append(score)
            track.streak = 0
            self._matched(track, index, at)
        else:
            track.misses += 1
            track.streak += 1
        score = 0.0
        self._decide(tid, track, frame, now)

    def _matched(self, track: _Track, index: int, at: float) -> None:
        """Stretch the segment's evidence over the looks within `margin_seconds` of a matching sample."""
        margin = self.policy.margin_seconds
        if track.first_match is None:
            track.first_match = at
            track.lo = next((i for i, t in track.looks if t >= at - margin), index)
        track.last_match = max(track.last_match, at)
        track.hi = max([track.hi, index] + [i for i, t in track.looks if t <= track.last_match + margin])

    def _decide(self, tid: int, track: _Track, frame: Frame, now: float) -> None:
        p = self.policy
        if track.entry is not None:
            if track.streak >= p.votes:
                self._withdraw(tid, track, frame, now)
            return
        best = max(track.scores, key=lambda k: len(track.scores[k]), default=None)
        hits = len(track.scores[best]) if best else 0
        if best and hits >= p.votes and hits > track.misses:
            self.stats.confirmed += track.previous is None
            self._confirm(tid, track, best, frame, now)
        elif (track.misses >= p.votes and track.misses > hits) or track.embeddings >= p.max_samples:
            if track.previous is not None:
                self._withdraw(tid, track, frame, now)
            else:
                self.stats.rejected += 1
                self._reject(tid, track)

    def _confirm(self, tid: int, track: _Track, entry_id: str, frame: Frame, now: float) -> None:
        entry = self._entries[entry_id]
        scores = track.scores[entry.id]
        recheck = entry.id == track.previous
        track.entry, track.previous = entry.id, None
        self._audit.record("match" if self.reveal else "alert", entry_id=entry.id, basis=entry.basis,
                           reference=entry.reference, category=entry.category, camera=self.camera,
                           source=frame.source, track=tid, frame=frame.index, at_seconds=round(now, 3),
                           score=round(float(np.mean(scores)), 4), threshold=self.policy.threshold,
                           recheck=recheck, action="reveal" if self.reveal else "alert-only")
        track.misses = track.streak = 0
        track.forget_scores()

    def _withdraw(self, tid: int, track: _Track, frame: Frame, now: float) -> None:
        self._audit.record("match-withdrawn", entry_id=track.entry or track.previous, camera=self.camera,
                           source=frame.source, track=tid, frame=frame.index, at_seconds=round(now, 3))
        self.stats.withdrawn += 1
        self._reject(tid, track)

    def _reject(self, tid: int, track: _Track) -> None:
        """Decided: this segment is not (or no longer) a match. Forget everything about it, mask all of it and never
        look at the track again; windows earned by its earlier segments, before a change of face, still stand."""
        track.forget()
        self._tracks.pop(tid, None)
        self._rejected.add(tid)
        if track.windows and self.reveal:
            self._departed[tid] = track.windows

    def _depart(self, tid: int, track: _Track) -> None:
        """A track the tracker dropped keeps what it earned for its frames still held, and nothing else."""
        window = track.current()
        windows = track.windows + ([window] if window is not None else [])
        if windows and self.reveal:
            self._departed[tid] = windows
        track.forget()

    def _prune(self) -> None:
        """Drop closed windows that end before the latest frame asked about (none will be asked about again)."""
        with self._lock:
            asked = self._asked
        for track in self._tracks.values():
            track.windows = [w for w in track.windows if w.hi >= asked]
        for tid in list(self._departed):
            kept = [w for w in self._departed[tid] if w.hi >= asked]
            if kept:
                self._departed[tid] = kept
            else:
                del self._departed[tid]

    def _publish(self) -> None:
        shown: dict[int, tuple[_Window, ...]] = {}
        if self.reveal:
            shown.update((tid, tuple(w)) for tid, w in self._departed.items())
            for tid, track in self._tracks.items():
                window = track.current()
                windows = track.windows + ([window] if window is not None else [])
                if windows:
                    shown[tid] = tuple(windows)
        with self._lock:
            self._shown = shown


def _size(box: np.ndarray) -> float:
    """Geometric-mean side: stable across detectors whose boxes differ in aspect (BlazeFace square, CenterFace tall)."""
    return float(np.sqrt(max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)))


def overlapping(boxes: np.ndarray, limit: float) -> np.ndarray:
    """Which boxes share more than `limit` of the smaller box's area with another box."""
    n = len(boxes)
    if n < 2:
        return np.zeros(n, bool)
    lt = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    share = inter / np.maximum(np.minimum(area[:, None], area[None, :]), 1e-9)
    np.fill_diagonal(share, 0.0)
    return np.any(share > limit, axis=1)
