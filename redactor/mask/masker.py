"""Masker: turns tracked face boxes into the pixel regions the kernels redact."""

from __future__ import annotations

import numpy as np

from redactor.mask.kernels import MODES, SHAPES, apply_regions, redact_everything
from redactor.types import Regions


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
        if mask_scale < 1.0:
            raise ValueError("mask_scale must be >= 1 (a mask smaller than the face would leave it visible)")
        self.mode, self.shape, self.mask_scale = mode, shape, mask_scale
        self.strength, self.feather = strength, feather

    def regions(self, boxes: np.ndarray, width: int, height: int) -> Regions:
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
        out = np.column_stack([np.floor(grown[:, :2]), np.ceil(grown[:, 2:])])
        # Regions keep their full extent past the frame edge, so the mask shape is fitted to the
        # whole face, not to its visible part; the kernels clip. Regions wholly outside are dropped.
        inside = (out[:, 2] > 0) & (out[:, 0] < width) & (out[:, 3] > 0) & (out[:, 1] < height)
        return Regions(out[inside].astype(np.int32))

    def apply(self, image: np.ndarray, regions: Regions) -> np.ndarray:
        if regions.whole_frame:
            return redact_everything(image)
        return apply_regions(image, regions.boxes, self.mode, self.shape, self.strength, self.feather)
