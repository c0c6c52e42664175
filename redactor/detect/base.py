"""The Detector role: RGB image in, face boxes out. Implementations register by name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import cv2
import numpy as np

from redactor.types import Detections


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
