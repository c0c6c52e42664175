"""End to end on real faces and real codecs: every face blurred in every frame, everything else kept.

The clips come from benchmarks.synth, which pastes real public-domain portraits
into moving video and knows every face box exactly; protection is judged by
benchmarks.score's rule (the face's fine detail must be gone), never by a detector.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.score import compare_face, score
from benchmarks.synth import ClipSpec, FaceSpec, GroundTruth, make_clip, render_frames, tiny_test_clip
from redactor_video.detect import Detector
from redactor_video.detect.schedule import Schedule
from redactor_video.errors import ProcessingError
from redactor_video.files.jobs import redact_file
from redactor_video.media.sink import EncodeSettings, VideoSink
from redactor_video.pipeline import Pipeline, RunStats
from redactor_video.stream.config import CameraConfig
from redactor_video.stream.live import LiveSettings
from redactor_video.stream.service import build_pipeline
from redactor_video.track.policy import POLICY
from redactor_video.types import Detections, Frame
from tests.helpers import clear_faces, detail_left, encode_video, grey, portrait, read_video
from tests.stream_helpers import make_stamped_clip, scene_spec

pytestmark = pytest.mark.integration


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def rendered() -> tuple[list[np.ndarray], list[list]]:
    """The tiny clip's raw frames and per-frame ground truth, for inputs the test encodes itself."""
    frames, boxes = zip(*render_frames(tiny_test_clip()))
    return list(frames), list(boxes)


@pytest.fixture(scope="module")
def redacted_tiny(tmp_path_factory: pytest.TempPathFactory, tiny_clip: tuple[Path, GroundTruth],
                  pipeline: Pipeline) -> tuple[Path, RunStats, Path]:
    folder = tmp_path_factory.mktemp("redacted")
    out, report = folder / "tiny.mp4", folder / "tiny.json"
    stats = redact_file(tiny_clip[0], out, pipeline, EncodeSettings(), report=report)
    return out, stats, report


def test_every_face_is_blurred_in_every_frame(tiny_clip: tuple[Path, GroundTruth],
                                              redacted_tiny: tuple[Path, RunStats, Path]) -> None:
    result = score(tiny_clip[0], redacted_tiny[0], tiny_clip[1], min_visible=0.25)
    assert result.error is None
    assert result.face_frames >= 60
    assert result.clear_faces == (), f"faces left clear (frame, track): {result.clear_faces}"
    assert result.tracks_ever_clear == 0


def test_background_is_unchanged(tiny_clip: tuple[Path, GroundTruth], redacted_tiny: tuple[Path, RunStats, Path]) -> None:
    result = score(tiny_clip[0], redacted_tiny[0], tiny_clip[1])
    assert result.background_changed is not None and result.background_changed < 0.02


def test_frames_timestamps_and_audio_survive(tiny_clip: tuple[Path, GroundTruth],
                                             redacted_tiny: tuple[Path, RunStats, Path]) -> None:
    original, written = read_video(tiny_clip[0]), read_video(redacted_tiny[0])
    assert len(written.frames) == len(original.frames) == 24
    assert written.seconds == pytest.approx(original.seconds, abs=1e-6)
    assert written.streams == original.streams == ("video", "audio")
    assert written.audio_packets == original.audio_packets > 0
    assert redacted_tiny[1].frames == 24 and redacted_tiny[1].whole_frame == 0


def test_report_holds_boxes_not_pixels(redacted_tiny: tuple[Path, RunStats, Path]) -> None:
    report = json.loads(redacted_tiny[2].read_text())
    assert [f["index"] for f in report["frames"]] == list(range(24))
    assert set(report["frames"][0]) == {"index", "pts", "tracks", "boxes", "whole_frame", "reason"}
    assert all(len(f["boxes"]) >= 2 for f in report["frames"]), "two faces are on screen throughout"
    assert report["summary"]["frames"] == 24 and report["summary"]["tracks"] >= 3
    assert report["summary"]["lookahead_frames"] == 36, "the default 3 s at 12 fps: a small clip fits in 96 MiB"
    assert report["settings"]["mode"] == "blur"
    assert report["tracking_policy"] == POLICY.describe(), "the report says which tracking policy masked the video"


def test_drop_audio(tmp_path: Path, tiny_clip: tuple[Path, GroundTruth], pipeline: Pipeline) -> None:
    out = tmp_path / "silent.mp4"
    redact_file(tiny_clip[0], out, pipeline, EncodeSettings(keep_audio=False))
    written = read_video(out)
    assert written.streams == ("video",)
    assert len(written.frames) == 24


