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

A confirmed track is checked again (one embedding) when it could have changed
hands: after it overlapped another face, or was lost for a while, since a
tracker can swap identities there. Until that check passes it is masked again.
Embedding work is bounded per track (`max_embeddings`) and per frame
(`per_frame`), because it runs on the pipeline's detect thread.
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
"""Chosen by measurement (benchmarks/recognition.py): same person 0.23-0.45 even in small, re-encoded
video faces; other people 0.75 and above."""


@dataclass(frozen=True)
class MatchPolicy:
    """How tracks are sampled and decided; every limit bounds work or errs towards masking."""

    threshold: float = DEFAULT_THRESHOLD
    votes: int = 2
    max_samples: int = 5
    max_embeddings: int = 8
    per_frame: int = 2
    min_face_px: float = 40.0
    gap_seconds: float = 0.2
    recheck_after_seconds: float = 0.3
    overlap: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= MAX_THRESHOLD:
            raise ValueError(f"match threshold must be in (0, {MAX_THRESHOLD}]; "
                             f"{MAX_THRESHOLD} is dlib's same-person limit and may not be loosened")
        if self.votes < 1 or self.max_samples < self.votes or self.max_embeddings < self.max_samples:
            raise ValueError("need 1 <= votes <= max_samples <= max_embeddings")
        if self.per_frame < 1 or self.min_face_px <= 0 or self.gap_seconds < 0 or self.recheck_after_seconds < 0:
            raise ValueError("per_frame >= 1, min_face_px > 0 and times >= 0 are required")


@dataclass
class _Track:
    """What is known about one undecided or confirmed track: counts, and scores only towards a match."""

    embeddings: int = 0
    misses: int = 0
    scores: dict[str, list[float]] = field(default_factory=dict)
    entry: str | None = None
    suspect: bool = False
    last_sample: float = float("-inf")
    last_detected: float = float("-inf")

    def forget(self) -> None:
        for values in self.scores.values():
            values[:] = [0.0] * len(values)
            values.clear()
        self.scores.clear()


@dataclass
class MatchStats:
    """Counts only: how much was embedded and decided (for benchmarks and tests; nothing identifying)."""

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
            return
        # Without timestamps, treat frames as a second apart: only the sampling cadence depends on it.
        now = frame.seconds if frame.seconds is not None else float(frame.index)
        ids = [int(t) for t in tracked.tracker_id]
        for gone in set(self._tracks) - set(ids):
            self._tracks.pop(gone).forget()
        overlapped = _overlapping(tracked.xyxy, self.policy.overlap)
        wanted = []
        for i, tid in enumerate(ids):
            if tid in self._rejected:
                continue
            track = self._tracks.setdefault(tid, _Track())
            detected = not bool(tracked.predicted[i])
            if self.reveal and track.entry is not None and (overlapped[i] or (
                    detected and now - track.last_detected > self.policy.recheck_after_seconds)):
                track.suspect = True
            if detected:
                track.last_detected = now
            if detected and not overlapped[i] and self._eligible(track, tracked.xyxy[i], frame, now):
                wanted.append(((not track.suspect, track.embeddings, -float(tracked.widths[i])), tid, i))
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

    def _eligible(self, track: _Track, box: np.ndarray, frame: Frame, now: float) -> bool:
        p = self.policy
        if track.entry is not None and not track.suspect:
            return False
        if track.embeddings >= p.max_embeddings or now - track.last_sample < p.gap_seconds:
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
        except Exception:  # an unusable face crop is a lost vote: the track simply stays masked
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
        self._decide(tid, track, frame, now, entry)

    def _decide(self, tid: int, track: _Track, frame: Frame, now: float, voted: str | None) -> None:
        p = self.policy
        if track.entry is not None:  # a re-check of a confirmed track: one sample must agree again
            if voted == track.entry:
                track.suspect = False
                self._confirm(tid, track, frame, now, recheck=True)
            else:
                self._audit.record("match-withdrawn", entry_id=track.entry, camera=self.camera,
                                   source=frame.source, track=tid, frame=frame.index, at_seconds=round(now, 3))
                self.stats.withdrawn += 1
                self._reject(tid, track)
            return
        best = max(track.scores, key=lambda k: len(track.scores[k]), default=None)
        hits = len(track.scores[best]) if best else 0
        if best and hits >= p.votes and hits > track.misses:
            track.entry = best
            self.stats.confirmed += 1
            self._confirm(tid, track, frame, now, recheck=False)
        elif (track.misses >= p.votes and track.misses > hits) or track.embeddings >= p.max_samples:
            self.stats.rejected += 1
            self._reject(tid, track)

    def _confirm(self, tid: int, track: _Track, frame: Frame, now: float, recheck: bool) -> None:
        entry = self._entries[str(track.entry)]
        scores = track.scores.get(entry.id, [])
        self._audit.record("match" if self.reveal else "alert", entry_id=entry.id, basis=entry.basis,
                           reference=entry.reference, category=entry.category, camera=self.camera,
                           source=frame.source, track=tid, frame=frame.index, at_seconds=round(now, 3),
                           score=round(float(np.mean(scores)), 4), threshold=self.policy.threshold,
                           recheck=recheck, action="reveal" if self.reveal else "alert-only")
        track.forget()

    def _reject(self, tid: int, track: _Track) -> None:
        """Decided: not a (or no longer a) match. Forget everything about it and never embed it again."""
        track.forget()
        self._tracks.pop(tid, None)
        self._rejected.add(tid)

    def _publish(self) -> None:
        shown = frozenset(tid for tid, t in self._tracks.items() if t.entry is not None and not t.suspect) \
            if self.reveal else frozenset()
        with self._lock:
            self._revealed = shown


def _overlapping(boxes: np.ndarray, limit: float) -> np.ndarray:
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
