"""The ground-truth harness: synthetic clips are what they claim, and the scorer calls faces right.

Every redacted copy here is re-encoded with libx264 at crf 23, like a real tool's
output, so codec noise is always part of the test.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from skimage.feature import Cascade
import skimage.data

from benchmarks import score as score_module
from benchmarks import synth
from benchmarks.score import IDENTITY_EVERY, IDENTITY_MIN_VISIBLE, IdentityCheck, compare_face, score
from benchmarks.synth import ClipSpec, FaceSpec, GroundTruth, GTBox

Edit = Callable[[np.ndarray, list[GTBox]], np.ndarray]


# ---------------------------------------------------------------- helpers


def _small_faces_spec(night_ir: bool = False) -> ClipSpec:
    """Five faces of 12-32 px: the sizes where codec noise and redaction are hardest to tell apart."""
    faces = tuple(
        FaceSpec(photo, w, w + 2, ((40 + 60 * i, 70 + 25 * (i % 2)), (52 + 60 * i, 150)), 0, 16, 4 * (i - 2))
        for i, (photo, w) in enumerate(zip(["obama", "biden", "obama2", "obama3", "astronaut"], [12, 14, 18, 24, 32]))
    )
    return ClipSpec(320, 240, 12, 16, faces, seed=3, night_ir=night_ir)


def _px(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    return max(0, math.floor(x1)), max(0, math.floor(y1)), min(width, math.ceil(x2)), min(height, math.ceil(y2))


Paint = Callable[[np.ndarray, GTBox, tuple[int, int, int, int]], None]


def each_box(paint: Paint) -> Edit:
    """An edit that calls `paint(rgb, box, pixels)` on every ground-truth box with some area inside the frame."""
    def edit(rgb: np.ndarray, boxes: list[GTBox]) -> np.ndarray:
        h, w = rgb.shape[:2]
        for b in boxes:
            x0, y0, x1, y1 = _px(b.box, w, h)
            if x1 > x0 and y1 > y0:
                paint(rgb, b, (x0, y0, x1, y1))
        return rgb

    return edit


def blur_boxes(sigma_per_width: float) -> Edit:
    def paint(rgb: np.ndarray, b: GTBox, px: tuple[int, int, int, int]) -> None:
        (x0, y0, x1, y1), (h, w) = px, rgb.shape[:2]
        sigma = b.face_width * sigma_per_width
        p = math.ceil(3 * sigma)
        X0, Y0, X1, Y1 = max(0, x0 - p), max(0, y0 - p), min(w, x1 + p), min(h, y1 + p)
        blurred = cv2.GaussianBlur(rgb[Y0:Y1, X0:X1], (0, 0), sigma)
        rgb[y0:y1, x0:x1] = blurred[y0 - Y0 : y1 - Y0, x0 - X0 : x1 - X0]

    return each_box(paint)


def pixelate_boxes(blocks_per_face: int) -> Edit:
    def paint(rgb: np.ndarray, b: GTBox, px: tuple[int, int, int, int]) -> None:
        x0, y0, x1, y1 = px
        nx = max(1, round(blocks_per_face * (x1 - x0) / b.face_width))
        ny = max(1, round(blocks_per_face * (y1 - y0) / b.face_width))
        small = cv2.resize(rgb[y0:y1, x0:x1], (nx, ny), interpolation=cv2.INTER_AREA)
        rgb[y0:y1, x0:x1] = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)

    return each_box(paint)


def fill_boxes(rgb: np.ndarray, boxes: list[GTBox]) -> np.ndarray:
    h, w = rgb.shape[:2]
    for b in boxes:
        x0, y0, x1, y1 = _px(b.box, w, h)
        rgb[y0:y1, x0:x1] = (90, 90, 90)
    return rgb


def blur_left_half(rgb: np.ndarray, boxes: list[GTBox]) -> np.ndarray:
    blurred = blur_boxes(1 / 4)(rgb.copy(), boxes)
    h, w = rgb.shape[:2]
    for b in boxes:
        x0, y0, x1, y1 = _px(b.box, w, h)
        rgb[y0:y1, x0 : (x0 + x1) // 2] = blurred[y0:y1, x0 : (x0 + x1) // 2]
    return rgb


def noise_boxes(sigma: float) -> Edit:
    def edit(rgb: np.ndarray, boxes: list[GTBox]) -> np.ndarray:
        h, w = rgb.shape[:2]
        rng = np.random.default_rng(0)
        for b in boxes:
            x0, y0, x1, y1 = _px(b.box, w, h)
            noisy = rgb[y0:y1, x0:x1] + rng.normal(0, sigma, (y1 - y0, x1 - x0, 1))
            rgb[y0:y1, x0:x1] = np.clip(noisy, 0, 255).astype(np.uint8)
        return rgb

    return edit


def blur_frame(rgb: np.ndarray, boxes: list[GTBox]) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), 16)


def unchanged(rgb: np.ndarray, boxes: list[GTBox]) -> np.ndarray:
    return rgb


def redact(src: Path, dst: Path, gt: GroundTruth, edit: Edit, keep_frames: int | None = None) -> Path:
    """What a redaction tool would do, minus the detector: decode, edit with the true boxes, re-encode at crf 23."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=gt.fps)
        stream.width, stream.height, stream.pix_fmt = gt.width, gt.height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for t, frame in enumerate(inp.decode(video=0)):
            if keep_frames is not None and t >= keep_frames:
                break
            rgb = edit(frame.to_ndarray(format="rgb24"), gt.boxes_at(t))
            new = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            new.pts, new.time_base = t, Fraction(1, gt.fps)
            out.mux(stream.encode(new))
        out.mux(stream.encode(None))
    return dst


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("harness")


