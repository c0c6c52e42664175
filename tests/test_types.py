"""Frame, Detections and Regions: validation at construction, immutability, and the collection helpers."""

from __future__ import annotations

import dataclasses
from contextlib import AbstractContextManager
from fractions import Fraction

import av
import numpy as np
import pytest

from redactor_video.types import Detections, Frame, Regions, Tracks
from tests.helpers import DoesNotRaise, portrait

BOX = [10.0, 20.0, 50.0, 70.0]


@pytest.mark.parametrize(
    ("image", "index", "exception"),
    [
        (np.zeros((4, 6, 3), np.uint8), 0, DoesNotRaise()),
        (np.zeros((1, 1, 3), np.uint8), 7, DoesNotRaise()),
        (np.zeros((4, 6, 3), np.float32), 0, pytest.raises(ValueError, match="uint8")),
        (np.zeros((4, 6), np.uint8), 0, pytest.raises(ValueError, match="HxWx3")),
        (np.zeros((4, 6, 4), np.uint8), 0, pytest.raises(ValueError, match="HxWx3")),
        (np.zeros((0, 6, 3), np.uint8), 0, pytest.raises(ValueError, match="HxWx3")),
        (np.zeros((4, 0, 3), np.uint8), 0, pytest.raises(ValueError, match="HxWx3")),
        ([[[0, 0, 0]]], 0, pytest.raises(ValueError, match="uint8")),
        (np.zeros((4, 6, 3), np.uint8), -1, pytest.raises(ValueError, match="index")),
    ],
)
def test_frame_validation(image: np.ndarray, index: int, exception: AbstractContextManager) -> None:
    with exception:
        frame = Frame(index, image)
        assert (frame.height, frame.width) == image.shape[:2]


def test_frame_is_immutable() -> None:
    frame = Frame(0, np.zeros((4, 6, 3), np.uint8), pts=3, time_base=Fraction(1, 25))
    with pytest.raises(ValueError, match="read-only"):
        frame.image[0, 0, 0] = 255
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.index = 1  # type: ignore[misc]
    assert frame.seconds == pytest.approx(0.12)
    assert Frame(0, frame.image).seconds is None


