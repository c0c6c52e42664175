"""BlazeFace on OpenVINO decodes the model as MediaPipe does: checked against mediapipe's own FaceDetector task
on the same model files, on real portraits and on a frame of the real-face test clip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from redactor_video.detect.blazeface import VARIANTS, BlazeFaceDetector
from redactor_video.detect.runtime import CACHE_SUBDIR
from redactor_video.models import models_dir, spec_for
from redactor_video.geometry import iou_matrix
from tests.mediapipe_reference import MediaPipeBlazeFace

PORTRAITS = ["obama.jpg", "biden.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg"]
THRESHOLD = 0.5


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[BlazeFaceDetector, MediaPipeBlazeFace, int]]:
    """Ours and mediapipe's detector on the same variant, and that variant's input size."""
    ours = BlazeFaceDetector(request.param, threshold=THRESHOLD)
    reference = MediaPipeBlazeFace(VARIANTS[request.param].model, THRESHOLD)
    yield ours, reference, VARIANTS[request.param].size
    ours.close()
    reference.close()


def portrait(folder: Path, name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(folder / name)), cv2.COLOR_BGR2RGB)


def letterboxed(image: np.ndarray, size: int) -> np.ndarray:
    """The image already at the model's input size, so neither side resizes and only decoding can differ."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    out = np.zeros((size, size, 3), np.uint8)
    x0 = (size - small.shape[1]) // 2
    out[:small.shape[0], x0:x0 + small.shape[1]] = small
    return out


@pytest.mark.parametrize("name", PORTRAITS)
def test_decoding_matches_mediapipe_at_input_size(pair: tuple, shared_data: Path, name: str) -> None:
    ours, reference, size = pair
    image = letterboxed(portrait(shared_data, name), size)
    mine, theirs = ours.detect(image), reference.detect(image)
    assert len(mine) == len(theirs) == 1
    # mediapipe truncates origin and size to whole pixels, so its far corner can sit up to 2 px short
    np.testing.assert_allclose(mine.xyxy, theirs.xyxy, atol=2.0)
    np.testing.assert_allclose(mine.confidence, theirs.confidence, atol=0.01)


@pytest.mark.parametrize("name", PORTRAITS)
def test_whole_photo_finds_the_face_mediapipe_finds(pair: tuple, shared_data: Path, name: str) -> None:
    """Full-size photos: the two resample differently (mediapipe's own sampler), so boxes agree, not to the
    pixel; most on the face cut by the photo's edge (IoU 0.68 there, 0.8-0.95 elsewhere)."""
    ours, reference, _ = pair
    image = portrait(shared_data, name)
    mine, theirs = ours.detect(image), reference.detect(image)
    assert len(mine) == len(theirs) == 1
    assert iou_matrix(mine.xyxy, theirs.xyxy)[0, 0] >= 0.6


def test_clip_frame_agrees_with_mediapipe(tiny_clip: tuple) -> None:
    """Several moving faces of different sizes over a photo background: every face either finds, the other
    finds too (score 0.4 against the 0.5 threshold, for the resampling difference)."""
    path, _ = tiny_clip
    ours = BlazeFaceDetector("full", threshold=0.4)
    reference = MediaPipeBlazeFace(VARIANTS["full"].model, 0.4)
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(12), container.decode(video=0))]
    compared = 0
    for frame in frames:
        mine, theirs = ours.detect(frame), reference.detect(frame)
        for a, b in ((mine[mine.confidence >= THRESHOLD], theirs), (theirs[theirs.confidence >= THRESHOLD], mine)):
            if len(a):
                assert len(b) and (iou_matrix(a.xyxy, b.xyxy).max(axis=1) >= 0.5).all()
                compared += len(a)
    assert compared >= len(frames)
    ours.close()
    reference.close()


def test_compiled_network_is_cached_per_model_checksum(tmp_path: Path, shared_data: Path) -> None:
    """The second load comes from the cache folder named by the model's SHA-256 and detects the same."""
    import shutil

    models = tmp_path / "models"
    models.mkdir()
    spec = spec_for(VARIANTS["full"].model)
    shutil.copy(models_dir() / spec.filename, models / spec.filename)
    image = portrait(shared_data, "obama.jpg")
    first = BlazeFaceDetector("full", models_dir=models).detect(image)
    blobs = list((models / CACHE_SUBDIR / spec.sha256[:16]).iterdir())
    assert blobs
    second = BlazeFaceDetector("full", models_dir=models).detect(image)
    np.testing.assert_array_equal(first.xyxy, second.xyxy)


def test_unwritable_cache_place_still_loads(tmp_path: Path, shared_data: Path) -> None:
    """A file where the cache folder should be: no cache, same detections."""
    import shutil

    models = tmp_path / "models"
    models.mkdir()
    spec = spec_for(VARIANTS["full"].model)
    shutil.copy(models_dir() / spec.filename, models / spec.filename)
    (models / CACHE_SUBDIR).write_text("not a folder")
    found = BlazeFaceDetector("full", models_dir=models).detect(portrait(shared_data, "obama.jpg"))
    assert len(found) == 1
