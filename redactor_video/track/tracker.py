"""Multi-face tracker: Kalman motion + optimal assignment, ByteTrack-style two passes.

A tracker here exists to keep masks on faces the detector momentarily misses,
so every live track is reported every frame, detected or coasting, tentative
or confirmed, and a coasting track's box widens with its position uncertainty.
Settings are in seconds so they mean the same at any frame rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from redactor_video import geometry
from redactor_video.track.kalman import KalmanBox
from redactor_video.track.policy import POLICY, TrackingPolicy
from redactor_video.types import Detections, Tracks

_NO_MATCH = 1e6


@dataclass
class _Track:
    id: int
    kf: KalmanBox
    last_box: np.ndarray
    last_seen: float
    hits: int = 1
    trace: tuple[float, np.ndarray] | None = None  # (time, box) of the earliest faint find leading to its start
    confident: float = -np.inf  # time of its last detection that scored >= high


class Tracker:
    """Keeps one track per face across frames.

    hold_seconds: how long a track is still masked after its last detection.
    high / low: detections >= high may start tracks; those in [low, high) only
    extend existing ones (a faint face next to where a face just was is that face).
    frame_size: (width, height) of the frames, against which the policy's sizes
    are measured; policy: the tunables (track/policy.py).

    Small faces (policy.small_face) are seen only by the periodic sweep and often
    score under `high` for seconds (half hidden, half outside the frame, in
    night-IR noise), so faint finds that small also start tracks: one that two
    complete passes in a row report at the same place, and one that extends a
    straight, steady line through two earlier ones at walking pace (the track
    then starts with that motion, which the look-ahead paints back at once).
    Larger faint finds only extend tracks: at that size both detectors look, and
    the faint finds that repeat there are clutter (RESULTS.md). A small face's
    track found policy.small_hold_finds times is held policy.small_hold times
    longer. A new track of any size whose place earlier passes found faint (a
    chain back through them, each near the next) reports where that trace began,
    so the look-ahead masks the face from there, not only from its first
    confident find.
    """

    def __init__(self, hold_seconds: float = 1.0, high: float = 0.5, low: float = 0.25,
                 frame_size: tuple[int, int] = (1280, 720),
                 policy: TrackingPolicy = POLICY) -> None:
        if hold_seconds < 0 or not 0 <= low <= high <= 1:
            raise ValueError("hold_seconds must be >= 0 and 0 <= low <= high <= 1")
        self.hold_seconds = hold_seconds
        self.high = high
        self.low = low
        self.policy = policy
        self.small_below = policy.small_below(*frame_size)
        self.reset()

    def reset(self) -> None:
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._time: float | None = None
        self._faint: list[tuple[float, np.ndarray]] = []  # (time, small faint finds) of recent complete passes
        self._traces: list[tuple[float, np.ndarray]] = []  # (time, faint finds of any size), kept as long

    def update(self, detections: Detections, t: float, detected: bool = True) -> Tracks:
        """Advance to time `t` (seconds) and fold in this frame's detections.

        detected=False says this frame had no complete detection pass (the
        detector did not run, or only a pass blind to small faces did): whatever
        was found is still folded in, but no track ends for lack of a detection
        it was never offered. A track past its hold is kept (and masked) only
        until a complete pass ends it, and takes no detection meanwhile.

        Every live track is returned (Tracks), with what the look-ahead needs
        to paint it back and between detections.
        """
        dt = 0.0 if self._time is None else max(t - self._time, 0.0)
        self._time = t
        predicted = [tr.kf.predict(dt) for tr in self._tracks]
        matched: dict[int, int] = {}
        if len(detections):
            order = np.argsort(-detections.confidence)
            high = [i for i in order if detections.confidence[i] >= self.high]
            low = [i for i in order if self.low <= detections.confidence[i] < self.high]
            # Predicted past its hold, a track's place and reach no longer say which face is which: after seconds
            # of dropped frames two faces' finds can trade tracks, and a face's frames then get only the line the
            # look-ahead draws from the other face's last box (tests/test_pipeline.py).
            free = [k for k, tr in enumerate(self._tracks) if self._held(tr, t)]
            for group in (high, low):
                pairs = self._associate([predicted[k] for k in free], [self._tracks[k] for k in free],
                                        detections.xyxy[group])
                for ti, di in pairs:
                    matched[free[ti]] = group[di]
                free = [k for k in free if k not in matched]
            claimed = set(matched.values())
            for k, di in matched.items():
                tr = self._tracks[k]
                weak = bool(detections.confidence[di] < self.high)
                if not weak or t - tr.confident >= self.policy.anchor or geometry.iou_matrix(
                        predicted[k][None], detections.xyxy[di][None])[0, 0] >= self.policy.match_overlap:
                    tr.kf.update(detections.xyxy[di], faint=weak)
                if not weak:
                    tr.confident = t
                tr.last_box = np.asarray(detections.xyxy[di], np.float32)
                tr.last_seen = t
                tr.hits += 1
            size = geometry.sizes(detections.xyxy)
            starters = [di for di in high if di not in claimed]
            faint = [di for di in low if di not in claimed] if detected else []
            small_faint = [di for di in faint if size[di] < self.small_below]
            walks = {di: self._walked(detections.xyxy[di], t) if size[di] < self.small_below else None
                     for di in starters + small_faint}
            history = self._traces  # this pass is not in it: _remember_faint makes a new list
            same = self.policy.same_size
            if detected:
                previous = self._faint[-1][1] if self._faint else np.zeros((0, 4), np.float32)
                starters += [di for di in small_faint
                             if walks[di] is not None or len(_near(detections.xyxy[di], previous, same))]
                self._remember_faint(t, detections.xyxy[small_faint], detections.xyxy[faint])
            for di in starters:
                box = np.asarray(detections.xyxy[di], np.float32)
                velocity = (0.0, 0.0) if walks[di] is None else tuple(walks[di])
                self._tracks.append(_Track(self._next_id, KalmanBox(box, velocity, self.policy), box, t,
                                           trace=_traced(box, history, same),
                                           confident=t if detections.confidence[di] >= self.high else -np.inf))
                predicted.append(box)
                matched[len(self._tracks) - 1] = di
                self._next_id += 1
        elif detected:
            self._remember_faint(t, np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32))
        keep = [k for k, tr in enumerate(self._tracks) if not detected or self._held(tr, t)]
        boxes, ids, coasting, hits, velocities, traced, traced_box, faint_hit = [], [], [], [], [], [], [], []
        for k in keep:
            tr = self._tracks[k]
            faint_hit.append(k in matched and bool(detections.confidence[matched[k]] < self.high))
            if k in matched:
                boxes.append(tr.last_box)
            else:
                boxes.append(_widen(predicted[k], tr.kf.position_sigma(), tr.last_box, self.policy))
            ids.append(tr.id)
            coasting.append(k not in matched)
            hits.append(tr.hits)
            velocities.append(tr.kf.velocity())
            trace = tr.trace if tr.trace is not None and tr.hits == 1 else (t, boxes[-1])
            traced.append(t - trace[0])
            traced_box.append(trace[1])
        self._tracks = [self._tracks[k] for k in keep]
        if not boxes:
            return Tracks.empty()
        return Tracks(np.array(boxes), np.array(ids), np.array(coasting), np.array(hits), np.array(velocities),
                      np.array(traced), np.array(traced_box, np.float32), np.array(faint_hit))

    def _remember_faint(self, t: float, small: np.ndarray, every: np.ndarray) -> None:
        chain = self.policy.chain
        self._faint = [(tf, b) for tf, b in self._faint if t - tf <= chain] + [(t, small.reshape(-1, 4))]
        self._traces = [(tf, b) for tf, b in self._traces if t - tf <= chain] + [(t, every.reshape(-1, 4))]

    def _held(self, track: _Track, t: float) -> bool:
        """Whether `track` is within its hold at time `t`: `hold_seconds` since it was last detected, longer
        (policy.small_hold) for a small face found often enough."""
        small = geometry.size(track.last_box) < self.small_below and track.hits >= self.policy.small_hold_finds
        return t - track.last_seen <= self.hold_seconds * (self.policy.small_hold if small else 1.0)

    def _walked(self, box: np.ndarray, t: float) -> np.ndarray | None:
        """The motion (px/s) of a faint find that extends a straight, steady line through two earlier small faint
        finds of its size at walking pace, from the earliest such find; None if it extends none."""
        size = max(geometry.size(box), 1.0)
        k = self.policy.same_size
        steps = [(tf, b) for tf, boxes in self._faint for b in boxes
                 if tf < t and size / k < geometry.size(b) < k * size]
        here = geometry.centre(box)
        for i, (ta, a) in enumerate(steps):
            velocity = (here - geometry.centre(a)) / (t - ta)
            if np.hypot(*velocity) > self.policy.walk_speed * size:
                continue
            for tb, b in steps[i + 1:]:
                on_line = geometry.centre(a) + velocity * (tb - ta)
                if ta < tb and np.hypot(*(geometry.centre(b) - on_line)) <= self.policy.chain_tolerance * size:
                    return velocity
        return None

    def _associate(self, boxes: list[np.ndarray], tracks: list[_Track], dets: np.ndarray) -> list[tuple[int, int]]:
        """Optimal one-to-one matching; a far detection may still match a track whose position is uncertain
        (a fast face seen again after sparse detection), within policy.match_sigmas standard deviations, if
        its size is within policy.match_size of the track's last detected box (not of the prediction, whose
        size drifts while coasting)."""
        if not boxes or not len(dets):
            return []
        t = np.array(boxes, np.float32)
        iou = geometry.iou_matrix(t, dets)
        tc = (t[:, :2] + t[:, 2:]) / 2
        dc = (dets[:, :2] + dets[:, 2:]) / 2
        size = np.maximum(geometry.sizes(t), 1.0)[:, None]
        dist = np.linalg.norm(tc[:, None, :] - dc[None, :, :], axis=2) / size
        seen = np.array([max(geometry.size(tr.last_box), 1.0) for tr in tracks], np.float32)[:, None]
        dsize = geometry.sizes(dets)[None, :] / seen
        sigma = np.array([tr.kf.position_sigma() for tr in tracks], np.float32)[:, None]
        p = self.policy
        reach = np.maximum(p.match_reach, p.match_sigmas * sigma / size)
        similar = (dsize > 1 / p.match_size) & (dsize < p.match_size)
        overlaps = iou > p.match_overlap
        cost = np.where(overlaps, 1.0 - iou, 1.0 + dist)
        cost = np.where(overlaps | ((dist < reach) & similar), cost, _NO_MATCH)
        rows, cols = linear_sum_assignment(cost)
        return [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] < _NO_MATCH]


def _near(box: np.ndarray, earlier: np.ndarray, same_size: float) -> np.ndarray:
    """Which of `earlier` (a previous pass's finds) could be the face at `box`, nearest first: centres
    within one face size and sizes within a factor of `same_size`."""
    size = max(geometry.size(box), 1.0)
    sizes = geometry.sizes(earlier)
    dist = np.linalg.norm((earlier[:, :2] + earlier[:, 2:]) / 2 - (box[:2] + box[2:]) / 2, axis=1)
    near = np.flatnonzero((dist <= size) & (sizes < same_size * size) & (sizes * same_size > size))
    return near[np.argsort(dist[near])]


def _traced(box: np.ndarray, history: list[tuple[float, np.ndarray]],
            same_size: float) -> tuple[float, np.ndarray] | None:
    """The earliest faint find of a chain back from `box` through earlier passes' faint finds, each near
    the next (a pass that found nothing there is skipped); None if there is none."""
    here, earliest = box, None
    for tf, boxes in reversed(history):
        near = _near(here, boxes, same_size)
        if len(near):
            here = boxes[near[0]]
            earliest = (tf, here)
    return earliest


def _widen(box: np.ndarray, sigma: float, seen: np.ndarray, policy: TrackingPolicy) -> np.ndarray:
    """A coasting track's mask: the predicted box, its size kept within policy.same_size times the last
    detected box `seen`, grown by policy.margin_sigmas standard deviations of its centre estimate, at most that
    face size: beyond that a mask covers background, not the face, and the look-ahead's interpolation takes
    over."""
    size = np.asarray(box[2:] - box[:2], np.float32)
    last = np.asarray(seen[2:] - seen[:2], np.float32)
    half = np.clip(size, last / policy.same_size, last * policy.same_size) / 2
    m = min(policy.margin_sigmas * sigma, float(max(last)))
    centre = (np.asarray(box[:2], np.float32) + np.asarray(box[2:], np.float32)) / 2
    return np.concatenate([centre - half - m, centre + half + m]).astype(np.float32)
