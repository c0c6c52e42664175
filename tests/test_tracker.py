"""The tracker, stepped frame by frame: what is reported, for how long, and under which id."""

from __future__ import annotations

import numpy as np
import pytest

from redactor_video.track.tracker import Tracker
from redactor_video.types import Detections

FPS = 10.0


def dets(*boxes: tuple[float, float, float, float], score: float = 0.9) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), score, np.float32))


def box_at(x: float, y: float, size: float = 30.0) -> tuple[float, float, float, float]:
    return (x, y, x + size, y + size)


def contains(outer: np.ndarray, inner: np.ndarray) -> bool:
    return bool(outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3])


@pytest.mark.parametrize(("hold", "high", "low"), [(-1.0, 0.5, 0.25), (1.0, 0.5, 0.6), (1.0, 1.5, 0.2), (1.0, 0.5, -0.1)])
def test_bad_settings(hold: float, high: float, low: float) -> None:
    with pytest.raises(ValueError):
        Tracker(hold, high, low)


def test_detected_face_is_reported_with_its_own_box() -> None:
    tracker = Tracker()
    out = tracker.update(dets(box_at(10, 20)), 0.0)
    assert out.tracker_id.tolist() == [1]
    assert out.predicted.tolist() == [False]
    np.testing.assert_allclose(out.xyxy[0], box_at(10, 20))
    assert len(tracker.update(Detections.empty(), 0.1)) == 1


def test_missed_face_coasts_with_a_widening_box_then_is_dropped_after_hold() -> None:
    tracker = Tracker(hold_seconds=0.5)
    for k in range(5):
        last = np.array(box_at(10 + 5 * k, 40, 60))
        out = tracker.update(dets(tuple(last)), k / FPS)
    assert out.predicted.tolist() == [False]
    widths = []
    for k in range(5, 10):
        out = tracker.update(Detections.empty(), k / FPS)
        assert out.tracker_id.tolist() == [1], f"frame {k}: track lost {k - 4} frames after the last detection"
        assert out.predicted.tolist() == [True]
        box = out.xyxy[0]
        widths.append(float(box[2] - box[0]))
        assert contains(box, np.array(box_at(10 + 5 * k, 40, 60))), "the coasting box must cover the still-moving face"
    assert widths == sorted(widths) and widths[-1] > widths[0] > 60.0
    assert len(tracker.update(Detections.empty(), 1.0)) == 0, "dropped once hold has passed"


@pytest.mark.parametrize(("gap", "kept"), [(0.9, True), (1.0, True), (1.1, False)])
def test_hold_is_in_seconds(gap: float, kept: bool) -> None:
    for fps in (5.0, 50.0):
        tracker = Tracker(hold_seconds=1.0)
        tracker.update(dets(box_at(50, 50, 60)), 0.0)
        t = 0.0
        while t + 1 / fps < gap:
            t += 1 / fps
            tracker.update(Detections.empty(), t)
        assert (len(tracker.update(Detections.empty(), gap)) == 1) is kept


@pytest.mark.parametrize(("size", "held"), [(30.0, 2.0), (47.0, 2.0), (48.0, 1.0), (120.0, 1.0)])
def test_faces_only_the_sweep_sees_are_held_twice_as_long(size: float, held: float) -> None:
    """Under a 720p frame's small-face size (48 px) only the periodic sweep finds a face, and in night-IR noise it
    can miss one for 1.8 s between two runs of detections: such tracks, once found three times, are held twice
    `hold_seconds`."""
    tracker = Tracker(hold_seconds=1.0)
    for k in range(3):
        tracker.update(dets(box_at(50, 50, size)), k / FPS)
    last = 2 / FPS
    assert len(tracker.update(Detections.empty(), last + held - 0.05)) == 1
    assert len(tracker.update(Detections.empty(), last + held + 0.05)) == 0


