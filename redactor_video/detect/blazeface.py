"""MediaPipe BlazeFace on OpenVINO's CPU runtime, decoded as MediaPipe's face detector decodes it.

The registry's BlazeFace files are MediaPipe's own TFLite models; OpenVINO reads
TFLite directly. Running them here rather than through the mediapipe package
takes about a second off every start (importing mediapipe pulls in matplotlib),
which is a tenth of a 10-second clip, and puts both detectors on one runtime.
tests/test_blazeface.py checks this decoding against mediapipe's FaceDetector.

Decoding follows MediaPipe's face detection graph: the image is letterboxed
(centred, black borders) to the square input and normalised to [-1, 1]; each
SSD anchor regresses a box centre and size in input pixels; scores are
sigmoids; overlapping boxes are merged by a score-weighted average.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np
from redactor_video.detect.base import Detector, register
from redactor_video.geometry import iou_matrix
from redactor_video.detect.runtime import compile_file
from redactor_video.types import Detections


@dataclass(frozen=True)
class Variant:
    """A BlazeFace model and its SSD anchor layout: per stride, how many anchors sit on each grid cell."""

    model: str
    size: int
    anchors_per_stride: tuple[tuple[int, int], ...]

    @cached_property
    def anchor_centres(self) -> np.ndarray:
        """Anchor centres as fractions of the input, in the model's output order (cell by cell, row-major)."""
        centres = []
        for stride, per_cell in self.anchors_per_stride:
            cells = int(np.ceil(self.size / stride))
            ys, xs = np.mgrid[0:cells, 0:cells]
            grid = np.column_stack([(xs.ravel() + 0.5) / cells, (ys.ravel() + 0.5) / cells])
            centres.append(np.repeat(grid, per_cell, axis=0))
        return np.concatenate(centres).astype(np.float32)


# Anchor layouts as MediaPipe's graphs configure them (fixed-size anchors, offset 0.5).
VARIANTS = {
    "full": Variant("blazeface-full-range", 192, ((4, 1),)),
    "short": Variant("blazeface-short-range", 128, ((8, 2), (16, 6))),
}
SUPPRESSION_IOU = 0.3  # MediaPipe's face detector default


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's weighted suppression: each cluster around a best box becomes the score-weighted mean of
    its members, keeping the best score. Steadier boxes than plain NMS on a face several anchors fire on."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    overlap = iou_matrix(boxes, boxes)
    left = np.arange(len(boxes))
    out_boxes, out_scores = [], []
    while len(left):
        top = left[0]
        near = overlap[top, left] > iou
        near[0] = True  # the best box is in its own cluster, even a degenerate one
        cluster = left[near]
        weights = scores[cluster]
        out_boxes.append(weights @ boxes[cluster] / weights.sum())
        out_scores.append(scores[top])
        left = left[~near]
    return np.asarray(out_boxes, np.float32), np.asarray(out_scores, np.float32)


class BlazeFaceDetector(Detector):
    """BlazeFace on the whole image (letterboxed to the model's square input)."""

    def __init__(self, variant: str = "full", threshold: float = 0.5, models_dir: str | Path | None = None,
                 threads: int = 1) -> None:
        """threads: inference threads; one is fastest for this 2 ms network and leaves the other core free."""
        if variant not in VARIANTS:
            raise ValueError(f"unknown BlazeFace variant {variant!r}")
        self.name = f"blazeface-{variant}"
        self.threshold = threshold
        self._variant = VARIANTS[variant]
        odds = min(max(threshold, 1e-6), 1 - 1e-6)
        self._logit = float(np.log(odds / (1.0 - odds)))
        compiled = compile_file(self._variant.model, {"PERFORMANCE_HINT": "LATENCY",
                                                      "INFERENCE_NUM_THREADS": max(1, threads)}, models_dir)
        self._request = compiled.create_infer_request()
        # Box regressors have 16 values per anchor (box and 6 landmarks), scores one.
        self._boxes_out, self._scores_out = sorted(compiled.outputs, key=lambda o: -o.get_partial_shape()[2].get_length())

    def detect(self, image: np.ndarray) -> Detections:
        h, w = image.shape[:2]
        size = self._variant.size
        scale = size / max(h, w)
        fit_w, fit_h = max(1, round(w * scale)), max(1, round(h * scale))
        pad_x, pad_y = (size - fit_w) // 2, (size - fit_h) // 2
        canvas = np.zeros((1, size, size, 3), np.float32)
        canvas[0, pad_y:pad_y + fit_h, pad_x:pad_x + fit_w] = cv2.resize(image, (fit_w, fit_h),
                                                                        interpolation=cv2.INTER_LINEAR)
        canvas[0] -= 127.5
        canvas[0] *= 1.0 / 127.5
        result = self._request.infer({0: canvas})
        regressors, logits = result[self._boxes_out][0], result[self._scores_out][0, :, 0]
        hits = np.nonzero(logits >= self._logit)[0]
        if not len(hits):
            return Detections.empty(self.name)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[hits], -100.0, 100.0)))
        centre = regressors[hits, :2] / size + self._variant.anchor_centres[hits]
        half = regressors[hits, 2:4] / (2 * size)
        boxes, scores = weighted_nms(np.hstack([centre - half, centre + half]), scores, SUPPRESSION_IOU)
        xyxy = (boxes * size - [pad_x, pad_y, pad_x, pad_y]) / scale
        return Detections(np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32), scores, detector=self.name)

    def close(self) -> None:
        self._request = None


@register("blazeface")
def _blazeface(threshold: float = 0.5, models_dir: str | Path | None = None, variant: str = "full",
               threads: int = 1) -> Detector:
    return BlazeFaceDetector(variant=variant, threshold=threshold, models_dir=models_dir, threads=threads)
