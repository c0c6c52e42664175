"""The detection schedule's second opinion, on real faces and the real sweep detector: a find just over the
start threshold starts a track only where the sweep detector confirms a face on a crop around it."""

from __future__ import annotations

import numpy as np
import pytest

from redactor_video.detect import Detector
from redactor_video.detect.schedule import Schedule
from redactor_video.pipeline import Pipeline
from redactor_video.types import Detections
from tests.helpers import portrait

pytestmark = pytest.mark.integration


class FixedFinds(Detector):
    """A detector whose finds are given: the scores are what the test is about."""

    name = "fixed"

    def __init__(self, boxes: list[tuple[float, float, float, float]], scores: list[float]) -> None:
        self.found = Detections(np.array(boxes, np.float32), np.array(scores, np.float32), detector=self.name)

    def detect(self, image: np.ndarray) -> Detections:
        return self.found


def test_unsure_every_frame_finds_start_tracks_only_where_the_sweep_detector_confirms_them(
        pipeline: Pipeline) -> None:
    """An every-frame find just over the threshold keeps its score where the sweep detector finds a face on
    a crop around it, and comes out just under the threshold (extends tracks, starts none) where there is
    none; finds clearly over the threshold, and faint ones, are left as they are."""
    image = np.full((480, 800, 3), 128, np.uint8)
    face, (x1, y1, x2, y2) = portrait("obama", 240)
    image[100:100 + face.shape[0], 40:280] = face[:380]
    on_face = (40 + x1, 100 + y1, 40 + x2, 100 + y2)
    finds = FixedFinds([on_face, (500, 100, 600, 200), (500, 300, 600, 400), (650, 300, 750, 400),
                        (400, 350, 450, 400)], [0.65, 0.55, 0.65, 0.75, 0.3])
    checked = Schedule(finds, pipeline.schedule.sweep, start=0.5).detect(image, sweep=False)
    score_at = dict(zip(map(tuple, checked.xyxy[:, :2].round().tolist()), checked.confidence.tolist()))
    assert score_at[(round(on_face[0]), round(on_face[1]))] == pytest.approx(0.65)
    assert 0.49 < score_at[(500, 100)] < 0.5 and 0.49 < score_at[(500, 300)] < 0.5
    assert (score_at[(650, 300)], score_at[(400, 350)]) == pytest.approx((0.75, 0.3))


class UnsureSweep(Detector):
    """The real sweep detector, whose finds on whole frames all score 0.55 (unsure), plus fixed extra finds;
    on the second opinion's crops it is left as it is."""

    name = "unsure"

    def __init__(self, sweep: Detector, frame_shape: tuple[int, ...], extra: list[tuple[float, ...]]) -> None:
        self.sweep, self.frame_shape, self.extra = sweep, frame_shape, extra

    def detect(self, image: np.ndarray) -> Detections:
        found = self.sweep.detect(image)
        if image.shape != self.frame_shape:
            return found
        boxes = np.concatenate([found.xyxy, np.array(self.extra, np.float32).reshape(-1, 4)])
        return Detections(boxes, np.full(len(boxes), 0.55, np.float32), detector=self.name)


def test_unsure_large_sweep_finds_start_tracks_only_where_a_scaled_down_crop_confirms_them(
        pipeline: Pipeline) -> None:
    """In night-IR noise CenterFace called noise a 130-156 px face at 0.50-0.51 on four clips; on a crop
    scaled down it finds nothing there. A real face found as unsure keeps its score; a large find on noise
    comes out just under the threshold; smaller unsure sweep finds are not checked."""
    rng = np.random.default_rng(0)
    image = rng.normal(90, 25, (720, 1280, 3)).clip(0, 255).astype(np.uint8)
    face, (x1, y1, x2, y2) = portrait("obama", 400)
    face = face[:660]
    image[30:30 + face.shape[0], 40:440] = face
    noise_box, small_box = (800, 200, 940, 340), (1100, 500, 1160, 560)
    sweep = UnsureSweep(pipeline.schedule.sweep, image.shape, [noise_box, small_box])
    checked = Schedule(None, sweep, start=0.5).detect(image, sweep=True)
    score_at = dict(zip(checked.xyxy[:, 0].round().tolist(), checked.confidence.tolist()))
    assert x2 - x1 >= 96
    assert [s for x, s in score_at.items() if 40 <= x < 440] == [pytest.approx(0.55)], "the real face"
    assert 0.49 < score_at[800] < 0.5
    assert score_at[1100] == pytest.approx(0.55)


def test_a_face_the_sweep_finds_is_reported_at_its_box_not_at_a_faint_loose_box_around_it(
        pipeline: Pipeline) -> None:
    """On a 540p frame (swept upsampled), a 26 px face the every-frame detector reports only faintly, in a box
    1.6 times the face's width, is reported at the sweep's box on a sweep frame: the loose box (their union)
    would make the face look larger to the tracker and the look-ahead (held and painted back as a larger
    face) and mask over twice its area. Without the sweep the faint find stands, to extend the face's track."""
    image = np.full((540, 960, 3), 128, np.uint8)
    face, (x1, y1, x2, y2) = portrait("obama", 100)
    image[200:200 + face.shape[0], 300:400] = face
    on_face = np.array([300 + x1, 200 + y1, 300 + x2, 200 + y2], np.float32)
    width = on_face[2] - on_face[0]
    loose = tuple(np.concatenate([on_face[:2] - 0.3 * width, on_face[2:] + 0.3 * width]))
    schedule = Schedule(FixedFinds([loose], [0.3]), pipeline.schedule.sweep, start=0.5)
    swept = schedule.detect(image, sweep=True)
    near = [b for b in swept.xyxy if abs((b[0] + b[2]) / 2 - (on_face[0] + on_face[2]) / 2) < width]
    assert len(near) == 1, "the face is one find"
    assert near[0][2] - near[0][0] < 1.3 * width, "the face is reported at the loose faint box"
    assert schedule.detect(image, sweep=False).xyxy.tolist() == [list(loose)]