@pytest.mark.parametrize("finds", [1, 2])
def test_a_small_track_found_once_or_twice_is_held_the_plain_hold(finds: int) -> None:
    """A 19 px patch of night-IR noise the sweep scored 0.57 once started a track that coasted 2 s, 44%
    of a clip's changed background; found fewer than three times, a small track is held `hold_seconds`."""
    tracker = Tracker(hold_seconds=1.0)
    for k in range(finds):
        tracker.update(dets(box_at(50, 50, 20)), k / FPS)
    last = (finds - 1) / FPS
    assert len(tracker.update(Detections.empty(), last + 0.95)) == 1
    assert len(tracker.update(Detections.empty(), last + 1.05)) == 0


def test_a_coasting_box_grows_no_more_than_its_uncertainty_allows() -> None:
    """Two finds 0.2 s apart, 19 then 23 px wide, read as a face growing 20 px a second: coasting on, the
    mask is bounded by 1.5 times the last size plus one face size of margin each way (it reached 155 px)."""
    tracker = Tracker(hold_seconds=1.0)
    tracker.update(dets(box_at(168, 329, 19)), 0.0)
    tracker.update(dets(box_at(175, 324, 23), score=0.3), 0.2)
    out = tracker.update(Detections.empty(), 1.15)
    width = float(out.xyxy[0, 2] - out.xyxy[0, 0])
    assert 23 < width < 1.5 * 23 + 2 * 23 + 1


def test_a_faint_match_is_flagged() -> None:
    """The look-ahead keeps interpolating between confident finds across faint ones (they can sit a
    third of a face off it), so the tracker says which detected boxes were faint."""
    tracker = Tracker()
    assert tracker.update(dets(box_at(50, 50)), 0.0).faint.tolist() == [False]
    assert tracker.update(dets(box_at(52, 50), score=0.3), 0.1).faint.tolist() == [True]
    assert tracker.update(Detections.empty(), 0.2).faint.tolist() == [False]


def test_redetected_face_keeps_its_id() -> None:
    tracker = Tracker(hold_seconds=1.0)
    tracker.update(dets(box_at(50, 50)), 0.0)
    for k in range(1, 6):
        tracker.update(Detections.empty(), k / FPS)
    out = tracker.update(dets(box_at(52, 51)), 0.6)
    assert out.tracker_id.tolist() == [1]
    assert out.hits.tolist() == [2]


def test_crossing_faces_keep_their_ids() -> None:
    """Two faces walk through each other (8 px apart vertically); each id must stay on its own face."""
    tracker = Tracker()
    first: dict[float, int] = {}
    for k in range(17):
        a, b = box_at(20 + 12 * k, 50), box_at(212 - 12 * k, 58)
        out = tracker.update(dets(*([a, b] if k % 2 else [b, a])), k / FPS)
        assert len(out) == 2
        by_y = {float(box[1]): int(tid) for box, tid in zip(out.xyxy, out.tracker_id)}
        first = first or by_y
        assert by_y == first, f"frame {k}: the faces swapped ids"


def test_low_score_detection_extends_but_never_starts_a_track() -> None:
    tracker = Tracker(hold_seconds=0.3, high=0.5, low=0.25)
    for k in range(5):
        assert len(tracker.update(dets(box_at(10, 10, 60), score=0.3), k / FPS)) == 0
    out = tracker.update(dets(box_at(100, 100, 60), score=0.9), 0.5)
    assert out.tracker_id.tolist() == [1]
    for k in range(6, 16):
        out = tracker.update(dets(box_at(100 + k, 100, 60), score=0.3), k / FPS)
        assert out.tracker_id.tolist() == [1]
        assert out.predicted.tolist() == [False], "a faint detection of a known face counts as seeing it"
    assert out.hits.tolist() == [11]
    assert len(tracker.update(dets(box_at(100, 100, 60), score=0.1), 1.6)) == 1
    assert len(tracker.update(dets(box_at(100, 100, 60), score=0.1), 2.0)) == 0, "below low: not a detection"


