"""CenterFace (anchor-free, any input size) on OpenVINO's CPU runtime.

Its cost grows with the input area, so `scale` trades speed for small faces:
1.0 runs at native resolution, 2.0 upsamples to find faces ~12-24 px wide.
OpenVINO runs it in bfloat16 where its CPU plugin supports that (AVX-512) and in
float32 elsewhere: on our AVX-512 VM 66 ms per 720p frame against 160 ms in
float32 and ~200 ms on OpenCV's DNN module, at the same recall (RESULTS.md).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import openvino as ov

from redactor_video.detect.base import Detector, merge_union, nms, register
from redactor_video.detect.runtime import compile_network, core_for, read_model
from redactor_video.types import Detections

_OUTPUTS = ["537", "538", "539", "540"]
# Above this many input pixels the network runs on overlapping vertical strips (faces larger than the
# overlap are BlazeFace's): a whole 1920x1088 frame was no faster end to end and took the 1080p run
# from 0.96 to 1.1 GB, over its 1 GiB budget.
MAX_PIXELS = 1280 * 750
STRIP_OVERLAP = 256
_SHAPES_KEPT = 4  # compiled input sizes kept: a run sees one or two (frame, strip)


class CenterFaceDetector(Detector):
    name = "centerface"

    def __init__(self, threshold: float = 0.5, scale: float = 1.0, models_dir: str | Path | None = None,
                 threads: int = 0) -> None:
        """threads: inference threads, 0 for one per core (fastest alone; a live filter that also encodes
        in real time keeps one core free)."""
        if not 0.1 <= scale <= 4.0:
            raise ValueError("CenterFace scale must be between 0.1 and 4")
        self.threshold = threshold
        self.scale = scale
        self._core = core_for("centerface", models_dir)
        self._config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "bf16"}
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = threads
        self._model = read_model(self._core, "centerface", models_dir)
        self._requests: dict[tuple[int, int], tuple[ov.InferRequest, list[ov.Output]]] = {}

    def _request(self, in_h: int, in_w: int) -> tuple[ov.InferRequest, list[ov.Output]]:
        """A network compiled for this input size (the model is fully convolutional; compiling takes ~0.2 s)."""
        key = (in_h, in_w)
        if key not in self._requests:
            if len(self._requests) >= _SHAPES_KEPT:
                self._requests.pop(next(iter(self._requests)))
            self._model.reshape({self._model.inputs[0].any_name: [1, 3, in_h, in_w]})
            compiled = compile_network(self._core, self._model, self._config)
            self._requests[key] = (compiled.create_infer_request(), [compiled.output(n) for n in _OUTPUTS])
        return self._requests[key]

    def close(self) -> None:
        self._requests.clear()

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
        request, outputs = self._request(in_h, in_w)
        result = request.infer({0: blob})
        heatmap, scale, offset = (result[o] for o in outputs[:3])
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
def _centerface(threshold: float = 0.5, models_dir: str | Path | None = None, scale: float = 1.0,
                threads: int = 0) -> Detector:
    return CenterFaceDetector(threshold=threshold, scale=scale, models_dir=models_dir, threads=threads)
