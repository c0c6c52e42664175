"""Tiling: run a detector on overlapping crops as well as the whole frame.

Fixed-input detectors such as BlazeFace shrink a 1280 px frame to 192 px, so a
30 px face becomes 5 px and vanishes; on a 320 px tile it stays ~18 px.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from redactor_video.detect.base import Detector, merge_union
from redactor_video.types import Detections


@lru_cache(maxsize=32)
def tile_grid(width: int, height: int, tile: int, overlap: float) -> tuple[tuple[int, int, int, int], ...]:
    """Overlapping square tiles covering the frame; the last row and column sit flush with the edges."""
    def starts(length: int) -> list[int]:
        if length <= tile:
            return [0]
        step = max(1, int(tile * (1.0 - overlap)))
        pos = list(range(0, length - tile, step))
        return pos + [length - tile]

    return tuple((x, y, min(x + tile, width), min(y + tile, height))
                 for y in starts(height) for x in starts(width))


class TiledDetector(Detector):
    """Whole frame plus tiles of `tile` px overlapping by `overlap`, overlapping finds merged into their union."""

    def __init__(self, base: Detector, tile: int, overlap: float = 0.25, whole: bool = True) -> None:
        if tile < 32 or not 0.0 <= overlap < 0.9:
            raise ValueError("tile must be >= 32 px and overlap in [0, 0.9)")
        self.base, self.tile, self.overlap, self.whole = base, tile, overlap, whole
        self.name = f"{base.name}+tiles{tile}"

    def detect(self, image: np.ndarray) -> Detections:
        h, w = image.shape[:2]
        parts = [self.base.detect(image)] if self.whole else []
        for x0, y0, x1, y1 in tile_grid(w, h, self.tile, self.overlap):
            if (x1 - x0, y1 - y0) == (w, h) and self.whole:
                continue
            found = self.base.detect(image[y0:y1, x0:x1])
            if len(found):
                shifted = found.xyxy + np.array([x0, y0, x0, y0], np.float32)
                parts.append(Detections(shifted, found.confidence, detector=found.detector))
        return merge_union(Detections.merge(parts)) if parts else Detections.empty(self.name)

    def close(self) -> None:
        self.base.close()


class EnsembleDetector(Detector):
    """Several detectors on the same image, merged into union boxes: a face one misses, another may find."""

    def __init__(self, members: list[Detector]) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one detector")
        self.members = members
        self.name = "+".join(m.name for m in members)

    def detect(self, image: np.ndarray) -> Detections:
        return merge_union(Detections.merge([m.detect(image) for m in self.members]))

    def close(self) -> None:
        for m in self.members:
            m.close()