def test_mkv_output(tmp_path: Path, tiny_clip: tuple[Path, GroundTruth], pipeline: Pipeline) -> None:
    out = tmp_path / "tiny.mkv"
    redact_file(tiny_clip[0], out, pipeline, EncodeSettings())
    original, written = read_video(tiny_clip[0]), read_video(out)
    # Matroska counts milliseconds and cannot store the AAC priming packet's negative time, so the muxer
    # shifts every stream by it (under one 1024-sample audio frame); the frame spacing must be kept exactly.
    shift = written.seconds[0] - original.seconds[0]
    assert 0 <= shift < 1024 / 48000
    assert np.diff(written.seconds) == pytest.approx(np.diff(original.seconds), abs=1e-3)
    assert written.audio_packets == original.audio_packets
    assert score(tiny_clip[0], out, tiny_clip[1]).clear_faces == ()


def test_variable_frame_rate_input(tmp_path: Path, rendered: tuple[list, list], pipeline: Pipeline) -> None:
    frames, boxes = rendered
    steps = [40, 120, 50, 90, 33, 200, 60, 80]
    pts = np.cumsum([0] + [steps[i % len(steps)] for i in range(len(frames) - 1)]).tolist()
    src, out = tmp_path / "vfr.mp4", tmp_path / "vfr.out.mp4"
    encode_video(src, frames, pts=pts, time_base=Fraction(1, 1000), audio=True)
    original = read_video(src)
    assert original.seconds == pytest.approx([p / 1000 for p in pts], abs=1e-6), "the input really is VFR"
    redact_file(src, out, pipeline, EncodeSettings())
    written = read_video(out)
    assert written.seconds == pytest.approx(original.seconds, abs=1e-6)
    assert written.audio_packets == original.audio_packets
    assert clear_faces(original.frames, written.frames, boxes) == []


