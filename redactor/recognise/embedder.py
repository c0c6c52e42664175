"""dlib's ResNet face descriptor: a face box in, a 128-d vector out (0.6 Euclidean = same person).

The face is first aligned with dlib's 5-point landmark model (never the 68-point
one, whose training data forbids commercial use). Boxes from our detectors are
made square around their centre first: dlib's landmark model was trained on
square boxes, and CenterFace's tall boxes otherwise shift the alignment.
Nothing here keeps a crop or a vector; the caller owns what `embed` returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from redactor.errors import ModelError
from redactor.models import model_path

DIMENSIONS = 128
DESCRIPTOR_MODEL = "dlib-face-resnet"
LANDMARK_MODEL = "dlib-shape-5"


class Embedder:
    """Computes face descriptors; loading it loads both dlib models (about 30 MB)."""

    def __init__(self, models_dir: str | Path | None = None) -> None:
        import dlib

        self._dlib = dlib
        try:
            self._shape = dlib.shape_predictor(str(model_path(LANDMARK_MODEL, models_dir)))
            self._resnet = dlib.face_recognition_model_v1(str(model_path(DESCRIPTOR_MODEL, models_dir)))
        except RuntimeError as exc:
            raise ModelError(f"dlib could not load its face models: {exc}") from None

    def embed(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """The descriptor of the face in `box` (x1, y1, x2, y2 in pixels) of an RGB uint8 image."""
        x1, y1, x2, y2 = (float(v) for v in box)
        cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) / 2
        if half < 1:
            raise ValueError("face box is empty")
        rect = self._dlib.rectangle(int(round(cx - half)), int(round(cy - half)),
                                    int(round(cx + half)), int(round(cy + half)))
        rgb = np.ascontiguousarray(image)
        landmarks = self._shape(rgb, rect)
        return np.array(self._resnet.compute_face_descriptor(rgb, landmarks, 0), dtype=np.float64)
