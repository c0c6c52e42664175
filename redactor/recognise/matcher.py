"""Per-track watchlist matching by vote, fail closed, forgetting non-matches at once.

A track is embedded a few times over its life, on frames where its face is
detected, large enough, whole and not overlapped by another face, at least
`gap_seconds` apart. Each embedding votes for the nearest watchlist entry
within the threshold, or against every entry; `votes` agreeing samples decide.
Until a track is confirmed it stays masked. Once a track is decided not to be
a match it is never embedded again, and nothing of it is kept: each vector and
distance is zeroed as soon as the vote is counted, and a non-match's pending
scores are zeroed the moment it is decided. No log line, audit record,
exception or statistic carries a non-match's vector or score.

A confirmed track is voted on afresh, masked meanwhile, whenever it could have
changed hands: after it overlapped another face, after it was lost for a while,
or when its box jumps in size or place from one detection to the next (a
tracker can swap identities in all three). As a backstop it is also re-voted
every `recheck_every_seconds` while it stays clear; losing that vote masks it.
Embedding work is bounded because it runs on the pipeline's detect thread: at
most `per_frame` embeddings a frame, at most `max_samples` per vote (so a
stranger is embedded at most `max_samples` times, ever), and a confirmed track
is re-voted at most once per `recheck_every_seconds` unless it gives cause.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date
import numpy as np

from redactor.audit import AuditLog
from redactor.recognise.embedder import Embedder
from redactor.recognise.watchlist import Entry, Refusal, today_utc
from redactor.types import Detections, Frame

MAX_THRESHOLD = 0.6
"""dlib's documented same-person distance; a deployment may be stricter, never looser."""
DEFAULT_THRESHOLD = 0.5
"""Chosen by measurement (benchmarks/recognition.py, obama.jpg enrolled): the same person measures
0.25-0.36 on photos and 0.32-0.46 in H.264 video at >= 64 px, up to 0.55 at 40 px, so 0.5 accepts
94% of samples at >= 40 px (all at >= 64 px) and the 2-sample vote confirms; strangers measure
0.73 at their closest (0.76 at >= 40 px), a margin of 0.23 that 0.6 would halve."""


@dataclass(frozen=True)
class MatchPolicy:
    """How tracks are sampled and decided; every limit bounds work or errs towards masking."""

    threshold: float = DEFAULT_THRESHOLD
    votes: int = 2
    max_samples: int = 5
    per_frame: int = 1
    min_face_px: float = 40.0
    gap_seconds: float = 0.2
    recheck_after_seconds: float = 0.3
    recheck_every_seconds: float = 1.0
    jump: float = 0.5
    overlap: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= MAX_THRESHOLD:
            raise ValueError(f"match threshold must be in (0, {MAX_THRESHOLD}]; "
                             f"{MAX_THRESHOLD} is dlib's same-person limit and may not be loosened")
        if self.votes < 1 or self.max_samples < self.votes:
            raise ValueError("need 1 <= votes <= max_samples")
        if self.per_frame < 1 or self.min_face_px <= 0 or min(self.gap_seconds, self.recheck_after_seconds) < 0:
            raise ValueError("per_frame >= 1, min_face_px > 0 and times >= 0 are required")
        if self.recheck_every_seconds <= 0 or self.jump <= 0:
            raise ValueError("recheck_every_seconds and jump must be > 0")


@dataclass
class _Track:
    """One track's vote (counts, and scores only towards a match) or its confirmed entry.

    `previous` is the entry of a confirmed track masked while it is voted on again;
    `rechecking` marks a confirmed track, still clear, in its periodic re-vote.
    """

    embeddings: int = 0
    misses: int = 0
    scores: dict[str, list[float]] = field(default_factory=dict)
    entry: str | None = None
    previous: str | None = None
    rechecking: bool = False
    confirmed_at: float = 0.0
    last_sample: float = float("-inf")
    last_detected: float = float("-inf")
    last_box: np.ndarray | None = None

    def forget(self) -> None:
        for values in self.scores.values():
            values[:] = [0.0] * len(values)
            values.clear()
        self.scores.clear()


