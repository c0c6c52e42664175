"""The look-ahead buffer: frames held back get a new track's box painted over them, gaps get interpolated boxes."""

from __future__ import annotations

import numpy as np
import pytest

from redactor_video.track.lookahead import LookAhead
from redactor_video.types import Detections, Frame, MaskPlan, Tracks

FPS = 10.0
IMAGE = np.zeros((720, 1280, 3), np.uint8)  # sizes in the look-ahead are shares of the long side


def frame(index: int) -> Frame:
    return Frame(index, IMAGE)


def tracked(*tracks: tuple[int, tuple[float, ...], bool, int]) -> Tracks:
    """Tracker output: (id, box, coasting, hits) per track."""
    if not tracks:
        return Tracks.empty()
    ids, boxes, coasting, hits = zip(*tracks)
    return Tracks(np.array(boxes, np.float32), np.array(ids), np.array(coasting), np.array(hits))


def contains(outer: np.ndarray, inner: np.ndarray) -> bool:
    return bool(np.all(outer[:2] <= inner[:2]) and np.all(outer[2:] >= inner[2:]))


def most_covered(face: np.ndarray, boxes: tuple[np.ndarray, ...]) -> float:
    """The largest share of `face` that one of `boxes` covers."""
    area = float(np.prod(face[2:] - face[:2]))
    return max(float(np.prod(np.clip(np.minimum(b[2:], face[2:]) - np.maximum(b[:2], face[:2]), 0, None)))
               for b in boxes) / area


def test_negative_size_refused() -> None:
    with pytest.raises(ValueError):
        LookAhead(-1, FPS)


def test_frames_leave_in_order_after_n_frames() -> None:
    buffer = LookAhead(3, FPS)
    released = []
    for i in range(6):
        out = buffer.push(frame(i), tracked())
        assert len(out) == (0 if i < 3 else 1)
        released += out
    released += buffer.flush()
    assert [s.frame.index for s in released] == list(range(6))
    assert buffer.flush() == []


