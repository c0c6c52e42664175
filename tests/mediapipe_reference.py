"""MediaPipe's own FaceDetector task on our registry's BlazeFace files: the reference our decoding must match.

The product runs BlazeFace on OpenVINO (redactor_video/detect/blazeface.py); this module is
only for tests. The registry's files are bare TFLite models and the task insists on
TFLite model metadata (normalisation and tensor roles), so it is added in memory with
the flatbuffers schema modules mediapipe ships.
"""

from __future__ import annotations

import numpy as np

from redactor_video.models import model_path
from redactor_video.types import Detections


def with_metadata(model: bytes) -> bytes:
    """The TFLite model with the metadata the FaceDetector task requires: RGB input normalised as
    (x - 127.5) / 127.5, outputs box regressors and classification scores."""
    import flatbuffers
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


class MediaPipeBlazeFace:
    """mediapipe's FaceDetector task with the same model file, threshold and suppression as ours."""

    def __init__(self, model: str, threshold: float) -> None:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp = mp
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=with_metadata(model_path(model).read_bytes())),
            min_detection_confidence=threshold, min_suppression_threshold=0.3)
        self._task = vision.FaceDetector.create_from_options(options)

    def detect(self, rgb: np.ndarray) -> Detections:
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        found = self._task.detect(image).detections
        boxes = [(d.bounding_box.origin_x, d.bounding_box.origin_y, d.bounding_box.origin_x + d.bounding_box.width,
                  d.bounding_box.origin_y + d.bounding_box.height) for d in found]
        h, w = rgb.shape[:2]
        xyxy = np.clip(np.asarray(boxes, np.float32).reshape(-1, 4), 0, [w, h, w, h])
        return Detections(xyxy, [d.categories[0].score for d in found], detector="mediapipe")

    def close(self) -> None:
        self._task.close()