@pytest.mark.parametrize("rotation", [90, 270])
def test_rotated_input_comes_out_upright(tmp_path: Path, rendered: tuple[list, list], pipeline: Pipeline,
                                         rotation: int) -> None:
    frames, boxes = rendered
    src, out = tmp_path / "phone.mp4", tmp_path / "phone.out.mp4"
    encode_video(src, [np.rot90(f, -rotation // 90) for f in frames], rotation=rotation)
    assert read_video(src).frames[0].shape == (320, 240, 3), "stored sideways, displayed upright"
    redact_file(src, out, pipeline, EncodeSettings())
    written = read_video(out)
    assert written.rotation == 0
    assert written.frames[0].shape == (240, 320, 3)
    assert len(written.frames) == len(frames)
    assert clear_faces(frames, written.frames, boxes) == []


@pytest.mark.parametrize(("source", "target"), [(".jpg", ".png"), (".png", ".jpg"), (".png", ".png")])
def test_still_images(tmp_path: Path, pipeline: Pipeline, source: str, target: str) -> None:
    image, face = portrait("biden", 240)
    src, out = tmp_path / f"portrait{source}", tmp_path / f"redacted{target}"
    cv2.imwrite(str(src), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    original = cv2.cvtColor(cv2.imread(str(src)), cv2.COLOR_BGR2RGB)
    stats = redact_file(src, out, pipeline, EncodeSettings())
    assert stats.frames == 1 and stats.tracks >= 1
    written = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert written.shape == original.shape
    assert compare_face(grey(original), grey(written), face, face[2] - face[0]).protected
    far = np.ones(original.shape[:2], bool)
    x1, y1, x2, y2 = face
    w = x2 - x1
    far[max(0, int(y1 - w)):int(y2 + w), max(0, int(x1 - w)):int(x2 + w)] = False
    assert np.abs(written[far].astype(int) - original[far].astype(int)).mean() < 3
    assert leftovers(tmp_path) == sorted([src.name, out.name])


def test_odd_frame_size(tmp_path: Path, pipeline: Pipeline) -> None:
    spec = ClipSpec(162, 122, 12, 12, (FaceSpec("obama", 50, 54, ((55, 60), (100, 58)), 0, 12),))
    frames, boxes = zip(*render_frames(spec))
    frames = [np.ascontiguousarray(f[:121, :161]) for f in frames]
    src, out = tmp_path / "odd.mp4", tmp_path / "odd.out.mp4"
    encode_video(src, frames)
    redact_file(src, out, pipeline, EncodeSettings())
    original, written = read_video(src), read_video(out)
    assert written.frames[0].shape == (121, 161, 3)
    assert len(written.frames) == 12
    assert clear_faces(original.frames, written.frames, list(boxes)) == []


class FailsOnFrame(Detector):
    """A detector fault on one frame: the double of a failure, delegating real detection otherwise."""

    name = "fails-on-one-frame"

    def __init__(self, real: Detector, fail_on: int) -> None:
        self.real, self.calls, self.fail_on = real, 0, fail_on

    def detect(self, image: np.ndarray) -> Detections:
        n, self.calls = self.calls, self.calls + 1
        if n == self.fail_on:
            raise RuntimeError("simulated detector fault")
        return self.real.detect(image)


def test_detector_failure_blurs_the_frame_and_those_held_before_it(
        tmp_path: Path, tiny_clip: tuple[Path, GroundTruth], pipeline: Pipeline) -> None:
    """The failing frame is masked whole, and so are the frames still in the look-ahead (1 s = 12 frames at
    12 fps): a face that entered just before the fault would never get its box painted back onto them."""
    flaky = copy.copy(pipeline)
    flaky.settings = dataclasses.replace(pipeline.settings, lookahead_seconds=1.0)
    flaky.schedule = Schedule(FailsOnFrame(pipeline.schedule.every_frame, 18), pipeline.schedule.sweep)
    out, report = tmp_path / "flaky.mp4", tmp_path / "flaky.json"
    stats = redact_file(tiny_clip[0], out, flaky, EncodeSettings(), report=report)
    assert (stats.frames, stats.detector_failures, stats.whole_frame) == (24, 1, 13)
    frames = json.loads(report.read_text())["frames"]
    assert [f["whole_frame"] for f in frames] == [6 <= i <= 18 for i in range(24)]
    assert all("detector failed" in f["reason"] for f in frames[6:19])
    original, written = read_video(tiny_clip[0]), read_video(out)
    for i in range(6, 19):
        assert detail_left(grey(original.frames[i]), grey(written.frames[i])) < 0.1, f"frame {i} not blurred whole"
    assert score(tiny_clip[0], out, tiny_clip[1]).clear_faces == ()


def test_sink_failure_mid_run_leaves_no_output(tmp_path: Path, tiny_clip: tuple[Path, GroundTruth],
                                               pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = VideoSink.write
    written: list[int] = []

    def failing_write(self: VideoSink, frame: object, image: np.ndarray) -> None:
        if len(written) == 10:
            raise OSError(28, "No space left on device")
        written.append(1)
        real_write(self, frame, image)

    monkeypatch.setattr(VideoSink, "write", failing_write)
    out = tmp_path / "out" / "tiny.mp4"
    out.parent.mkdir()
    with pytest.raises(ProcessingError, match="No space left"):
        redact_file(tiny_clip[0], out, pipeline, EncodeSettings(), report=tmp_path / "out" / "tiny.json")
    assert len(written) == 10
    assert leftovers(out.parent) == []


class FindsNothing(Detector):
    """The whole-frame pass missing faces too small for it, so that only the periodic sweep finds them."""

    name = "finds-nothing"

    def detect(self, image: np.ndarray) -> Detections:
        return Detections.empty(self.name)


def test_faces_only_the_sweep_finds_stay_masked_between_sweeps(tmp_path: Path, tiny_clip: tuple[Path, GroundTruth],
                                                               pipeline: Pipeline) -> None:
    sparse = copy.copy(pipeline)
    sparse.schedule = Schedule(FindsNothing(), pipeline.schedule.sweep)
    sparse.settings = dataclasses.replace(pipeline.settings, sweep_rate=tiny_clip[1].fps / 23)  # every 23rd frame
    out = tmp_path / "sparse.mp4"
    redact_file(tiny_clip[0], out, sparse, EncodeSettings())
    assert score(tiny_clip[0], out, tiny_clip[1]).clear_faces == ()


def edge_entry_clip(seed: int) -> ClipSpec:
    """640x360, 25 fps, 2 s: four dimmed real faces 26-31 px, each starting half outside one edge of
    the frame and walking in slowly. Cut by the edge, small faces score under the start threshold for
    many frames (one such face stayed clear for 7 frames on the 30 s benchmark clip)."""
    faces = (
        FaceSpec("obama3", 30, 31, ((-2, 120), (20, 124)), 0, 50, (2, 0), 0.75),
        FaceSpec("biden", 28, 29, ((642, 220), (620, 216)), 0, 50, (-3, 0), 0.75),
        FaceSpec("obama2", 26, 27, ((330, -1), (333, 20)), 0, 50, 0, 0.75),
        FaceSpec("obama", 26, 27, ((200, 361), (203, 340)), 0, 50, 0, 0.75),
    )
    return ClipSpec(640, 360, 25, 50, faces, seed=seed)


@pytest.mark.parametrize("seed", [1, 2])
def test_small_faces_half_outside_the_frame_are_not_left_clear(tmp_path: Path, pipeline: Pipeline, seed: int) -> None:
    """No track clear for more than one frame in a row once half its face is in the picture (before the
    repeated-faint-find rule: runs of 6 and 11 frames on these two seeds)."""
    src, out = tmp_path / "edges.mp4", tmp_path / "edges.out.mp4"
    gt = make_clip(edge_entry_clip(seed), src)
    redact_file(src, out, pipeline, EncodeSettings())
    result = score(src, out, gt)
    assert result.error is None and result.face_frames >= 150
    assert max(t.longest_clear_run for t in result.tracks) <= 1, f"clear (frame, track): {result.clear_faces}"


def test_face_like_clutter_just_over_the_threshold_is_left_alone(tmp_path: Path, pipeline: Pipeline) -> None:
    """Seed 0 of the edge scene pans over a coffee cup that whole-frame BlazeFace scores 0.50-0.59: started
    as a track, its mask changed 21% of the background; the faces stay protected either way. (What is left,
    1.1%, is mostly three faint finds of 15 px clutter that the pan moves along a line, a walker's line to
    the tracker, painted back over the 2 s look-ahead: 0.7% with a 1 s one.)"""
    src, out = tmp_path / "cup.mp4", tmp_path / "cup.out.mp4"
    gt = make_clip(edge_entry_clip(0), src)
    redact_file(src, out, pipeline, EncodeSettings())
    result = score(src, out, gt)
    assert result.error is None
    assert result.background_changed < 0.015
    assert max(t.longest_clear_run for t in result.tracks) <= 1, f"clear (frame, track): {result.clear_faces}"


def small_frame_clip(background: str) -> ClipSpec:
    """848x480, 12 fps, 2 s: six real faces 20-22 px wide walking slowly across a busy background, as a
    480p camera shows people some way off."""
    names = ("obama", "biden", "astronaut", "obama2", "obama3", "biden")
    faces = tuple(FaceSpec(name, 20, 22, ((100 + 130 * i, 150 + 40 * (i % 3)), (120 + 130 * i, 160 + 40 * (i % 3))),
                           0, 24) for i, name in enumerate(names))
    return ClipSpec(848, 480, 12, 24, faces, seed=3, background=background)


@pytest.mark.parametrize("background", ["mosaic", "chelsea"])
def test_small_faces_in_a_small_picture_are_masked(tmp_path: Path, pipeline: Pipeline, background: str) -> None:
    """Faces 20-22 px wide in a 480p picture are masked in at least nine frames in ten. Swept at its own
    size, CenterFace found such faces in 15 of 72 frames on the busy background and 30 of the 144 face-frames
    were left clear, one face for 2 s. The clip encodes to slightly different pixels from run to run
    (RESULTS.md), which moved the faces masked by up to 6 of 144; nine in ten leaves room for that."""
    src, out = tmp_path / "small.mp4", tmp_path / "small.out.mp4"
    gt = make_clip(small_frame_clip(background), src)
    redact_file(src, out, pipeline, EncodeSettings())
    result = score(src, out, gt)
    assert result.error is None and result.face_frames == 144
    assert result.protected >= 0.9 * result.face_frames, f"clear (frame, track): {result.clear_faces}"


def test_faces_stay_masked_after_a_live_stream_skips_two_seconds(tmp_path: Path) -> None:
    """A live filter that stops for a while (a peer that takes the connection and never answers freezes the
    process through FFmpeg's handshake) drops the frames it could not process in time, so its tracker meets
    the faces again 2.2 s on, predicted far from where they are. Every face must be masked on every frame
    after the gap. The tracks had outlived their hold, and the first finds went to the wrong ones: a 70 px
    face's find to the 38 px face's track, and the 38 px face's to the 70 px face's. On the frames it took,
    the small face was then covered only by the line the look-ahead drew from the larger face's last box
    to its own, 20 px off it (a recording in the live tests showed it clear on one frame)."""
    clip = make_stamped_clip(tmp_path / "camera.mp4", scene_spec(n_frames=38), palindrome=True)
    fps, gap, skipped, end = 25.0, 276, 55, 380
    cam = CameraConfig(name="cam", input="rtsp://127.0.0.1/cam", record=tmp_path)
    lag = round(LiveSettings(latency_ms=cam.latency_ms).hold * fps)  # frames leave this many frames after they came
    checked = []
    with ExitStack() as stack:
        live = build_pipeline(cam, stack)  # as `stream` builds it
        state = live.stream(fps, RunStats(), lookahead_frames=round(cam.latency_ms / 1000 * fps) + 1)
        for i in range(end):
            for plan in state.due(lambda index: i - index >= lag):
                if plan.index >= gap + skipped:
                    source = plan.index % len(clip.frames)
                    masked = live.masker.apply(plan.frame.image, live.regions(plan))
                    checked += [(plan.index, plan.failure, b.track_id, compare_face(
                        grey(clip.frames[source]), grey(masked), b.box, b.face_width).protected)
                        for b in clip.faces_that_count(source)]
            if not gap <= i < gap + skipped:
                assert state.push(Frame(i, clip.frames[i % len(clip.frames)])) == []
    assert len(checked) >= 3 * 35, "every face on the frames after the gap is checked"
    assert [c for c in checked if c[1] or not c[3]] == [], "(frame, why failed, face, masked)"