@pytest.fixture(scope="module")
def tiny(workdir: Path) -> tuple[Path, GroundTruth]:
    path = workdir / "tiny.mp4"
    return path, synth.make_clip(synth.tiny_test_clip(), path, audio=True)


@pytest.fixture(scope="module")
def small(workdir: Path) -> tuple[Path, GroundTruth]:
    path = workdir / "small.mkv"
    return path, synth.make_clip(_small_faces_spec(), path)


@pytest.fixture(scope="module")
def small_night(workdir: Path) -> tuple[Path, GroundTruth]:
    path = workdir / "small_night.mp4"
    return path, synth.make_clip(_small_faces_spec(night_ir=True), path)


def _decode(path: Path, fmt: str = "rgb24") -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format=fmt) for f in c.decode(video=0)]


# ---------------------------------------------------------------- synth: the ground truth is true


def test_ground_truth_boxes_lie_inside_the_frame(tiny: tuple[Path, GroundTruth]) -> None:
    _, gt = tiny
    assert (gt.width, gt.height, gt.fps, gt.n_frames) == (320, 240, 12, 24)
    assert len(gt.tracks) == 3
    for track in gt.tracks:
        for f, x1, y1, x2, y2, vis, width in track.frames:
            assert 0 <= f < gt.n_frames
            assert 0 <= x1 <= x2 <= gt.width and 0 <= y1 <= y2 <= gt.height
            assert 0 <= vis <= 1 and 40 <= width <= 120
            if vis > 0:
                assert x2 - x1 > 0 and y2 - y1 > 0


