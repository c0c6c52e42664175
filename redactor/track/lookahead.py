"""Look-ahead buffer: hold frames back so a face found later is also masked earlier.

A face is usually detectable only some frames after it enters the picture, and
with sparse detection a track's box between two detections is a guess. Holding
N frames lets us paint a new track's first box back over the frames before it
(with a margin that grows with the time gap) and replace guesses between two
detections with the interpolated box as well (both stay masked). A live
stream releases frames early, often before the next detection: a guess that
leaves that way also gets the last detected box grown by how far the face could
have gone since, in any direction, since constant velocity is wrong for a face
that stops or turns back. (Doing the same for tracks lost for longer than a
file's look-ahead cost 0.15-0.8 points of background on our clips.)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from redactor.types import Detections, Frame


@dataclass
class Slot:
    """A frame waiting to leave the buffer, with every box that must be masked on it.

    `owners[i]` is the track id behind `boxes[i]`, so a later decision about a
    track (e.g. a confirmed watchlist match) applies to its backfilled boxes too.
    """

    frame: Frame
    boxes: list[np.ndarray] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)
    failure: str = ""
    # Tracks whose box here is a prediction: track id -> (index and box of its last detection, speed px/s).
    guessed: dict[int, tuple[int, np.ndarray, float]] = field(default_factory=dict)

    @property
    def tracks(self) -> list[int]:
        return sorted(set(self.owners))

    def add(self, owner: int, box: np.ndarray) -> None:
        self.boxes.append(np.asarray(box, np.float32))
        self.owners.append(owner)


class LookAhead:
    """frames: how many frames are held back (0 disables backfill); speed: assumed face speed in face widths per second."""

    def __init__(self, frames: int, fps: float, speed: float = 1.0) -> None:
        if frames < 0:
            raise ValueError("look-ahead must be >= 0 frames")
        self.frames = frames
        self.fps = max(fps, 1e-3)
        self.speed = speed
        self._slots: deque[Slot] = deque()
        self._last_detected: dict[int, tuple[int, np.ndarray]] = {}

    def push(self, frame: Frame, tracked: Detections, failure: str = "") -> list[Slot]:
        """Add one frame and its tracked boxes; return the slots that are now final."""
        if failure:
            self.fail_held(failure)
        slot = Slot(frame, failure=failure)
        for box, tid in zip(tracked.xyxy, tracked.tracker_id):
            slot.add(int(tid), box)
        hits = tracked.data.get("hits", np.ones(len(tracked), int))
        speeds = tracked.data.get("speed", np.zeros(len(tracked)))
        for box, tid, coasting, n, speed in zip(tracked.xyxy, tracked.tracker_id, tracked.predicted, hits, speeds):
            tid = int(tid)
            if coasting:
                if tid in self._last_detected:
                    slot.guessed[tid] = (*self._last_detected[tid], float(speed))
                continue
            if n == 1:
                self._backfill(tid, np.asarray(box, np.float32), frame.index)
            elif tid in self._last_detected:
                self._interpolate(tid, np.asarray(box, np.float32), frame.index)
            self._last_detected[tid] = (frame.index, np.asarray(box, np.float32))
        live = set(slot.tracks)
        self._last_detected = {k: v for k, v in self._last_detected.items() if k in live}
        self._slots.append(slot)
        ready = []
        while len(self._slots) > self.frames:
            ready.append(self._slots.popleft())
        return ready

    def fail_held(self, reason: str) -> None:
        """Mask every held frame whole: a face that entered just before detection broke could otherwise
        leave with no box, since no later detection will ever paint one back onto it."""
        for slot in self._slots:
            slot.failure = slot.failure or reason

    def release(self, is_due: Callable[[Frame], bool]) -> list[Slot]:
        """Let the oldest frames go early while `is_due` holds for them (a live stream's latency budget)."""
        ready = []
        while self._slots and is_due(self._slots[0].frame):
            ready.append(self._settle(self._slots.popleft()))
        return ready

    def flush(self) -> list[Slot]:
        ready = list(self._slots)
        self._slots.clear()
        self._last_detected.clear()
        return ready

    def _settle(self, slot: Slot) -> Slot:
        """A slot leaving early: every guess no later detection replaced also gets the last detected box
        grown by the track's speed times the time since, at most one face size each way."""
        for tid, (start, last, speed) in slot.guessed.items():
            size = float(max(last[2] - last[0], last[3] - last[1]))
            m = min(speed * (slot.frame.index - start) / self.fps, size)
            slot.add(tid, last + np.array([-m, -m, m, m], np.float32))
        slot.guessed.clear()
        return slot

    def _backfill(self, tid: int, box: np.ndarray, index: int) -> None:
        size = float(max(box[2] - box[0], box[3] - box[1]))
        for slot in self._slots:
            gap = (index - slot.frame.index) / self.fps
            m = min(size, size * self.speed * gap)
            slot.add(tid, box + np.array([-m, -m, m, m], np.float32))

    def _interpolate(self, tid: int, box: np.ndarray, index: int) -> None:
        start, first = self._last_detected[tid]
        span = index - start
        if span <= 1:
            return
        same_face = self._plausible(first, box, span / self.fps)
        for slot in self._slots:
            if start < slot.frame.index < index:
                a = (slot.frame.index - start) / span
                slot.add(tid, first * (1 - a) + box * a)
                if same_face:
                    slot.guessed.pop(tid, None)

    def _plausible(self, a: np.ndarray, b: np.ndarray, seconds: float) -> bool:
        """Whether one face could have gone from box a to box b in `seconds`. A tracker that swapped two
        faces at a detection hands us a jump to the other face; the line between them is then no guess
        of either, so the frames in between keep their guesses too (a 40 px face turning back next to a
        larger one leaked that way in a live test)."""
        wa, wb = float(a[2] - a[0]), float(b[2] - b[0])
        if not 0.67 <= wb / max(wa, 1.0) <= 1.5:
            return False
        moved = float(np.hypot(*((b[:2] + b[2:]) / 2 - (a[:2] + a[2:]) / 2)))
        return moved <= max(wa, wb) * (1.0 + 5.0 * seconds)  # a walker crosses ~5 face widths a second