@dataclass
class MatchStats:
    """Counts only: how much was embedded and decided (for benchmarks and tests; nothing identifying).

    `confirmed` counts tracks confirmed once (re-confirmations are not counted again); `withdrawn`
    counts confirmed tracks that a later vote rejected.
    """

    embeddings: int = 0
    confirmed: int = 0
    rejected: int = 0
    withdrawn: int = 0


class WatchlistMatcher:
    """The Recogniser: observes tracked frames, embeds within its budget, and reports which tracks to reveal.

    With `reveal` False (alert-only) matches are logged as alerts and nothing is
    ever revealed. With no usable entries nothing is ever embedded.
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
        self._revealed: frozenset[int] = frozenset()
        self._reset()
        self._set_entries(today_utc())

    @property
    def active(self) -> bool:
        """Whether any entry applies now; when False, nothing is embedded."""
        return bool(self._owners.size)

    def observe(self, frame: Frame, tracked: Detections) -> None:
        """Update the decisions with one frame's tracks (called once per frame, in order)."""
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
            self._tracks.pop(gone).forget()
        overlapped = overlapping(tracked.xyxy, self.policy.overlap)
        wanted = []
        for i, tid in enumerate(ids):
            if tid in self._rejected:
                continue
            track = self._tracks.setdefault(tid, _Track())
            box = np.asarray(tracked.xyxy[i], np.float32)
            detected = not bool(tracked.predicted[i])
            if self.reveal and track.entry is not None:
                if self._suspicious(track, box, detected, overlapped[i], now):
                    track.previous, track.entry, track.rechecking = track.entry, None, False
                    track.embeddings = track.misses = 0
                elif not track.rechecking and now - track.confirmed_at >= self.policy.recheck_every_seconds:
                    track.rechecking = True
                    track.embeddings = track.misses = 0
            if detected:
                track.last_detected, track.last_box = now, box
            if detected and not overlapped[i] and self._eligible(track, box, frame, now):
                wanted.append(((track.previous is None, track.rechecking, track.embeddings, -float(tracked.widths[i])),
                               tid, i))
        for _, tid, i in sorted(wanted)[: self.policy.per_frame]:
            self._sample(tid, self._tracks[tid], frame, tracked.xyxy[i], now)
        self._publish()

    def revealed(self) -> frozenset[int]:
        """Track ids confirmed as watchlist matches that this deployment leaves clear (thread-safe)."""
        with self._lock:
            return self._revealed

    def close(self) -> None:
        self._reset()
        self._audit.close()

    def _reset(self) -> None:
        """Forget every track: a new input starts with nobody confirmed."""
        for track in getattr(self, "_tracks", {}).values():
            track.forget()
        self._tracks: dict[int, _Track] = {}
        self._rejected: set[int] = set()
        self._last_index = -1
        self._source = ""
        with self._lock:
            self._revealed = frozenset()

    def _set_entries(self, today: date) -> None:
        """Use only entries valid today; an entry that expires mid-run stops matching and its tracks are masked."""
        self._today = today
        for entry in [e for e in self._entries.values() if e.expires < today]:
            del self._entries[entry.id]
            self._audit.record("entry-expired", entry_id=entry.id, camera=self.camera)
            for tid, track in list(self._tracks.items()):
                if track.entry == entry.id:
                    self._reject(tid, track)
        entries = list(self._entries.values())
        self._ids = [e.id for e in entries]
        self._owners = np.concatenate([np.full(len(e.templates), k) for k, e in enumerate(entries)]) \
            if entries else np.zeros(0, int)
        self._templates = np.concatenate([e.templates for e in entries]) if entries else np.zeros((0, 128))

    def _suspicious(self, track: _Track, box: np.ndarray, detected: bool, overlapped: bool, now: float) -> bool:
        """Could this confirmed track now be someone else? Then it is masked and voted on again."""
        p = self.policy
        if overlapped:
            return True
        if not detected or track.last_box is None:
            return False
        if now - track.last_detected > p.recheck_after_seconds:
            return True
        size, before = _size(box), _size(track.last_box)
        shift = float(np.linalg.norm((box[:2] + box[2:]) / 2 - (track.last_box[:2] + track.last_box[2:]) / 2))
        return abs(size / max(before, 1e-6) - 1) > p.jump or shift > p.jump * max(size, before)

    def _eligible(self, track: _Track, box: np.ndarray, frame: Frame, now: float) -> bool:
        p = self.policy
        if track.entry is not None and not track.rechecking:
            return False
        if track.embeddings >= p.max_samples or now - track.last_sample < p.gap_seconds:
            return False
        x1, y1, x2, y2 = (float(v) for v in box)
        whole = x1 > 0 and y1 > 0 and x2 < frame.width and y2 < frame.height
        return whole and min(x2 - x1, y2 - y1) >= p.min_face_px

    def _sample(self, tid: int, track: _Track, frame: Frame, box: np.ndarray, now: float) -> None:
        """Embed once, count the vote, and zero the vector and distances before anything else happens."""
        track.embeddings += 1
        track.last_sample = now
        self.stats.embeddings += 1
        try:
            vector = self._embedder.embed(frame.image, box)
        except Exception:  # an unusable face crop is a lost vote: the track stays masked
            self._decide(tid, track, frame, now)
            return
        distances = np.linalg.norm(self._templates - vector, axis=1)
        vector.fill(0.0)
        nearest = int(np.argmin(distances))
        score = float(distances[nearest])
        entry = self._ids[int(self._owners[nearest])] if score <= self.policy.threshold else None
        distances.fill(0.0)
        if entry is None:
            score = 0.0
            track.misses += 1
        else:
            track.scores.setdefault(entry, []).append(score)
        self._decide(tid, track, frame, now)

    def _decide(self, tid: int, track: _Track, frame: Frame, now: float) -> None:
        p = self.policy
        best = max(track.scores, key=lambda k: len(track.scores[k]), default=None)
        hits = len(track.scores[best]) if best else 0
        if best and hits >= p.votes and hits > track.misses:
            self.stats.confirmed += track.previous is None and track.entry is None
            self._confirm(tid, track, best, frame, now)
        elif (track.misses >= p.votes and track.misses > hits) or track.embeddings >= p.max_samples:
            if track.previous is not None or track.entry is not None:
                self._audit.record("match-withdrawn", entry_id=track.previous or track.entry, camera=self.camera,
                                   source=frame.source, track=tid, frame=frame.index, at_seconds=round(now, 3))
                self.stats.withdrawn += 1
            else:
                self.stats.rejected += 1
            self._reject(tid, track)

    def _confirm(self, tid: int, track: _Track, entry_id: str, frame: Frame, now: float) -> None:
        entry = self._entries[entry_id]
        scores = track.scores[entry.id]
        recheck = entry.id in (track.previous, track.entry)
        track.entry, track.previous, track.rechecking, track.confirmed_at = entry.id, None, False, now
        self._audit.record("match" if self.reveal else "alert", entry_id=entry.id, basis=entry.basis,
                           reference=entry.reference, category=entry.category, camera=self.camera,
                           source=frame.source, track=tid, frame=frame.index, at_seconds=round(now, 3),
                           score=round(float(np.mean(scores)), 4), threshold=self.policy.threshold,
                           recheck=recheck, action="reveal" if self.reveal else "alert-only")
        track.misses = 0
        track.forget()

    def _reject(self, tid: int, track: _Track) -> None:
        """Decided: not a (or no longer a) match. Forget everything about it and never embed it again."""
        track.forget()
        self._tracks.pop(tid, None)
        self._rejected.add(tid)

    def _publish(self) -> None:
        shown = frozenset(tid for tid, t in self._tracks.items() if t.entry is not None) if self.reveal else frozenset()
        with self._lock:
            self._revealed = shown


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
