"""Detection schedule: a cheap detector on every frame, the expensive small-face sweep every k-th frame.

Large faces move many pixels per frame and need a fresh box every frame, which
BlazeFace on the whole frame gives in a few milliseconds; small, distant faces
move little, so the costly sweep (CenterFace at full resolution, or BlazeFace
on tiles) can run every k-th frame while the tracker and the look-ahead buffer
carry their masks in between.

The sweep's finds start tracks from the user's threshold; the every-frame
detector's only from a margin above it. Whole-frame BlazeFace calls large
face-like things faces at scores up to 0.59 (an espresso cup in a background
photo held a mask for most of a clip: 8% of its background), while faces of
96 px and more score 0.64 or more in nine colour frames of ten; a face it scores lower is
started by the next sweep, at most `period` frames later, and the look-ahead
backfills the frames before.
"""

from __future__ import annotations

import numpy as np

from redactor.detect.base import Detector, merge_union
from redactor.types import Detections

EVERY_FRAME_MARGIN = 0.1
"""How far above the start threshold an every-frame find must score to start a track by itself."""


class Schedule:
    """Which detectors run on frame `index`; results are merged into union boxes.

    start: the score from which a find may start a track (the tracker's); the
    every-frame detector's finds below start + EVERY_FRAME_MARGIN are reported
    just under it, so they extend tracks but start none.
    """

    def __init__(self, every_frame: Detector | None, sweep: Detector, period: int = 1, start: float = 0.5) -> None:
        if period < 1:
            raise ValueError("the sweep period must be >= 1 frame")
        self.every_frame, self.sweep, self.period = every_frame, sweep, period
        self.start = start

    @property
    def name(self) -> str:
        cheap = f"{self.every_frame.name} every frame + " if self.every_frame else ""
        return f"{cheap}{self.sweep.name} every {self.period} frame(s)"

    def detect(self, image, sweep: bool) -> Detections:
        """The cheap detector's finds, plus the sweep's when `sweep` (the caller keeps the period)."""
        parts = []
        if self.every_frame is not None:
            parts.append(self._faint_below_margin(self.every_frame.detect(image)))
        if sweep:
            parts.append(self.sweep.detect(image))
        return merge_union(Detections.merge(parts))

    def _faint_below_margin(self, found: Detections) -> Detections:
        weak = found.confidence < self.start + EVERY_FRAME_MARGIN
        if not weak.any():
            return found
        faint = np.minimum(found.confidence, np.nextafter(np.float32(self.start), np.float32(0)))
        return Detections(found.xyxy, np.where(weak, faint, found.confidence).astype(np.float32),
                          detector=found.detector)

    def close(self) -> None:
        if self.every_frame is not None:
            self.every_frame.close()
        self.sweep.close()