def test_small_faint_find_repeated_by_two_complete_passes_starts_a_track() -> None:
    """A small face half outside the frame or half behind a pole scores under the start threshold
    for seconds; the same faint find from two sweeps in a row is taken as a face."""
    tracker = Tracker(high=0.5, low=0.25)
    assert len(tracker.update(dets(box_at(0, 100, 16), score=0.3), 0.0)) == 0, "one faint find is not enough"
    out = tracker.update(dets(box_at(3, 101, 17), score=0.3), 0.2)
    assert out.tracker_id.tolist() == [1]
    assert out.hits.tolist() == [1], "a new track: the look-ahead backfills the frames before it"


@pytest.mark.parametrize(("second", "detected", "why"), [
    (box_at(40, 100, 16), True, "somewhere else"),
    (box_at(0, 100, 30), True, "a different size"),
    (box_at(0, 100, 16), False, "from a partial pass (whole-frame BlazeFace between sweeps)"),
])
def test_faint_finds_that_do_not_repeat_start_nothing(second: tuple, detected: bool, why: str) -> None:
    tracker = Tracker(high=0.5, low=0.25)
    tracker.update(dets(box_at(0, 100, 16), score=0.3), 0.0)
    assert len(tracker.update(dets(second, score=0.3), 0.2, detected=detected)) == 0, why


def walker_finds(tracker: Tracker, xs: list[float], times: list[float], size: float = 22.0) -> Detections:
    """Faint finds of a small face at sweeps; returns the tracker's output after the last."""
    out = Detections.empty()
    for x, t in zip(xs, times):
        out = tracker.update(dets(box_at(x, 250, size), score=0.31), t)
    return out


def test_a_faint_walker_seen_on_a_steady_line_starts_a_track_with_its_motion() -> None:
    """A distant walker in night-IR noise (walkers seed 4): 0.31-0.33 at three sweeps in 0.6 s, 1.5-3 face
    widths apart, none at the sweeps between; the third find starts a track moving at the walker's pace."""
    tracker = Tracker(high=0.5, low=0.25)
    assert len(walker_finds(tracker, [1230, 1110], [0.4, 1.0])) == 0, "two finds are not yet a line"
    for t in (1.2, 1.4):
        assert len(tracker.update(Detections.empty(), t)) == 0
    out = tracker.update(dets(box_at(1030, 250, 22), score=0.31), 1.4)
    assert out.tracker_id.tolist() == [1]
    assert out.hits.tolist() == [1]
    np.testing.assert_allclose(out.velocity[0], [-200, 0], atol=1)


def test_a_small_face_found_on_a_faint_walkers_line_starts_with_its_motion() -> None:
    """Walkers seed 16 IR: faint at two sweeps, then a confident find on the same line; its track starts
    moving, so the look-ahead paints it back at once instead of a sweep later, when the frames it walked
    in on have left."""
    tracker = Tracker(high=0.5, low=0.25)
    walker_finds(tracker, [1150, 1070], [0.8, 1.2])
    out = tracker.update(dets(box_at(1030, 250, 22), score=0.61), 1.4)
    assert out.tracker_id.tolist() == [1]
    np.testing.assert_allclose(out.velocity[0], [-200, 0], atol=1)
    big = Tracker(high=0.5, low=0.25)
    walker_finds(big, [1150, 1070], [0.8, 1.2], size=60)
    assert not big.update(dets(box_at(1030, 250, 60), score=0.61), 1.4).velocity.any(), \
        "a face both detectors see gets no motion from faint finds"


@pytest.mark.parametrize(("xs", "why"), [
    ([1230, 1150, 1030], "the middle find is off the steady line (the walker would have stopped and sprinted)"),
    ([1230, 1050, 930], "faster than a walker: 14 box widths a second"),
    ([1230, 1110, 1030, 950][:2] + [1230], "back where it was after half a second"),
])
def test_faint_finds_off_a_walkers_line_start_nothing(xs: list[float], why: str) -> None:
    tracker = Tracker(high=0.5, low=0.25)
    assert len(walker_finds(tracker, xs, [0.4, 1.0, 1.4])) == 0, why


def test_faint_walker_finds_too_long_ago_are_forgotten() -> None:
    tracker = Tracker(high=0.5, low=0.25)
    assert len(walker_finds(tracker, [1300, 1230, 1110], [0.0, 0.4, 1.5])) == 0, "the first find is 1.5 s old"