def test_a_packed_frame_holds_half_the_bytes_and_unpacks_to_the_same_picture() -> None:
    photo, _ = portrait("biden", 320)
    photo = np.ascontiguousarray(photo[: photo.shape[0] // 2 * 2])
    # A decoded video frame has been 4:2:0 once already; it is what the look-ahead packs.
    image = av.VideoFrame.from_ndarray(photo, format="rgb24").reformat(format="yuv420p").to_ndarray(format="rgb24")
    frame = Frame(4, image, pts=40, time_base=Fraction(1, 10), source="cam.mp4")
    packed = frame.pack()
    assert packed.yuv.nbytes == image.nbytes // 2
    back = packed.unpack()
    assert (back.index, back.pts, back.time_base, back.source) == (4, 40, Fraction(1, 10), "cam.mp4")
    assert back.image.shape == image.shape

    def as_encoded(rgb: np.ndarray) -> np.ndarray:  # what the video sink makes of it
        return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray().astype(int)

    error = np.abs(as_encoded(back.image) - as_encoded(image))
    assert error.mean() < 0.1 and np.percentile(error, 99.9) <= 2


@pytest.mark.parametrize(("shape", "packable"), [((4, 6, 3), True), ((5, 6, 3), False), ((4, 7, 3), False)])
def test_only_frames_with_even_sides_pack(shape: tuple[int, int, int], packable: bool) -> None:
    frame = Frame(0, np.zeros(shape, np.uint8))
    assert frame.packable is packable
    with DoesNotRaise() if packable else pytest.raises(ValueError, match="4:2:0"):
        frame.pack()


@pytest.mark.parametrize(
    ("xyxy", "confidence", "exception"),
    [
        ([BOX], [0.9], DoesNotRaise()),
        ([BOX, BOX], [0.9, 0.1], DoesNotRaise()),
        (np.zeros((0, 4)), [], DoesNotRaise()),
        ([[5.0, 5.0, 5.0, 5.0]], [0.5], DoesNotRaise()),
        ([BOX], [0.9, 0.8], pytest.raises(ValueError, match="confidence")),
        ([BOX, BOX], [0.9], pytest.raises(ValueError, match="confidence")),
        ([[10.0, 20.0, 50.0]], [0.9], pytest.raises(ValueError)),
        ([[np.nan, 20.0, 50.0, 70.0]], [0.9], pytest.raises(ValueError, match="finite")),
        ([[10.0, 20.0, np.inf, 70.0]], [0.9], pytest.raises(ValueError, match="finite")),
        ([[50.0, 20.0, 10.0, 70.0]], [0.9], pytest.raises(ValueError, match="x2 >= x1")),
        ([[10.0, 70.0, 50.0, 20.0]], [0.9], pytest.raises(ValueError, match="x2 >= x1")),
    ],
)
def test_detections_validation(xyxy: object, confidence: object, exception: AbstractContextManager) -> None:
    with exception:
        dets = Detections(np.asarray(xyxy, np.float32), np.asarray(confidence, np.float32))
        assert dets.xyxy.shape == (len(dets), 4)
        assert len(dets.confidence) == len(dets)


def test_detections_reject_non_finite_confidence() -> None:
    with pytest.raises(ValueError, match="finite"):
        Detections(np.array([BOX], np.float32), np.array([np.nan], np.float32))


def test_detections_sizes_and_types() -> None:
    dets = Detections(np.array([BOX, BOX]), [0.9, 0.8])
    assert dets.widths.tolist() == [40.0, 40.0]
    assert dets.heights.tolist() == [50.0, 50.0]
    assert dets.xyxy.dtype == np.float32


@pytest.mark.parametrize("field", ["xyxy", "confidence"])
def test_detections_arrays_are_read_only(field: str) -> None:
    dets = Detections(np.array([BOX]), [0.9])
    with pytest.raises(ValueError, match="read-only"):
        getattr(dets, field)[0] = 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(dets, field, None)


@pytest.mark.parametrize(
    ("kwargs", "exception"),
    [
        ({}, DoesNotRaise()),
        ({"predicted": [True], "hits": [4], "velocity": [[3.0, -1.0]], "traced": [0.5], "traced_box": [BOX],
          "faint": [True]}, DoesNotRaise()),
        ({"predicted": [True, False]}, pytest.raises(ValueError, match="predicted must have one entry per track")),
        ({"hits": []}, pytest.raises(ValueError, match="hits")),
        ({"velocity": [[1.0, 2.0], [3.0, 4.0]]}, pytest.raises(ValueError, match="velocity")),
        ({"traced_box": [BOX, BOX]}, pytest.raises(ValueError, match="traced_box")),
        ({"traced_box": [[np.nan, 0, 1, 1]]}, pytest.raises(ValueError, match="finite")),
    ],
)
def test_tracks_validation(kwargs: dict, exception: AbstractContextManager) -> None:
    with exception:
        tracks = Tracks(np.array([BOX]), [7], **kwargs)
        assert len(tracks) == 1 and tracks.tracker_id.tolist() == [7]


def test_tracks_defaults_are_a_track_detected_once_at_rest() -> None:
    tracks = Tracks(np.array([BOX]), [7])
    assert tracks.predicted.tolist() == [False] and tracks.hits.tolist() == [1] and tracks.faint.tolist() == [False]
    assert tracks.velocity.tolist() == [[0.0, 0.0]] and tracks.traced.tolist() == [0.0]
    np.testing.assert_array_equal(tracks.traced_box, tracks.xyxy)
    with pytest.raises(ValueError, match="read-only"):
        tracks.hits[0] = 2



def test_detections_do_not_alias_caller_arrays() -> None:
    boxes = np.array([BOX], np.float32)
    dets = Detections(boxes, [0.9])
    boxes[0, 2] = 11.0
    assert dets.xyxy[0].tolist() == BOX


def test_empty() -> None:
    dets = Detections.empty("blazeface")
    assert len(dets) == 0
    assert dets.xyxy.shape == (0, 4)
    assert dets.detector == "blazeface"
    assert len(Detections.merge([])) == 0


def test_merge_keeps_every_find_in_order() -> None:
    a = Detections(np.array([BOX]), [0.9], detector="a")
    b = Detections(np.array([[0, 0, 1, 1], BOX]), [0.4, 0.5], detector="b")
    merged = Detections.merge([a, Detections.empty(), b])
    assert len(merged) == 3
    assert merged.xyxy[1].tolist() == [0, 0, 1, 1]
    assert merged.confidence.tolist() == pytest.approx([0.9, 0.4, 0.5])
    assert merged.detector == "a+b"


def test_filter_returns_new_object_and_leaves_original() -> None:
    dets = Detections(np.array([BOX, [0, 0, 2, 2], BOX]), [0.9, 0.2, 0.6], detector="d")
    kept = dets[dets.confidence > 0.5]
    assert kept is not dets
    assert kept.confidence.tolist() == pytest.approx([0.9, 0.6])
    assert kept.detector == "d"
    assert len(dets) == 3
    one = dets[1]
    assert len(one) == 1 and one.xyxy.tolist() == [[0, 0, 2, 2]]


@pytest.mark.parametrize(
    ("boxes", "expected", "exception"),
    [
        ([[0, 0, 10, 10]], [[0, 0, 10, 10]], DoesNotRaise()),
        ([[-5, -5, 3, 4], [1, 2, 3, 4]], [[-5, -5, 3, 4], [1, 2, 3, 4]], DoesNotRaise()),
        (np.zeros((0, 4)), np.zeros((0, 4)), DoesNotRaise()),
        ([], np.zeros((0, 4)), DoesNotRaise()),
        ([[0, 0, 0, 10]], None, pytest.raises(ValueError, match="positive size")),
        ([[0, 10, 10, 10]], None, pytest.raises(ValueError, match="positive size")),
        ([[10, 0, 5, 10]], None, pytest.raises(ValueError, match="positive size")),
    ],
)
def test_regions_validation(boxes: object, expected: object, exception: AbstractContextManager) -> None:
    with exception:
        regions = Regions(np.asarray(boxes))
        assert regions.boxes.dtype == np.int32
        assert regions.boxes.tolist() == np.asarray(expected).reshape(-1, 4).tolist()
        assert not regions.whole_frame


def test_regions_everything_and_read_only() -> None:
    regions = Regions.everything("detector failed")
    assert regions.whole_frame and regions.reason == "detector failed" and len(regions) == 0
    boxes = Regions(np.array([[0, 0, 4, 4]])).boxes
    with pytest.raises(ValueError, match="read-only"):
        boxes[0, 0] = 1


def test_regions_round_float_boxes_outward() -> None:
    assert Regions(np.array([[0.5, 0.5, 10.7, 10.7]])).boxes.tolist() == [[0, 0, 11, 11]]


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_regions_reject_non_finite() -> None:
    with pytest.raises(ValueError, match="finite"):
        Regions(np.array([[np.nan, 0.0, 10.0, 10.0]]))
