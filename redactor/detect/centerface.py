"""CenterFace (anchor-free, any input size) on OpenCV's DNN module.

Its cost grows with the input area, so `scale` trades speed for small faces:
1.0 runs at native resolution, 2.0 upsamples to find faces ~12-24 px wide.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from redactor.detect.base import Detector, merge_union, nms, register
from redactor.errors import ModelError
from redactor.models import model_path
from redactor.types import Detections

_OUTPUTS = ["537", "538", "539", "540"]
# Above this many input pixels the network runs on overlapping vertical strips (faces larger than the
# overlap are BlazeFace's): its activations at 1920x1088 take ~450 MB, the 1080p budget is 1 GiB.
MAX_PIXELS = 1280 * 750
STRIP_OVERLAP = 256


class CenterFaceDetector(Detector):
    name = "centerface"

    def __init__(self, threshold: float = 0.5, scale: float = 1.0, models_dir: str | Path | None = None) -> None:
        if not 0.1 <= scale <= 4.0:
            raise ValueError("CenterFace scale must be between 0.1 and 4")
        self.threshold = threshold
        self.scale = scale
        try:
            self._net = cv2.dnn.readNetFromONNX(str(model_path("centerface", models_dir)))
        except cv2.error as exc:
            raise ModelError(f"OpenCV could not load CenterFace: {exc.msg}") from None

    def detect(self, image: np.ndarray) -> Detections:
        h, w = image.shape[:2]
        if w * h * self.scale ** 2 <= MAX_PIXELS:
            return self._detect(image)
        strips = int(np.ceil(w * h * self.scale ** 2 / MAX_PIXELS))
        step = int(np.ceil((w + (strips - 1) * STRIP_OVERLAP) / strips))
        parts = []
        for k in range(strips):
            x0 = min(k * (step - STRIP_OVERLAP), max(w - step, 0))
            found = self._detect(image[:, x0:x0 + step])
            parts.append(Detections(found.xyxy + np.array([x0, 0, x0, 0], np.float32), found.confidence,
                                    detector=self.name))
        return merge_union(Detections.merge(parts))

    def _detect(self, image: np.ndarray) -> Detections:
        h, w = image.shape[:2]
        in_w = max(32, int(np.ceil(w * self.scale / 32) * 32))
        in_h = max(32, int(np.ceil(h * self.scale / 32) * 32))
        blob = cv2.dnn.blobFromImage(image, 1.0, (in_w, in_h), (0, 0, 0), swapRB=False, crop=False)
        self._net.setInput(blob)
        heatmap, scale, offset, _ = self._net.forward(_OUTPUTS)
        rows, cols = np.nonzero(heatmap[0, 0] > self.threshold)
        if not len(rows):
            return Detections.empty(self.name)
        bh = np.exp(scale[0, 0, rows, cols]) * 4
        bw = np.exp(scale[0, 1, rows, cols]) * 4
        cy = (rows + offset[0, 0, rows, cols] + 0.5) * 4
        cx = (cols + offset[0, 1, rows, cols] + 0.5) * 4
        sx, sy = w / in_w, h / in_h
        xyxy = np.column_stack([(cx - bw / 2) * sx, (cy - bh / 2) * sy, (cx + bw / 2) * sx, (cy + bh / 2) * sy])
        xyxy = np.clip(xyxy, 0, [w, h, w, h])
        return nms(Detections(xyxy, heatmap[0, 0, rows, cols], detector=self.name))


@register("centerface")
def _centerface(threshold: float = 0.5, models_dir: str | Path | None = None, scale: float = 1.0) -> Detector:
    return CenterFaceDetector(threshold=threshold, scale=scale, models_dir=models_dir)
