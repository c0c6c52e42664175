"""Masker: turns tracked face boxes into the pixel regions the kernels redact."""

from __future__ import annotations

import math

import numpy as np

from redactor_video.mask.kernels import MODES, SHAPES, apply_regions, redact_everything
from redactor_video.types import Regions

FAR = 4.0
"""How many frame sizes a mask region may reach past the frame before it is taken as impossible: a face box
is at most the frame, grown at most 4x by --mask-scale; anything further means an upstream value went wrong
(and would overflow the kernels' int32 coordinates long before it reached a real size)."""


class Masker:
    """Grows each face box to cover the whole head, rounds outward, and applies the chosen effect.

    mask_scale: region size relative to the detected face box. Faces boxes run
    from brow to chin, so the region grows more upwards (hair, forehead) than down.
    """

    def __init__(self, mode: str = "blur", shape: str = "ellipse", mask_scale: float = 1.5,
                 strength: float = 0.125, feather: float = 0.15) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")
        if not (math.isfinite(mask_scale) and mask_scale >= 1.0):
            raise ValueError("mask_scale must be a finite number >= 1 (a smaller mask would leave the face visible)")
        self.mode, self.shape, self.mask_scale = mode, shape, mask_scale
        self.strength, self.feather = strength, feather

    def regions(self, boxes: np.ndarray, width: int, height: int) -> Regions:
        """The regions to redact for these face boxes; the whole frame if any box cannot be drawn.

        This is the last stage before pixels leave, so it trusts nothing upstream: a non-finite, inverted
        or impossibly large box masks the whole frame (reason "impossible box"), whatever produced it.
        """
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if not len(boxes):
            return Regions(np.zeros((0, 4), np.int32))
        w = boxes[:, 2] - boxes[:, 0]
        h = boxes[:, 3] - boxes[:, 1]
        grow_w = (self.mask_scale - 1.0) * w
        grow_h = (self.mask_scale - 1.0) * h
        # The feathered rim must lie outside the face box: widen by the feather too.
        rim = 1.0 / (1.0 - self.feather)
        grown = np.column_stack([
            boxes[:, 0] - grow_w / 2 - (rim - 1) * w / 2,
            boxes[:, 1] - grow_h * 0.6 - (rim - 1) * h / 2,
            boxes[:, 2] + grow_w / 2 + (rim - 1) * w / 2,
            boxes[:, 3] + grow_h * 0.4 + (rim - 1) * h / 2,
        ])
        if not (np.all(np.isfinite(grown)) and np.all(grown[:, 2:] > grown[:, :2])):
            return Regions.everything("impossible box")
        # Regions keep their full extent past the frame edge, so the mask shape is fitted to the
        # whole face, not to its visible part; the kernels clip. Regions wholly outside are dropped.
        inside = (grown[:, 2] > 0) & (grown[:, 0] < width) & (grown[:, 3] > 0) & (grown[:, 1] < height)
        grown = grown[inside]
        reach = FAR * max(width, height)
        if np.any(grown[:, :2] < -reach) or np.any(grown[:, 2] > width + reach) or np.any(grown[:, 3] > height + reach):
            return Regions.everything("impossible box")
        out = np.column_stack([np.floor(grown[:, :2]), np.ceil(grown[:, 2:])])
        return Regions(out.astype(np.int32))

    def apply(self, image: np.ndarray, regions: Regions) -> np.ndarray:
        if regions.whole_frame:
            return redact_everything(image)
        return apply_regions(image, regions.boxes, self.mode, self.shape, self.strength, self.feather)