def test_the_face_is_where_the_ground_truth_says() -> None:
    """Resample the stored head crop onto the ground-truth box and compare pixels: only the true box matches."""
    spec = ClipSpec(320, 240, 12, 3, (FaceSpec("biden", 70, 90, ((110, 120), (200, 110)), 0, 3),), seed=5)
    for rgb, (box,) in synth.render_frames(spec):
        asset = synth.load_face("biden")
        ax1, ay1, ax2, ay2 = asset.face_box
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)

        def match(dx: float) -> float:
            x1, y1, x2, y2 = box.box
            m = np.array([[(x2 - x1) / (ax2 - ax1), 0, 0], [0, (y2 - y1) / (ay2 - ay1), 0]])
            m[:, 2] = [x1 + dx - ax1 * m[0, 0], y1 - ay1 * m[1, 1]]
            m[:, 2] += m[:, :2] @ [0.5, 0.5] - 0.5
            src = cv2.cvtColor(asset.rgba[..., :3].astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
            expected = cv2.warpAffine(src, m, (spec.width, spec.height))
            x0, y0, x1_, y1_ = _px(box.box, spec.width, spec.height)
            a = grey[y0:y1_, x0:x1_].ravel() - grey[y0:y1_, x0:x1_].mean()
            b = expected[y0:y1_, x0:x1_].ravel() - expected[y0:y1_, x0:x1_].mean()
            return float(a @ b / np.sqrt((a @ a) * (b @ b)))

        assert match(0) > 0.97
        assert match(box.face_width / 4) < 0.8


def test_an_independent_detector_agrees_with_the_ground_truth() -> None:
    """scikit-image's LBP cascade, no part of redactor, finds nearly every ground-truth face where we say it is."""
    cascade = Cascade(skimage.data.lbp_frontal_face_cascade_filename())
    ious = []
    for t, (rgb, boxes) in enumerate(synth.render_frames(synth.tiny_test_clip())):
        if t % 4 == 0:
            found = cascade.detect_multi_scale(
                img=rgb, scale_factor=1.05, step_ratio=1, min_size=(30, 30), max_size=(160, 160)
            )
            hits = [(d["c"], d["r"], d["c"] + d["width"], d["r"] + d["height"]) for d in found]
            ious += [max([_iou(b.box, h) for h in hits], default=0.0) for b in boxes]
    assert len(ious) == 17
    assert np.mean(np.array(ious) > 0.5) >= 0.8
    assert np.median(ious) > 0.85


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_visibility_counts_poles_other_faces_and_the_frame_edge() -> None:
    faces = (
        FaceSpec("obama", 60, 60, ((60, 120), (260, 120)), 0, 9, occluder="pole"),
        FaceSpec("biden", 50, 50, ((250, 60), (360, 60)), 0, 9),
        FaceSpec("obama3", 50, 50, ((40, 200), (100, 200)), 0, 9, occluder="face"),
    )
    spec = ClipSpec(320, 240, 12, 9, faces, seed=1)
    frames = list(synth.render_frames(spec))
    vis = {t: {b.track_id: b.visible_fraction for b in boxes} for t, (_, boxes) in enumerate(frames)}
    assert vis[0][0] == 1.0 and 0.5 < vis[4][0] < 0.8  # behind the pole half-way
    assert vis[0][1] == 1.0 and vis[8][1] < 0.2  # walked out of the frame
    assert 3 in vis[4] and vis[4][2] < 0.9  # crossed by its companion, itself a track
    assert all(v == 1.0 for v in (vis[0][2], vis[8][2]))


def test_ground_truth_round_trips_through_json(tiny: tuple[Path, GroundTruth], workdir: Path) -> None:
    path, gt = tiny
    on_disk = json.loads(Path(f"{path}.gt.json").read_text())
    assert set(on_disk) == {"width", "height", "fps", "n_frames", "tracks"}
    assert set(on_disk["tracks"][0]) == {"id", "photo", "frames"} and len(on_disk["tracks"][0]["frames"][0]) == 7
    loaded = GroundTruth.load(f"{path}.gt.json")
    assert loaded == gt
    assert loaded.tracks[0].frames[0] == tuple(on_disk["tracks"][0]["frames"][0])
    assert [b.track_id for b in loaded.boxes_at(10)] == [0, 1, 2]
    bad = workdir / "bad.gt.json"
    on_disk["tracks"][0]["frames"][0] = on_disk["tracks"][0]["frames"][0][:6]
    bad.write_text(json.dumps(on_disk))
    with pytest.raises(ValueError, match="rows must be"):
        GroundTruth.load(bad)


def test_clip_timing_and_audio(tiny: tuple[Path, GroundTruth]) -> None:
    path, _ = tiny
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        assert video.time_base == Fraction(1, 12) and video.codec_context.pix_fmt == "yuv420p"
        assert [f.pts for f in c.decode(video)] == list(range(24))
        assert [s.codec_context.name for s in c.streams.audio] == ["aac"]


def test_night_ir_is_grey_and_day_is_not(tiny: tuple[Path, GroundTruth], workdir: Path) -> None:
    night = workdir / "tiny_night.mp4"
    synth.make_clip(synth.night_ir(synth.tiny_test_clip()), night)
    for frame in _decode(night)[::6]:
        channels = frame.astype(np.int16)
        assert np.abs(channels[..., 0] - channels[..., 1]).max() <= 3
        assert np.abs(channels[..., 1] - channels[..., 2]).max() <= 3
        assert channels.std() < 40
    day = _decode(tiny[0])[0].astype(np.int16)
    assert np.abs(day[..., 0] - day[..., 2]).mean() > 10


@pytest.mark.parametrize("seed", [0, 7])
def test_crowd_preset_covers_every_size_and_occlusion(seed: int) -> None:
    spec = synth.crowd_720p(seed)
    assert (spec.width, spec.height, spec.fps, spec.n_frames) == (1280, 720, 25, 100)
    widths = [w for f in spec.faces for w in (f.width_px_start, f.width_px_end)]
    assert len(spec.faces) == 10 and min(widths) == 12 and max(widths) == 250
    for lo, hi in [(12, 16), (16, 24), (24, 48), (48, 96), (96, 300)]:
        assert any(lo <= w < hi for w in widths)
    assert sorted(str(f.occluder) for f in spec.faces).count("None") == 8
    assert {f.occluder for f in spec.faces} == {None, "pole", "face"}
    assert synth.night_ir(spec).night_ir and not spec.night_ir


def test_specs_refuse_bad_values() -> None:
    with pytest.raises(ValueError, match="unknown photo"):
        FaceSpec("nobody", 20, 20, ((0, 0), (1, 1)), 0, 5)
    with pytest.raises(ValueError, match="start_frame"):
        FaceSpec("obama", 20, 20, ((0, 0), (1, 1)), 5, 5)
    with pytest.raises(ValueError, match="even"):
        ClipSpec(321, 240, 12, 5, ())
    with pytest.raises(ValueError, match="background"):
        ClipSpec(320, 240, 12, 5, (), background="moon")


# ---------------------------------------------------------------- score: the rule calls faces right


RULE_CASES = [
    # (clip, edit, only faces at least this wide, share of face-frames called PROTECTED)
    *[(clip, unchanged, 0, 0.0) for clip in ("tiny", "small")],  # a crf 23 re-encode is CLEAR
    # In night-IR grain a re-encoded 12-16 px face keeps a correlation of 0.82-0.88, near the 0.75 line, and
    # x264's output here varies from run to run (two encodes of the same frames differ by up to 22 levels):
    # one face-frame in 80 was once called PROTECTED. No target is scored below 16 px.
    ("small_night", unchanged, 16, 0.0),
    *[(clip, blur_left_half, 0, 0.0) for clip in ("tiny", "small")],  # half a face is a face
    # Noise hides nothing: the correlation drops but the detail is all there.
    ("tiny", noise_boxes(50), 0, 0.0),
    *[(clip, blur_boxes(1 / 8), 0, 1.0) for clip in ("tiny", "small", "small_night")],
    *[(clip, fill_boxes, 0, 1.0) for clip in ("tiny", "small", "small_night")],
    ("tiny", pixelate_boxes(8), 0, 1.0),
    # Below ~40 px, 8 blocks across (<= 5 px each) keep enough structure to be borderline,
    # and the rule errs towards CLEAR; 6 blocks are enough from 16 px up.
    ("small", pixelate_boxes(6), 16, 1.0),
    ("small_night", pixelate_boxes(6), 16, 1.0),
]
RULE_IDS = [
    f"{clip}-{name}"
    for clip, name in [(c, "reencode") for c in ("tiny", "small", "small_night")]
    + [(c, "half-blurred") for c in ("tiny", "small")]
    + [("tiny", "noise")]
    + [(c, n) for n in ("blur-w8", "fill") for c in ("tiny", "small", "small_night")]
    + [("tiny", "pixelate-8"), ("small", "pixelate-6"), ("small_night", "pixelate-6")]
]


@pytest.mark.parametrize(("clip", "edit", "min_width", "expected"), RULE_CASES, ids=RULE_IDS)
def test_protection_rule(
    clip: str, edit: Edit, min_width: int, expected: float, request: pytest.FixtureRequest, workdir: Path
) -> None:
    path, gt = request.getfixturevalue(clip)
    red = redact(path, workdir / f"{request.node.callspec.id}.mp4", gt, edit)
    original, redacted = _decode(path, "gray"), _decode(red, "gray")
    calls = [
        compare_face(original[t], redacted[t], b.box, b.face_width).protected
        for t in range(gt.n_frames)
        for b in gt.boxes_at(t)
        if b.visible_fraction >= 0.5 and b.face_width >= min_width
    ]
    assert len(calls) > 30
    assert np.mean(calls) == expected


def test_unredacted_copy_scores_all_clear(tiny: tuple[Path, GroundTruth], workdir: Path) -> None:
    path, gt = tiny
    report = score(path, redact(path, workdir / "same.mp4", gt, unchanged), gt)
    assert report.error is None and report.recall == 0.0
    assert report.face_frames == sum(1 for t in gt.tracks for r in t.frames if r[5] >= 0.5)
    assert report.tracks_ever_clear == 3
    assert [t.longest_clear_run for t in report.tracks] == [t.face_frames for t in report.tracks]
    assert min(t.longest_clear_run for t in report.tracks) >= 20
    assert report.background_changed < 0.01
    assert len(report.clear_faces) == report.face_frames


def test_blurring_every_box_protects_all_and_leaves_the_background(
    tiny: tuple[Path, GroundTruth], workdir: Path
) -> None:
    path, gt = tiny
    report = score(path, redact(path, workdir / "boxes.mp4", gt, blur_boxes(1 / 6)), gt)
    assert report.error is None and report.recall == 1.0 and report.tracks_ever_clear == 0
    assert report.by_width["48-96"].recall == 1.0 and report.by_width["96+"].recall == 1.0
    assert report.by_width["12-16"].face_frames == 0 and report.by_width["12-16"].recall is None
    assert report.background_changed < 0.01


def test_blurring_the_whole_frame_protects_all_but_changes_the_background(
    tiny: tuple[Path, GroundTruth], workdir: Path
) -> None:
    path, gt = tiny
    report = score(path, redact(path, workdir / "frame.mp4", gt, blur_frame), gt)
    assert report.recall == 1.0
    assert report.background_changed > 0.2


def test_one_leaked_frame_is_counted_per_track_and_run(tiny: tuple[Path, GroundTruth], workdir: Path) -> None:
    """Blur everything except frames 5-7 of track 1: three clear frames, one run of three."""
    path, gt = tiny
    blur = blur_boxes(1 / 6)

    def edit(rgb: np.ndarray, boxes: list[GTBox]) -> np.ndarray:
        return blur(rgb, [b for b in boxes if not (b.track_id == 1 and 5 <= b.frame <= 7)])

    report = score(path, redact(path, workdir / "leak.mp4", gt, edit), gt)
    assert [(t.id, t.clear_frames, t.longest_clear_run) for t in report.tracks] == [(0, 0, 0), (1, 3, 3), (2, 0, 0)]
    assert report.tracks_ever_clear == 1 and report.clear_faces == ((5, 1), (6, 1), (7, 1))
    assert report.protected == report.face_frames - 3


def test_the_identity_check_tells_a_copy_from_a_blurred_one(tiny: tuple[Path, GroundTruth], workdir: Path) -> None:
    """dlib's descriptor of every checked face still matches the original's in a plain re-encode, and none
    does once the faces are blurred; partly hidden faces and frames off the sampling step are not checked."""
    path, gt = tiny
    check = IdentityCheck()
    same = score(path, redact(path, workdir / "id_same.mp4", gt, unchanged), gt, identity=check)
    blurred = score(path, redact(path, workdir / "id_blur.mp4", gt, blur_boxes(1 / 6)), gt, identity=check)
    expected = sum(1 for t in range(0, gt.n_frames, IDENTITY_EVERY) for b in gt.boxes_at(t)
                   if b.visible_fraction >= IDENTITY_MIN_VISIBLE and b.face_width >= 24)
    assert expected >= 8
    assert same.identity_checked == blurred.identity_checked == expected
    assert same.identity_kept == expected and blurred.identity_kept == 0
    assert sum(b.identity_checked for b in same.by_width.values()) == expected
    result = CliRunner().invoke(score_module.main, [str(path), str(workdir / "id_same.mp4"), "--identity"])
    assert result.exit_code == 0 and f"identity kept: {expected} of {expected}" in result.output


def test_the_identity_check_without_its_model_is_a_one_line_error(
        tiny: tuple[Path, GroundTruth], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from redactor_video.models import ENV_DIR, spec_for

    (tmp_path / spec_for("dlib-shape-5").filename).write_bytes(b"not a model")
    monkeypatch.setenv(ENV_DIR, str(tmp_path))
    path, _ = tiny
    result = CliRunner().invoke(score_module.main, [str(path), str(path), "--identity"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.output.startswith("Error: identity check: cached model") and result.output.count("\n") == 1


def test_frame_count_mismatch_is_reported_not_raised(tiny: tuple[Path, GroundTruth], workdir: Path) -> None:
    path, gt = tiny
    report = score(path, redact(path, workdir / "short.mp4", gt, blur_frame, keep_frames=20), gt)
    assert report.frames_original == 24 and report.frames_redacted == 20
    assert "frame counts differ" in report.error
    assert "ERROR" in report.format_table()
    json.dumps(report.to_dict())


def test_clis(tiny: tuple[Path, GroundTruth], small: tuple[Path, GroundTruth], workdir: Path) -> None:
    path, gt = tiny
    runner = CliRunner()
    out = workdir / "cli.mp4"
    result = runner.invoke(synth.main, ["tiny", str(out), "--seed", "2", "--night-ir"])
    assert result.exit_code == 0, result.output
    assert Path(f"{out}.gt.json").exists()
    report_json = workdir / "report.json"
    result = runner.invoke(score_module.main, [str(path), str(path), "--json", str(report_json)])
    assert result.exit_code == 0, result.output
    assert "recall" in result.output and "  0.00%" in result.output
    assert json.loads(report_json.read_text())["recall"] == 0.0
    result = runner.invoke(score_module.main, [str(path), str(small[0]), "--gt", f"{path}.gt.json"])
    assert result.exit_code == 1 and "ERROR" in result.output
    result = runner.invoke(synth.main, ["huge", str(out)])
    assert result.exit_code == 2
