"""Detection schedule: a cheap detector on every frame, the expensive small-face sweep every k-th frame.

Large faces move many pixels per frame and need a fresh box every frame, which
BlazeFace on the whole frame gives in a few milliseconds; small, distant faces
move little, so the costly sweep (CenterFace at full resolution, or BlazeFace
on tiles) can run every k-th frame while the tracker and the look-ahead buffer
carry their masks in between.
"""

from __future__ import annotations

from redactor.detect.base import Detector, merge_union
from redactor.types import Detections


class Schedule:
    """Which detectors run on frame `index`; results are merged into union boxes."""

    def __init__(self, every_frame: Detector | None, sweep: Detector, period: int = 1) -> None:
        if period < 1:
            raise ValueError("the sweep period must be >= 1 frame")
        self.every_frame, self.sweep, self.period = every_frame, sweep, period

    @property
    def name(self) -> str:
        cheap = f"{self.every_frame.name} every frame + " if self.every_frame else ""
        return f"{cheap}{self.sweep.name} every {self.period} frame(s)"

    def detect(self, image, sweep: bool) -> Detections:
        """The cheap detector's finds, plus the sweep's when `sweep` (the caller keeps the period)."""
        parts = []
        if self.every_frame is not None:
            parts.append(self.every_frame.detect(image))
        if sweep:
            parts.append(self.sweep.detect(image))
        return merge_union(Detections.merge(parts))

    def close(self) -> None:
        if self.every_frame is not None:
            self.every_frame.close()
        self.sweep.close()