def test_large_faint_finds_start_nothing_however_often_they_repeat() -> None:
    """Above small_below both detectors look; a faint find that keeps coming back there is clutter."""
    tracker = Tracker(high=0.5, low=0.25)
    for k in range(10):
        assert len(tracker.update(dets(box_at(100, 100, 60), score=0.45), k * 0.2)) == 0


def test_a_new_track_reports_where_faint_finds_at_its_place_began() -> None:
    """A 60 px face scored faint at 0.0 s and 0.4 s (a pass between found nothing there) and confidently at
    0.6 s: its track says the trace began 0.6 s ago, at the first faint box; a faint find a face size away
    at 0.2 s is another thing. Later frames and a track with no trace report none."""
    tracker = Tracker(high=0.5, low=0.25)
    tracker.update(dets(box_at(100, 100, 60), score=0.3), 0.0)
    tracker.update(dets(box_at(400, 100, 60), score=0.3), 0.2)
    tracker.update(dets(box_at(110, 102, 60), score=0.3), 0.4)
    out = tracker.update(dets(box_at(120, 104, 60), box_at(700, 300, 60), score=0.9), 0.6)
    assert out.hits.tolist() == [1, 1]
    np.testing.assert_allclose(out.traced, [0.6, 0.0])
    np.testing.assert_allclose(out.traced_box, [box_at(100, 100, 60), box_at(700, 300, 60)])
    later = tracker.update(dets(box_at(122, 104, 60), box_at(700, 300, 60), score=0.9), 0.8)
    np.testing.assert_allclose(later.traced, [0.0, 0.0])


def test_a_small_faint_find_does_not_repeat_a_larger_one() -> None:
    """Only small faint finds count as repeats: a 46 px find where a 50 px one was scored faint is clutter
    a track would hold for 2 s (1.1% of a walkers scene's background)."""
    tracker = Tracker(high=0.5, low=0.25)
    tracker.update(dets(box_at(100, 100, 50), score=0.4), 0.0)
    assert len(tracker.update(dets(box_at(100, 104, 46), score=0.3), 0.2)) == 0


def test_new_face_far_from_a_track_starts_its_own() -> None:
    tracker = Tracker()
    tracker.update(dets(box_at(10, 10)), 0.0)
    out = tracker.update(dets(box_at(12, 10), box_at(200, 150)), 0.1)
    assert sorted(out.tracker_id.tolist()) == [1, 2]
    assert out.predicted.tolist() == [False, False]


def test_partial_passes_fold_in_what_they_find_and_end_nothing() -> None:
    tracker = Tracker(hold_seconds=1.0)
    tracker.update(dets(box_at(10, 10)), 0.0)
    for k in range(1, 10):
        out = tracker.update(dets(box_at(150, 150)), k / FPS, detected=False)
        assert out.tracker_id.tolist() == [1, 2], "a face found by a partial pass is tracked; the unseen one is kept"
        assert out.predicted.tolist() == [True, False]


def test_frames_without_detection_never_end_a_track() -> None:
    tracker = Tracker(hold_seconds=1.0)
    tracker.update(dets(box_at(10, 10, 60)), 0.0)
    for k in range(1, 20):
        assert len(tracker.update(Detections.empty(), k / FPS, detected=False)) == 1, f"track ended at frame {k}"
    assert len(tracker.update(Detections.empty(), 2.0, detected=True)) == 0


def test_a_track_past_its_hold_takes_no_find_and_stays_masked_until_a_complete_pass() -> None:
    """Frames dropped for 2 s (a live filter that froze): the track is predicted far off with a wide reach,
    and a find there may be another face. It starts a track of its own; the old one is still reported."""
    tracker = Tracker(hold_seconds=1.0)
    for k in range(5):
        tracker.update(dets(box_at(100 + 10 * k, 100, 60)), k / FPS)
    out = tracker.update(dets(box_at(150, 100, 60)), 2.4, detected=False)
    assert out.tracker_id.tolist() == [1, 2] and out.predicted.tolist() == [True, False]
    assert tracker.update(dets(box_at(150, 100, 60)), 2.5, detected=True).tracker_id.tolist() == [2]


