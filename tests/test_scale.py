"""The same scene masked the same at any frame size: tracking and look-ahead sizes are shares of the frame.

A camera that records the same people at 360p, 720p or 1440p must get the same
masks, scaled: whether a face counts as one only the sweep can see (held longer,
started from repeated faint finds, painted back along its motion) depends on its
share of the frame, not on its width in pixels. Scales of 1/2 and 2 keep nearly
every floating-point step exact, so the plans must match to a hundredth of a
pixel: only values within a hair of zero (halving a subnormal float rounds) and a
predicted size that shrinks to the motion model's 1 px floor round differently.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redactor_video.track.lookahead import LookAhead
from redactor_video.track.tracker import Tracker
from redactor_video.types import Detections, Frame

FPS = 10.0
BASE = (720, 1280)
IMAGES = {k: np.zeros((int(BASE[0] * k), int(BASE[1] * k), 3), np.uint8) for k in (0.5, 1.0, 2.0)}


@st.composite
def scenes(draw: st.DrawFn) -> tuple[int, list[list[tuple[tuple[float, ...], float]]]]:
    """A sweep period and, per frame, the finds at 720p: faces moving at walking pace, found, found faintly
    or missed frame by frame, and clutter."""
    frames = draw(st.integers(8, 30))
    period = draw(st.sampled_from([1, 3, 5]))
    finds: list[list[tuple[tuple[float, ...], float]]] = [[] for _ in range(frames)]
    for _ in range(draw(st.integers(1, 3))):
        width = draw(st.floats(24.0, 160.0))
        x, y = draw(st.floats(0.0, 1100.0)), draw(st.floats(0.0, 500.0))
        vx, vy = (draw(st.floats(-3.0, 3.0)) * width / FPS for _ in range(2))
        first = draw(st.integers(0, frames - 1))
        for i in range(first, frames):
            score = draw(st.sampled_from([0.0, 0.0, 0.3, 0.4, 0.6, 0.9]))
            if score:
                cx, cy = x + vx * (i - first), y + vy * (i - first)
                finds[i].append(((cx, cy, cx + width, cy + 1.2 * width), score))
    return period, finds


def plans(scale: float, period: int, finds: list[list[tuple[tuple[float, ...], float]]]) -> list[list[tuple]]:
    """Every frame's mask boxes (with their track) at `scale` times 720p."""
    image = IMAGES[scale]
    tracker = Tracker(hold_seconds=1.0, frame_size=(image.shape[1], image.shape[0]))
    buffer = LookAhead(8, FPS)
    out = []
    for i, found in enumerate(finds):
        boxes = np.array([b for b, _ in found], np.float32).reshape(-1, 4) * np.float32(scale)
        detections = Detections(boxes, np.array([c for _, c in found], np.float32))
        sweep = i % period == 0
        out += buffer.push(Frame(i, image), tracker.update(detections, i / FPS, detected=sweep))
    out += buffer.flush()
    return [[(owner, tuple(np.asarray(box, np.float64) / scale)) for box, owner in zip(p.boxes, p.owners)]
            for p in out]


def same(a: list[list[tuple]], b: list[list[tuple]]) -> bool:
    """The same tracks on the same frames, every box within a hundredth of a pixel."""
    return [[owner for owner, _ in frame] for frame in a] == [[owner for owner, _ in frame] for frame in b] and all(
        np.allclose(box_a, box_b, rtol=0.0, atol=0.01)
        for frame_a, frame_b in zip(a, b) for (_, box_a), (_, box_b) in zip(frame_a, frame_b))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes())
def test_a_scene_at_half_or_twice_the_size_is_masked_the_same_scaled(scene) -> None:
    period, finds = scene
    at_720p = plans(1.0, period, finds)
    assert same(plans(0.5, period, finds), at_720p), "at 360p the masks differ from 720p's, scaled"
    assert same(plans(2.0, period, finds), at_720p), "at 1440p the masks differ from 720p's, scaled"
