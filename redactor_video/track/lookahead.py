"""Look-ahead buffer: hold frames back so a face found later is also masked earlier.

A face is usually detectable only some frames after it enters the picture, and
with sparse detection a track's box between two detections is a guess. Holding
N frames lets us paint a new track's first box back over the frames before it
(with a margin that grows with the time gap) and replace the guesses between
two detections of one face with the line between them, grown by how far faces
stray from a straight line (measured on real footage). A live stream releases
frames early, often before the next detection: a guess that leaves that way
also gets the last detected box grown by how far the face could have gone
since, in any direction, since constant velocity is wrong for a face that
stops or turns back.

A small face, which only the periodic sweep can see, is often found only after
walking a long way into the picture, further than a margin growing about one
face width a second reaches (a faster margin costs background everywhere).
Once its track has a second detection far enough from its first to give its
motion, the held frames before its first detection get the first box moved back
along that motion. A track the tracker starts from a line of faint finds comes
with its motion and is painted back along it at once; one whose place earlier
passes found faint comes with where that trace began, and is masked from there.
A track started by faint finds alone is painted back as far as one started by
a confident find: holding its paint-back until a confident find lost small
faces and saved little background (RESULTS.md).
Large faces are found by the every-frame detector as soon as they show, so
their first box goes back only policy.large_backfill.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Callable

import numpy as np

from redactor_video import geometry
from redactor_video.track.policy import POLICY, TrackingPolicy
from redactor_video.types import Frame, MaskPlan, PackedFrame, Tracks


class _Held:
    """A frame waiting in the buffer, with every box so far that must be masked on it.

    `owners[i]` is the track id behind `boxes[i]`, so a later decision about a
    track (e.g. a confirmed watchlist match) applies to its backfilled boxes too.
    While it waits behind newer frames its pixels are held packed (park()).
    It becomes a frozen MaskPlan when it leaves.
    """

    def __init__(self, frame: Frame, failure: str = "") -> None:
        self.index = frame.index
        self.boxes: list[np.ndarray] = []
        self.owners: list[int] = []
        self.failure = failure
        # Tracks whose box here is a prediction: track id -> (index and box of its last detection, speed px/s).
        self.guessed: dict[int, tuple[int, np.ndarray, float]] = {}
        self.predicted: dict[int, int] = {}  # track id -> where in `boxes` its predicted box is
        self.frame: Frame | PackedFrame = frame

    def add(self, owner: int, box: np.ndarray) -> None:
        self.boxes.append(np.asarray(box, np.float32))
        self.owners.append(owner)

    def park(self) -> None:
        """Hold the pixels as 4:2:0 while waiting: half the memory, so the look-ahead can be twice as long."""
        if isinstance(self.frame, Frame) and self.frame.packable:
            self.frame = self.frame.pack()

    def plan(self) -> MaskPlan:
        return MaskPlan(self.frame, tuple(self.boxes), tuple(self.owners), self.failure)


class LookAhead:
    """frames: how many frames are held back (0 disables backfill), fewer (down to min_frames) where that
    many would hold more than max_bytes of pixels; policy: the tunables (track/policy.py). Tracks whose
    first box is small (policy.small_face), which only the sweep sees, are painted back along their motion."""

    def __init__(self, frames: int, fps: float, max_bytes: float = math.inf, min_frames: int = 0,
                 policy: TrackingPolicy = POLICY) -> None:
        if frames < 0 or min_frames < 0:
            raise ValueError("look-ahead must be >= 0 frames")
        self.frames = frames
        self.max_bytes = max_bytes
        self.min_frames = min(min_frames, frames)
        self.fps = max(fps, 1e-3)
        self.policy = policy
        self._small = self._large = 0.0  # px: the policy's sizes in the frames pushed
        self._slots: deque[_Held] = deque()
        self._last_detected: dict[int, tuple[int, np.ndarray]] = {}
        self._first: dict[int, tuple[int, np.ndarray]] = {}  # tracks whose motion is not yet painted back
        self._strong: dict[int, int] = {}  # track id -> frame of its last detection that scored >= the start

    def push(self, frame: Frame, tracked: Tracks, failure: str = "") -> list[MaskPlan]:
        """Add one frame and its tracked boxes; return the plans of the frames that leave."""
        if failure:
            self.fail_held(failure)
        slot = _Held(frame, failure=failure)
        self._small = self.policy.small_below(frame.width, frame.height)
        self._large = self.policy.large_from(frame.width, frame.height)
        for box, tid, coasting in zip(tracked.xyxy, tracked.tracker_id, tracked.predicted):
            if coasting:
                slot.predicted[int(tid)] = len(slot.boxes)
            slot.add(int(tid), box)
        for box, tid, coasting, n, velocity, age, first, weak in zip(
                tracked.xyxy, tracked.tracker_id, tracked.predicted, tracked.hits, tracked.velocity, tracked.traced,
                tracked.traced_box, tracked.faint):
            tid = int(tid)
            if coasting:
                if tid in self._last_detected:
                    slot.guessed[tid] = (*self._last_detected[tid], float(np.hypot(*velocity)))
                continue
            box = np.asarray(box, np.float32)
            anchored = weak and self._anchored(tid, frame.index)
            if n == 1:
                start, first = frame.index - int(round(age * self.fps)), np.asarray(first, np.float32)
                self._backfill(tid, first, start)
                if start < frame.index:
                    self._last_detected[tid] = (start, first)
                    self._interpolate(tid, box, frame.index)
                if np.any(velocity):
                    self._paint_along(tid, box, frame.index, np.asarray(velocity, np.float32) / self.fps)
                elif geometry.size(box) < self._small:
                    self._first[tid] = (frame.index, box)
            elif tid in self._last_detected and not anchored:
                self._interpolate(tid, box, frame.index)
            if tid in self._first and frame.index - self._first[tid][0] >= self.policy.motion_span * self.fps:
                self._paint_back(tid, box, frame.index)
            if not anchored:
                self._last_detected[tid] = (frame.index, box)
            if not weak:
                self._strong[tid] = frame.index
        live = set(slot.owners)
        self._last_detected = {k: v for k, v in self._last_detected.items() if k in live}
        self._first = {k: v for k, v in self._first.items() if k in live}
        self._strong = {k: v for k, v in self._strong.items() if k in live}
        self._slots.append(slot)
        ready = []
        while len(self._slots) > self.holds(frame):
            ready.append(self._slots.popleft().plan())
        if len(self._slots) > 1:
            self._slots[-2].park()  # the newest stays as it is: a lone still image is never packed
        return ready

    @property
    def held_bytes(self) -> int:
        """Bytes of pixels the held frames take now: the newest as RGB, those behind it packed as 4:2:0."""
        return sum(slot.frame.nbytes for slot in self._slots)

    def holds(self, frame: Frame) -> int:
        """How many frames of this size are held back: `frames`, or as many as fit in max_bytes packed."""
        if self.max_bytes == math.inf:
            return self.frames
        return max(self.min_frames, min(self.frames, int(self.max_bytes // frame.packed_bytes)))

    def fail_held(self, reason: str) -> None:
        """Mask every held frame whole: a face that entered just before detection broke could otherwise
        leave with no box, since no later detection will ever paint one back onto it."""
        for slot in self._slots:
            slot.failure = slot.failure or reason

    def release(self, is_due: Callable[[int], bool]) -> list[MaskPlan]:
        """Let the oldest frames go early while `is_due(index)` holds for them (a live stream's latency budget)."""
        ready = []
        while self._slots and is_due(self._slots[0].index):
            ready.append(self._settle(self._slots.popleft()).plan())
        return ready

    def flush(self) -> list[MaskPlan]:
        ready = [slot.plan() for slot in self._slots]
        self._slots.clear()
        self._last_detected.clear()
        self._first.clear()
        self._strong.clear()
        return ready

    def _anchored(self, tid: int, index: int) -> bool:
        """Whether a faint detection of track `tid` on frame `index` should leave the track's last detection
        as it is: one that scored >= the start less than policy.anchor ago. Faint BlazeFace boxes can sit a
        third of a face off; the line between the two confident finds is then drawn over the frames between
        them, as well as each faint box."""
        return tid in self._strong and index - self._strong[tid] < self.policy.anchor * self.fps

    def _settle(self, slot: _Held) -> _Held:
        """A slot leaving early: every guess no later detection replaced also gets the last detected box
        grown by the track's speed times the time since, at most one face size each way."""
        for tid, (start, last, speed) in slot.guessed.items():
            size = geometry.size(last)
            m = min(speed * (slot.index - start) / self.fps, size)
            slot.add(tid, last + np.array([-m, -m, m, m], np.float32))
        slot.guessed.clear()
        return slot

    def _backfill(self, tid: int, box: np.ndarray, index: int) -> None:
        size = geometry.size(box)
        reach = self.policy.large_backfill if size >= self._large else self.policy.backfill
        for slot in self._slots:
            gap = (index - slot.index) / self.fps
            if 0 <= gap <= reach:
                m = min(size, size * self.policy.backfill_speed * gap)
                slot.add(tid, box + np.array([-m, -m, m, m], np.float32))

    def _paint_back(self, tid: int, box: np.ndarray, index: int) -> None:
        """Move the track's first box back along the motion from it to `box`, over every held frame before it."""
        start, first = self._first.pop(tid)
        span = index - start
        if self._plausible(first, box, span / self.fps):
            self._paint_along(tid, first, start, ((box[:2] + box[2:]) - (first[:2] + first[2:])) / 2 / span)

    def _paint_along(self, tid: int, first: np.ndarray, start: int, step: np.ndarray) -> None:
        """Paint box `first`, found on frame `start`, back over the held frames before it, moving `step` px a
        frame (a track that starts with its motion known, from faint finds before it, is painted at once)."""
        size = geometry.size(first)
        for slot in self._slots:
            back = start - slot.index
            if slot.index < start:
                m = self.policy.paint_speed * size * back / self.fps
                shift = -step * back
                slot.add(tid, first + np.array([shift[0] - m, shift[1] - m, shift[0] + m, shift[1] + m], np.float32))

    def _interpolate(self, tid: int, box: np.ndarray, index: int) -> None:
        """Mask the frames between the track's last detection and this one along the line between the two. Where
        one face could have made that move, the line replaces the forward prediction on the frames that have
        one, grown by policy.margin_sigmas standard deviations of how far a face strays from a straight line
        (policy.wander): with both ends known the face is far better placed than by extrapolating from one."""
        start, first = self._last_detected[tid]
        span = index - start
        if span <= 1:
            return
        same_face = self._plausible(first, box, span / self.fps)
        for slot in self._slots:
            if start < slot.index < index:
                a = (slot.index - start) / span
                line = first * (1 - a) + box * a
                if not (same_face and tid in slot.predicted):
                    slot.add(tid, line)
                    continue
                m = self.policy.margin_sigmas * geometry.size(line) * math.sqrt(
                    self.policy.wander * a * (1 - a) * span / self.fps)
                slot.boxes[slot.predicted.pop(tid)] = line + np.array([-m, -m, m, m], np.float32)
                slot.guessed.pop(tid, None)

    def _plausible(self, a: np.ndarray, b: np.ndarray, seconds: float) -> bool:
        """Whether one face could have gone from box a to box b in `seconds`. A tracker that swapped two
        faces at a detection hands us a jump to the other face; the line between them is then no guess
        of either, so the frames in between keep their guesses too (a 40 px face turning back next to a
        larger one leaked that way in a live test)."""
        wa, wb = float(a[2] - a[0]), float(b[2] - b[0])
        if not 1 / self.policy.same_size <= wb / max(wa, 1.0) <= self.policy.same_size:
            return False
        moved = float(np.hypot(*((b[:2] + b[2:]) / 2 - (a[:2] + a[2:]) / 2)))
        return moved <= max(wa, wb) * (1.0 + self.policy.gap_speed * seconds)