def test_reset_and_instance_state() -> None:
    a, b = Tracker(), Tracker()
    a.update(dets(box_at(0, 0), box_at(100, 100)), 0.0)
    assert b.update(dets(box_at(0, 0)), 0.0).tracker_id.tolist() == [1], "ids are per tracker"
    a.reset()
    assert len(a.update(Detections.empty(), 0.1)) == 0
    assert a.update(dets(box_at(0, 0)), 0.2).tracker_id.tolist() == [1]


def test_inputs_are_not_modified() -> None:
    tracker = Tracker()
    found = dets(box_at(10, 10))
    before = found.xyxy.copy()
    out = tracker.update(found, 0.0)
    np.testing.assert_array_equal(found.xyxy, before)
    assert out.tracker_id.tolist() == [1]


@pytest.mark.parametrize("speed", [4.0, 8.0])
def test_fast_small_face_keeps_one_track_across_sparse_sweeps(speed: float) -> None:
    """A 30 px face walking `speed` px per frame at 25 fps, detected only every 5th frame (the default sweep).

    Once two sweeps have given it a velocity, the coasting mask covers the face between sweeps (before
    that, the look-ahead's interpolation covers it; see test_lookahead)."""
    tracker = Tracker(hold_seconds=1.0)
    ids, widest = set(), 0.0
    for k in range(60):
        x = 20 + speed * k
        sweep = k % 5 == 0
        out = tracker.update(dets(box_at(x, 100)) if sweep else Detections.empty(), k / 25, detected=sweep)
        ids.update(out.tracker_id.tolist())
        widest = max(widest, float(out.widths.max()))
        face = np.array(box_at(x, 100))
        covered = max(np.prod(np.clip(np.minimum(b[2:], face[2:]) - np.maximum(b[:2], face[:2]), 0, None)) for b in out.xyxy)
        if k >= 5:
            assert covered >= 0.9 * 30 * 30, f"frame {k}: only {covered / 900:.0%} of the face is under a mask"
    assert ids == {1}, "one face, one track"
    assert widest <= 3 * 30, "coasting masks stay face-sized, not frame-sized"


def test_a_coasting_track_takes_no_find_twice_the_size_it_was_last_seen() -> None:
    """Walkers seed 22: a 20 px face's track coasting 0.9 s, its predicted box grown to ~60 px, took a faint
    48 px find of clutter 140 px away, and its mask followed that clutter; a find of the face's size there
    is still taken (a fast face seen again)."""
    for size, taken in ((48, False), (24, True)):
        tracker = Tracker(hold_seconds=1.0)
        tracker.update(dets(box_at(300, 300, 19)), 0.0)
        tracker.update(dets(box_at(300, 296, 23)), 0.2)
        out = tracker.update(dets(box_at(330, 330, size), score=0.3), 1.1)
        assert (1 in out.tracker_id.tolist() and not out.predicted[out.tracker_id.tolist().index(1)]) is taken


@pytest.mark.parametrize(("faint_box", "after", "steers"), [
    ((311, 323, 383, 395), 0.12, False),
    ((311, 323, 383, 395), 0.6, True),
    ((358, 270, 405, 335), 0.12, True),
])
def test_a_faint_find_off_a_face_just_found_confidently_does_not_steer_it(
        faint_box: tuple, after: float, steers: bool) -> None:
    """Crowd seed 33: a 65 px face found at 0.84, then a faint box 55 px down-left of it was folded into its
    motion, and the track coasted off while the face started a new one. Within ANCHOR_SECONDS of a confident
    find only a faint find that overlaps the prediction steers it; later, or overlapping, one does."""
    tracker = Tracker()
    tracker.update(dets((355, 267, 402, 332), score=0.84), 0.0)
    out = tracker.update(dets(faint_box, score=0.26), after)
    assert out.faint.tolist() == [True]
    assert bool(np.hypot(*out.velocity[0]) > 1.0) == steers
