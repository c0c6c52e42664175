"""Box geometry, once: size, centre and overlap of xyxy boxes (x1, y1, x2, y2 in pixels).

Every stage that reasons about faces (detectors merging finds, the tracker, the look-ahead, the
watchlist's sampler) measures boxes the same way; a face's size is its box's longer side, because
detectors disagree on aspect (BlazeFace square, CenterFace tall) but not on that.
"""

from __future__ import annotations

import numpy as np


def size(box: np.ndarray) -> float:
    """The longer side of one box."""
    return float(max(box[2] - box[0], box[3] - box[1]))


def sizes(boxes: np.ndarray) -> np.ndarray:
    """The longer side of each of (n, 4) boxes."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    return np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def centre(box: np.ndarray) -> np.ndarray:
    """The centre of one box, in float64 so differences of nearby centres stay exact."""
    return (np.asarray(box[:2], np.float64) + np.asarray(box[2:], np.float64)) / 2


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection-over-union of two xyxy box arrays."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
