"""The Detector role: RGB image in, face boxes out. Implementations register by name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import cv2
import numpy as np

from redactor_video.types import Detections


class Detector(ABC):
    """Finds faces in one RGB image. Raises on failure; never returns a guess."""

    name: str = ""

    @abstractmethod
    def detect(self, image: np.ndarray) -> Detections:
        """Face boxes in `image` pixel coordinates."""

    def close(self) -> None:
        """Release native resources (model interpreters, threads)."""

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


DetectorFactory = Callable[..., Detector]
_REGISTRY: dict[str, DetectorFactory] = {}


def register(name: str) -> Callable[[DetectorFactory], DetectorFactory]:
    def wrap(factory: DetectorFactory) -> DetectorFactory:
        _REGISTRY[name] = factory
        return factory

    return wrap


def detector_names() -> list[str]:
    return sorted(_REGISTRY)


def create_detector(name: str, **options: object) -> Detector:
    """Build a registered detector; unknown names are an error, never a fallback."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown detector {name!r}; choose from {', '.join(detector_names())}")
    return _REGISTRY[name](**options)


def nms(dets: Detections, iou: float = 0.3) -> Detections:
    """Non-maximum suppression (OpenCV's), keeping the highest-scoring box of each cluster."""
    if len(dets) < 2:
        return dets
    xywh = np.column_stack([dets.xyxy[:, :2], dets.xyxy[:, 2:] - dets.xyxy[:, :2]])
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), dets.confidence.tolist(), 0.0, iou)
    return dets[np.sort(np.asarray(keep, dtype=np.int64).reshape(-1))]


def merge_union(dets: Detections, iou: float = 0.3) -> Detections:
    """Merge overlapping boxes into their union, keeping the best score of each cluster.

    Plain NMS keeps one box per cluster; where tiles, strips or detectors see
    the same face, the survivor may be a truncated box from a tile's edge. For
    redaction the union is the safe answer: it covers every part any pass saw.
    """
    if len(dets) < 2:
        return dets
    order = np.argsort(-dets.confidence)
    boxes = dets.xyxy[order].astype(np.float64)
    scores = dets.confidence[order]
    used = np.zeros(len(boxes), bool)
    out_boxes, out_scores = [], []
    for i in range(len(boxes)):
        if used[i]:
            continue
        used[i] = True
        box = boxes[i].copy()
        grew = True
        while grew:
            grew = False
            for j in np.flatnonzero(~used):
                lt = np.maximum(box[:2], boxes[j, :2])
                rb = np.minimum(box[2:], boxes[j, 2:])
                inter = float(np.prod(np.clip(rb - lt, 0, None)))
                area_j = float(np.prod(boxes[j, 2:] - boxes[j, :2]))
                union = float(np.prod(box[2:] - box[:2])) + area_j - inter
                if inter > iou * union or inter > 0.5 * area_j:
                    box = np.concatenate([np.minimum(box[:2], boxes[j, :2]), np.maximum(box[2:], boxes[j, 2:])])
                    used[j] = grew = True
        out_boxes.append(box)
        out_scores.append(scores[i])
    return Detections(np.array(out_boxes, np.float32), np.array(out_scores, np.float32), detector=dets.detector)
