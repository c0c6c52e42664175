"""MediaPipe BlazeFace through the mediapipe FaceDetector task.

The registry's BlazeFace files are bare TFLite models; the task insists on TFLite
model metadata (normalisation and tensor roles), so we add it in memory with the
flatbuffers schema modules that mediapipe ships, and hand the task the bytes.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import flatbuffers
import numpy as np

from redactor.detect.base import Detector, register
from redactor.errors import ModelError
from redactor.models import model_path
from redactor.types import Detections

VARIANTS = {"full": "blazeface-full-range", "short": "blazeface-short-range"}



_STDERR_LOCK = threading.Lock()


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Hide what LiteRT's native code prints straight to file descriptor 2 during one call.

    It logs on start-up, shutdown and, at random, on inference (a warning about
    tensor alignment), with no Python-side switch. Every call into mediapipe is
    wrapped; the window is a few milliseconds, and errors still surface as the
    exceptions mediapipe raises.
    """
    with _STDERR_LOCK:
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 2)
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def with_metadata(model: bytes) -> bytes:
    """Return the TFLite model with the metadata mediapipe's FaceDetector requires.

    Input: RGB image normalised as (x - 127.5) / 127.5; outputs: box regressors
    and classification scores, decoded by mediapipe's own SSD anchors.
    """
    from mediapipe.tasks.metadata import metadata_schema_py_generated as meta
    from mediapipe.tasks.metadata import schema_py_generated as schema

    image = meta.ImagePropertiesT()
    image.colorSpace = meta.ColorSpaceType.RGB
    content = meta.ContentT()
    content.contentPropertiesType = meta.ContentProperties.ImageProperties
    content.contentProperties = image
    norm = meta.NormalizationOptionsT()
    norm.mean, norm.std = [127.5], [127.5]
    unit = meta.ProcessUnitT()
    unit.optionsType = meta.ProcessUnitOptions.NormalizationOptions
    unit.options = norm
    stats = meta.StatsT()
    stats.max, stats.min = [255.0], [0.0]
    inp = meta.TensorMetadataT()
    inp.name, inp.content, inp.processUnits, inp.stats = "image", content, [unit], stats
    outputs = []
    for name in ("regressors", "classificators"):
        feature = meta.ContentT()
        feature.contentPropertiesType = meta.ContentProperties.FeatureProperties
        feature.contentProperties = meta.FeaturePropertiesT()
        tensor = meta.TensorMetadataT()
        tensor.name, tensor.content = name, feature
        outputs.append(tensor)
    subgraph = meta.SubGraphMetadataT()
    subgraph.inputTensorMetadata, subgraph.outputTensorMetadata = [inp], outputs
    model_meta = meta.ModelMetadataT()
    model_meta.name, model_meta.subgraphMetadata, model_meta.minParserVersion = "BlazeFace", [subgraph], "1.0.0"
    builder = flatbuffers.Builder(0)
    builder.Finish(model_meta.Pack(builder), file_identifier=b"M001")
    meta_bytes = bytes(builder.Output())

    tflite = schema.ModelT.InitFromObj(schema.Model.GetRootAs(model, 0))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(meta_bytes, dtype=np.uint8)
    tflite.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = "TFLITE_METADATA", len(tflite.buffers) - 1
    tflite.metadata = [m for m in (tflite.metadata or []) if m.name != b"TFLITE_METADATA"] + [entry]
    builder = flatbuffers.Builder(0)
    builder.Finish(tflite.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class BlazeFaceDetector(Detector):
    """BlazeFace on the whole image (letterboxed to the model's square input)."""

    def __init__(self, variant: str = "full", threshold: float = 0.5, models_dir: str | Path | None = None) -> None:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        if variant not in VARIANTS:
            raise ValueError(f"unknown BlazeFace variant {variant!r}")
        self.name = f"blazeface-{variant}"
        self._mp = mp
        model = Path(model_path(VARIANTS[variant], models_dir)).read_bytes()
        try:
            options = vision.FaceDetectorOptions(
                base_options=BaseOptions(model_asset_buffer=with_metadata(model)),
                min_detection_confidence=threshold,
                min_suppression_threshold=0.3,
            )
            with native_stderr_silenced():
                self._task = vision.FaceDetector.create_from_options(options)
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"mediapipe could not load {self.name}: {exc}") from None

    def detect(self, image: np.ndarray) -> Detections:
        rgb = np.ascontiguousarray(image)
        with native_stderr_silenced():
            result = self._task.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb))
        if not result.detections:
            return Detections.empty(self.name)
        boxes = [(d.bounding_box.origin_x, d.bounding_box.origin_y,
                  d.bounding_box.origin_x + d.bounding_box.width, d.bounding_box.origin_y + d.bounding_box.height)
                 for d in result.detections]
        scores = [d.categories[0].score for d in result.detections]
        xyxy = np.clip(np.asarray(boxes, np.float32), 0, [image.shape[1], image.shape[0]] * 2)
        return Detections(xyxy, scores, detector=self.name)

    def close(self) -> None:
        task, self._task = getattr(self, "_task", None), None
        if task is not None:
            with native_stderr_silenced():
                task.close()


@register("blazeface")
def _blazeface(threshold: float = 0.5, models_dir: str | Path | None = None, variant: str = "full") -> Detector:
    return BlazeFaceDetector(variant=variant, threshold=threshold, models_dir=models_dir)