def test_held_frames_wait_packed_and_leave_as_the_same_picture() -> None:
    """Every frame but the newest waits as 4:2:0 (half the bytes); a lone frame, e.g. a still image that
    goes out lossless, is never packed."""
    rng = np.random.default_rng(0)
    smooth = [np.repeat(np.repeat(rng.integers(0, 256, (4, 4, 3), np.uint8), 4, 0), 4, 1) for _ in range(4)]
    buffer = LookAhead(5, FPS)
    for i, image in enumerate(smooth):
        buffer.push(Frame(i, image, pts=i), tracked())
    assert buffer.held_bytes == 3 * (16 * 16 * 3 // 2) + 16 * 16 * 3, "three packed frames and the newest as RGB"
    out = buffer.flush()
    assert [(s.frame.index, s.frame.pts) for s in out] == [(i, i) for i in range(4)]
    for slot, image in zip(out, smooth):
        assert np.abs(slot.frame.image.astype(int) - image).mean() < 2.0
    lone = LookAhead(5, FPS)
    lone.push(Frame(0, smooth[0]), tracked())
    assert np.array_equal(lone.flush()[0].frame.image, smooth[0])


@pytest.mark.parametrize(("size", "held"), [((720, 1280), 50), ((1080, 1920), 32), ((2160, 3840), 25)])
def test_a_memory_budget_shortens_the_lookahead_to_no_less_than_its_floor(size: tuple[int, int], held: int) -> None:
    """The default: 2 s at 25 fps, at most 96 MiB of packed frames, at least 1 s."""
    buffer = LookAhead(50, 25.0, max_bytes=96 * 2**20, min_frames=25)
    image = np.zeros((*size, 3), np.uint8)
    out = [len(buffer.push(Frame(i, image), tracked())) for i in range(60)]
    assert out == [0] * held + [1] * (60 - held)


def test_zero_lookahead_releases_every_frame_at_once() -> None:
    buffer = LookAhead(0, FPS)
    box = (10.0, 10.0, 30.0, 30.0)
    out = buffer.push(frame(0), tracked((1, box, False, 1)))
    assert [s.frame.index for s in out] == [0]
    assert out[0].owners == (1,)
    np.testing.assert_allclose(out[0].boxes[0], box)


def test_new_track_is_painted_back_over_the_held_frames() -> None:
    buffer = LookAhead(4, FPS)
    released: list[MaskPlan] = []
    for i in range(6):
        released += buffer.push(frame(i), tracked())
    box = np.array([40.0, 20.0, 60.0, 50.0], np.float32)
    released += buffer.push(frame(6), tracked((7, tuple(box), False, 1)))
    released += buffer.flush()
    by_index = {s.frame.index: s for s in released}
    assert by_index[0].boxes == () and by_index[1].boxes == (), "frames already gone cannot be backfilled"
    margins = []
    for i in range(2, 6):
        slot = by_index[i]
        assert slot.owners == (7,) and slot.tracks == [7], f"frame {i} is held: it must carry track 7"
        assert contains(slot.boxes[0], box)
        margins.append(float(box[0] - slot.boxes[0][0]))
    assert margins == sorted(margins, reverse=True) and margins[-1] > 0, "older frames get wider margins"
    assert margins[0] <= 30.0, "the margin is capped at one face size"
    np.testing.assert_allclose(by_index[6].boxes[0], box)


def test_a_new_track_is_masked_from_where_its_faint_trace_began() -> None:
    """Found at frame 8, traced back through faint finds to frame 2 at another box: frame 2 gets that box,
    frames 3-7 the boxes between, frames before 2 the usual margin-grown backfill (0.5 s = 5 frames)."""
    buffer = LookAhead(10, FPS)
    for i in range(8):
        buffer.push(frame(i), tracked())
    first, found = np.array([10, 10, 40, 40], np.float32), np.array([40, 10, 70, 40], np.float32)
    now = Tracks(found[None], [7], traced=[0.6], traced_box=first[None])
    buffer.push(frame(8), now)
    slots = {s.index: s for s in buffer.flush()}
    for i in range(2, 8):
        expected = first + (found - first) * (i - 2) / 6
        assert any(np.allclose(b, expected) for b in slots[i].boxes), i
    assert all(contains(b, first) for b in slots[0].boxes + slots[1].boxes) and slots[0].boxes


def test_gap_between_two_detections_is_interpolated() -> None:
    buffer = LookAhead(5, FPS)
    first, last = np.array([10.0, 10.0, 30.0, 30.0]), np.array([50.0, 30.0, 70.0, 50.0])
    guess = (0.0, 0.0, 90.0, 90.0)
    released: list[MaskPlan] = []
    released += buffer.push(frame(0), tracked((3, tuple(first), False, 1)))
    for i in (1, 2, 3):
        released += buffer.push(frame(i), tracked((3, guess, True, 1)))
    released += buffer.push(frame(4), tracked((3, tuple(last), False, 2)))
    released += buffer.flush()
    for slot in released[1:4]:
        a = slot.frame.index / 4
        line = first * (1 - a) + last * a
        assert slot.owners == (3,), "the line between the two finds stands for the forward guess"
        assert contains(slot.boxes[0], line) and not contains(slot.boxes[0], guess)
        assert np.all(np.abs(slot.boxes[0] - line) <= 0.2 * 20), "grown by a fraction of a face, not a guess's reach"
    assert len(released[0].boxes) == 1 and len(released[4].boxes) == 1


def test_faint_finds_between_two_confident_ones_keep_the_line_between_those() -> None:
    """Faint BlazeFace boxes can sit a third of a face off it (a 63 px walker was left clear 2 frames
    that way): frames between two confident finds get the line between those as well as any faint box."""
    buffer = LookAhead(8, FPS)
    first, last = np.array([100.0, 50.0, 160.0, 110.0]), np.array([60.0, 50.0, 120.0, 110.0])
    off = (110.0, 20.0, 170.0, 80.0)
    pushes = [(first, False, False), (off, False, True), ((0.0, 0.0, 1.0, 1.0), True, False), (off, False, True),
              (off, False, True), (last, False, False)]
    for i, (box, coasting, faint) in enumerate(pushes):
        buffer.push(frame(i), Tracks(np.array([box], np.float32), [5], [coasting], [i + 1], faint=[faint]))
    for slot in buffer.flush()[1:5]:
        line = first + (last - first) * slot.index / 5
        assert any(contains(box, line) for box in slot.boxes), f"frame {slot.index}: no box on the line"


def test_owners_follow_each_box() -> None:
    buffer = LookAhead(2, FPS)
    buffer.push(frame(0), tracked((1, (0.0, 0.0, 10.0, 10.0), False, 1)))
    buffer.push(frame(1), tracked((1, (1.0, 0.0, 11.0, 10.0), False, 2), (2, (50.0, 50.0, 60.0, 60.0), False, 1)))
    slots = buffer.flush()
    assert slots[0].owners == (1, 2), "track 2 was backfilled onto frame 0"
    assert slots[1].owners == (1, 2)
    assert len(slots[0].boxes) == len(slots[0].owners)
    assert slots[0].tracks == [1, 2]


def test_a_coasting_track_is_neither_backfilled_nor_interpolated() -> None:
    buffer = LookAhead(3, FPS)
    buffer.push(frame(0), tracked())
    buffer.push(frame(1), tracked((4, (5.0, 5.0, 15.0, 15.0), True, 1)))
    slots = buffer.flush()
    assert slots[0].boxes == ()
    assert slots[1].owners == (4,)


def test_failure_reason_is_kept() -> None:
    buffer = LookAhead(1, FPS)
    buffer.push(frame(0), tracked(), failure="detector failed (RuntimeError)")
    assert buffer.flush()[0].failure == "detector failed (RuntimeError)"


def test_a_face_turning_back_is_covered_in_frames_released_before_the_next_detection() -> None:
    """The real tracker and buffer: a 30 px face walking 4 px per frame at 25 fps, detected every 5th frame,
    turns back right after a sweep. Constant velocity puts its predicted box ever further ahead; frames a
    live stream's latency budget releases before the next detection must still have the face under a mask."""
    from redactor_video.track.tracker import Tracker

    fps, tracker, buffer = 25.0, Tracker(hold_seconds=1.0), LookAhead(12, 25.0)
    faces, released = {}, []
    x = 20.0
    for k in range(19):
        x += 4.0 if k <= 10 else -4.0
        faces[k] = np.array([x, 100.0, x + 30.0, 130.0])
        sweep = k % 5 == 0
        found = Detections(faces[k][None].astype(np.float32), [0.9]) if sweep else Detections.empty()
        released += buffer.push(frame(k), tracker.update(found, k / fps, detected=sweep))
        released += buffer.release(lambda index: index <= k - 2)  # two frames held: no next sweep in time
    released += buffer.flush()
    assert [s.frame.index for s in released] == list(range(19))
    for slot in released:
        covered = most_covered(faces[slot.frame.index], slot.boxes)
        assert covered >= 0.9, f"frame {slot.frame.index}: only {covered:.0%} of the face is masked"



def test_a_jump_to_another_face_keeps_the_guesses_of_the_frames_between() -> None:
    """A tracker that swapped two faces at a detection reports a 36 px face's track at a 75 px face next to
    it; the line between the two covers neither, so a frame leaving early keeps its guess box as well."""
    look = LookAhead(frames=10, fps=25)
    small = (360, 71, 396, 112)
    look.push(frame(0), tracked((7, small, False, 2)))
    look.push(frame(1), tracked((7, (372, 73, 415, 117), True, 2)))
    look.push(frame(2), tracked((7, (397, 97, 472, 191), False, 3)))
    held = look.release(lambda index: index <= 1)[1]
    assert any((b[:2] <= small[:2]).all() and (b[2:] >= small[2:]).all() for b in held.boxes)


def test_a_plausible_next_detection_replaces_the_guess() -> None:
    """The same face found again close by: the interpolated box stands for the guess (no extra box)."""
    look = LookAhead(frames=10, fps=25)
    look.push(frame(0), tracked((7, (100, 100, 140, 140), False, 2)))
    look.push(frame(1), tracked((7, (130, 130, 170, 170), True, 2)))
    look.push(frame(2), tracked((7, (104, 104, 144, 144), False, 3)))
    held = look.release(lambda index: index <= 1)[1]
    line = np.array([102, 102, 142, 142], np.float32)
    assert len(held.boxes) == 1 and contains(held.boxes[0], line)


def walk(buffer: LookAhead, size: float, first_found: int, second_found: int, frames: int,
         step: float = -8.0, faint_second: bool = False, faint_first: bool = False
         ) -> tuple[dict[int, MaskPlan], dict[int, np.ndarray]]:
    """A face `size` px wide walking `step` px per frame from x = 1200; detected only at the two given frames
    (first hit, second hit, either of which may be faint), coasting in between and after."""
    faces = {k: np.array([1200 + step * k, 300.0, 1200 + step * k + size, 300.0 + size], np.float32)
             for k in range(frames)}
    released: list[MaskPlan] = []
    for k in range(frames):
        if k < first_found:
            seen = tracked()
        elif k in (first_found, second_found):
            seen = Tracks(faces[k][None], [5], hits=[1 if k == first_found else 2],
                          faint=[faint_first if k == first_found else faint_second])
        else:
            seen = tracked((5, tuple(faces[k] + np.array([-4, -4, 4, 4])), True, 1))
        released += buffer.push(frame(k), seen)
    released += buffer.flush()
    return {s.frame.index: s for s in released}, faces


@pytest.mark.parametrize("faint_second", [False, True])
def test_a_small_face_found_late_is_painted_back_along_its_motion(faint_second: bool) -> None:
    """A 26 px face walking 8 px a frame (a walker, ~8 face widths a second) is first found 15 frames after
    it came into view: once its second detection gives the motion, every held frame before the first gets
    a box on the face, where the isotropic margin (one face width a second) reaches only the last frames.
    A faint second detection gives it too (waiting for a confident one left walkers seed 8 IR's 26 px face
    clear 4 frames: over 0.4 s the move looked too far for one face)."""
    slots, faces = walk(LookAhead(25, 25.0), 26.0, first_found=15, second_found=20, frames=30,
                        faint_second=faint_second)
    for k in range(15):
        assert any(contains(b, faces[k]) for b in slots[k].boxes), f"frame {k}: the face is not under a box"
    for k in range(3):  # over 0.5 s before the first detection: only the box moved back along the motion
        (box,) = slots[k].boxes
        back = (15 - k) / 25.0
        assert box[2] - box[0] <= 26.0 * (1 + back) + 0.01, f"frame {k}: margin over half a face width a second"


def test_a_track_that_starts_with_its_motion_is_painted_back_along_it_at_once() -> None:
    """The tracker starts a faint walker's track with the motion its earlier faint finds gave: every held
    frame gets the box moved back along it on that frame, before any second detection."""
    buffer = LookAhead(25, 25.0)
    released: list[MaskPlan] = []
    for k in range(25):
        released += buffer.push(frame(k), tracked())
    start = Tracks(np.array([[1030, 250, 1052, 272]], np.float32), [1], velocity=[[-200.0, 0.0]])
    released += buffer.push(frame(25), start)
    (first,) = released
    assert first.frame.index == 0
    (box,) = first.boxes
    assert box[0] <= 1030 + 200 <= box[2] - 22, "frame 0: the face walked 1 s (200 px) to where it was found"
    assert box[2] - box[0] <= 22 * 2 + 0.01, "margin half a face width a second each way"


@pytest.mark.parametrize("confirmed", [False, True])
def test_a_track_started_by_faint_finds_is_painted_back_along_its_motion_over_every_held_frame(
        confirmed: bool) -> None:
    """A 22 px face walking 200 px/s, its track started on frame 60 from a line of faint finds reaching back to
    frame 50: it is masked on every held frame where it was, whether or not a confident find follows (on
    frame 70)."""
    buffer, released = LookAhead(75, 25.0), []
    faces = {k: np.array([1030 + 8 * (60 - k), 250, 1052 + 8 * (60 - k), 272], np.float32) for k in range(71)}

    def seen(k: int, coasting: bool, hits: int, faint: bool) -> Tracks:
        return Tracks(faces[k][None], [1], [coasting], [hits], [[-200.0, 0.0]], [0.4 if hits == 1 else 0.0],
                      faces[50][None] if hits == 1 else faces[k][None], [faint])

    for k in range(60):
        released += buffer.push(frame(k), tracked())
    released += buffer.push(frame(60), seen(60, False, 1, True))
    for k in range(61, 71):
        released += buffer.push(frame(k), seen(k, k < 70, 2, not (confirmed and k == 70)))
    slots = {s.frame.index: s for s in released + buffer.flush()}
    for k in range(71):
        assert any(contains(b, faces[k]) for b in slots[k].boxes), f"frame {k}: the face is clear"


@pytest.mark.parametrize("faint_second", [False, True])
def test_a_repeated_faint_find_is_painted_back_along_its_motion(faint_second: bool) -> None:
    """The same 26 px walker, its track started by a faint find that the pass before had found too: its
    motion is painted back over every held frame before its first find, whether its second find is faint
    or not."""
    slots, faces = walk(LookAhead(25, 25.0), 26.0, first_found=15, second_found=20, frames=30,
                        faint_first=True, faint_second=faint_second)
    for k in range(15):
        assert any(contains(b, faces[k]) for b in slots[k].boxes), f"frame {k}"


def test_paint_back_waits_for_a_second_detection_far_enough_apart() -> None:
    """One frame apart, a box's jitter would be read as motion: nothing is painted back from that pair."""
    slots, faces = walk(LookAhead(25, 25.0), 26.0, first_found=15, second_found=16, frames=18)
    assert all(slots[k].boxes == () for k in range(0, 2)), "frames over 0.5 s before the first detection"
    assert not any(contains(b, faces[3]) for b in slots[3].boxes)


def test_large_faces_are_painted_back_briefly_and_not_along_their_motion() -> None:
    """A 120 px face is seen by the every-frame detector as soon as it shows: its first box goes back 0.2 s
    (5 frames at 25 fps), not 0.5 s, and no motion is painted back."""
    slots, _ = walk(LookAhead(25, 25.0), 120.0, first_found=15, second_found=20, frames=30)
    assert all(slots[k].boxes == () for k in range(10)), "painted back more than 0.2 s"
    assert all(slots[k].owners == (5,) for k in range(10, 15))


def test_between_two_finds_a_walking_face_is_masked_along_the_line_not_the_guess() -> None:
    """The real tracker and buffer: a 40 px face walking 3 face widths a second and swaying (a quarter face
    width side to side, a tenth up and down), found every 6th frame at 25 fps. Every frame has a box over
    nine tenths of the face; and once both finds around a frame are known, the forward guess (a new track's
    guess grows to three face widths) gives way to the line between them, so the mask stays face-sized."""
    from redactor_video.track.tracker import Tracker

    fps, tracker, buffer = 25.0, Tracker(hold_seconds=1.0), LookAhead(50, 25.0)
    faces, released = {}, []
    for k in range(100):
        t = k / fps
        x, y = 200 + 120 * t + 10 * np.sin(2 * np.pi * t), 300 + 4 * np.sin(4 * np.pi * t)
        faces[k] = np.array([x, y, x + 40, y + 40], np.float32)
        found = Detections(faces[k][None], [0.9]) if k % 6 == 0 else Detections.empty()
        released += buffer.push(frame(k), tracker.update(found, t, detected=k % 6 == 0))
    released += buffer.flush()
    assert [s.frame.index for s in released] == list(range(100))
    for slot in released:
        covered = most_covered(faces[slot.frame.index], slot.boxes)
        assert covered >= 0.9, f"frame {slot.frame.index}: only {covered:.0%} of the face is masked"
        lo, hi = np.min([b[:2] for b in slot.boxes], 0), np.max([b[2:] for b in slot.boxes], 0)
        assert max(hi - lo) <= 1.3 * 40, f"frame {slot.frame.index}: masks {max(hi - lo):.0f} px across"
