"""dlib's ResNet face descriptor: a face box in, a 128-d vector out (0.6 Euclidean = same person).

The face is first aligned with dlib's 5-point landmark model (never the 68-point
one, whose training data forbids commercial use). Boxes from our detectors are
made square around their centre first: dlib's landmark model was trained on
square boxes, and CenterFace's tall boxes otherwise shift the alignment.

Describing a face costs about 60 times what aligning it costs (123 ms against
2 ms, measured together on a loaded 2-core machine), so the matcher first takes a `Look` at each face it
may judge (the aligned chip dlib would describe, how good a sample it would
make, and a colour signature to tell whether the next look shows the same
face) and describes only the best look of each stretch of time. Nothing here
keeps a chip or a vector; the caller owns what `look` and `embed` return and
zeroes it when done (`Look.forget`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from redactor_video.errors import ModelError
from redactor_video.models import model_path

DIMENSIONS = 128
DESCRIPTOR_MODEL = "dlib-face-resnet"
LANDMARK_MODEL = "dlib-shape-5"
CHIP_PX = 150
CHIP_PADDING = 0.25
"""dlib's own chip for its descriptor (150 px, a quarter of the face added on each side): describing our chip gives
bit-for-bit the vector dlib computes from the frame and the landmarks."""
SIGNATURE_BINS = 8
"""Hue x saturation bins of the colour signature. On the real clips (benchmarks/recognition_real.py) an 8 x 8
histogram of the aligned chip tells one person's consecutive frames at 12 fps, head turns and rolls included
(similarity >= 0.985 on design clips, >= 0.966 on validation ones) from two people of one clip (<= 0.83 and
<= 0.969). 16 x 16 grey thumbnails of the chip could not: one person's consecutive frames went down to 0.58, two
people up to 0.88."""


@dataclass
class Look:
    """One aligned face: its chip (RGB, CHIP_PX square), its quality as a sample and its colour signature.

    `quality` is the chip's sharpness times how frontal the 5 landmarks say the
    face is (0 for a profile: no sample). `signature` is a unit vector; the dot
    product of two looks' signatures is their similarity (1 = same colours).
    """

    chip: np.ndarray
    quality: float
    signature: np.ndarray

    def forget(self) -> None:
        """Zero the chip and the signature in place: a look of a face that does not match must not linger."""
        self.chip.fill(0)
        self.signature.fill(0.0)


def frontal(points: np.ndarray) -> float:
    """1 for a frontal face, falling to 0 for a profile: the nose's offset from the eyes' midpoint along the eye line,
    in eye distances (the eye line's own frame, so a rolled head is not taken for a turned one).

    dlib's 5 points are the two corners of each eye (0-1, 2-3) and the base of the nose (4). On the headpose clips a
    three-quarter view reads 0.5-0.7 and frontal faces 0-0.1; the descriptor of a face turned past 0.5 is 0.1-0.2
    further from the same person's frontal templates (benchmarks/recognition_real.py, "sample quality").
    """
    left, right = points[0:2].mean(axis=0), points[2:4].mean(axis=0)
    span = float(np.linalg.norm(right - left))
    if span < 1e-6:
        return 0.0
    along = float(np.dot(points[4] - (left + right) / 2, (right - left) / span)) / span
    return max(0.0, 1.0 - abs(along))


def sharpness(chip: np.ndarray) -> float:
    """Variance of the Laplacian of the grey chip. The chip is resampled to CHIP_PX, so a small face, upsampled, is soft
    too: size counts through this as well as through the matcher's minimum face width."""
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def signature(chip: np.ndarray) -> np.ndarray:
    """Square root of the chip's normalised hue x saturation histogram (a unit vector: dot = Bhattacharyya coefficient)."""
    hsv = cv2.cvtColor(chip, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [SIGNATURE_BINS, SIGNATURE_BINS], [0, 180, 0, 256]).ravel()
    return np.sqrt(hist / max(float(hist.sum()), 1.0)).astype(np.float64)


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

    def look(self, image: np.ndarray, box: Sequence[float]) -> Look:
        """Align the face in `box` (x1, y1, x2, y2 in pixels) of an RGB uint8 image and judge it as a sample."""
        x1, y1, x2, y2 = (float(v) for v in box)
        cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) / 2
        if half < 1:
            raise ValueError("face box is empty")
        rect = self._dlib.rectangle(int(round(cx - half)), int(round(cy - half)),
                                    int(round(cx + half)), int(round(cy + half)))
        rgb = np.ascontiguousarray(image)
        landmarks = self._shape(rgb, rect)
        points = np.array([(p.x, p.y) for p in landmarks.parts()], np.float64)
        chip = np.asarray(self._dlib.get_face_chip(rgb, landmarks, CHIP_PX, CHIP_PADDING))
        return Look(chip, sharpness(chip) * frontal(points), signature(chip))

    def describe(self, look: Look) -> np.ndarray:
        """The descriptor of a look's chip (the chip itself is left for the caller to forget)."""
        return np.array(self._resnet.compute_face_descriptor(look.chip, 0), dtype=np.float64)

    def embed(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """The descriptor of the face in `box` of an RGB uint8 image (enrolment and search: no choice of look)."""
        look = self.look(image, box)
        try:
            return self.describe(look)
        finally:
            look.forget()
