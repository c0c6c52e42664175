"""Detector calibration (#19 item 3): the shipped file is usable evidence, and the tool rebuilds it.

The shipped file, redactor_video/detect/calibration.json, was built by `python -m
benchmarks.calibrate` on design material only. These tests read it as a
tracker will (a find's likelihood ratio, a miss's detection probability), run
the real detectors on a real public-domain portrait, and rebuild a calibration
from a few frames of the real design clip `walking` (CC-BY 4.0, (c) Intel
Corporation, intel-iot-devkit/sample-videos; see ../shared/data/real/README.md)
and a small synthetic night-IR scene with a design seed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks import calibrate
from benchmarks.recall import REAL_DIR, load_real_truth
from benchmarks.synth import ir_picture, make_clip, night_ir, tiny_test_clip
from tests.helpers import encode_video, read_video

FRAMES = 6


def assert_well_formed(cal: dict) -> None:
    """Every table has one row per size bin and one column per score edge; counts are counts; every ratio is
    finite and positive; every probability lies strictly between 0 and 1 and falls as the threshold rises."""
    assert cal["schema"] == calibrate.SCHEMA
    assert cal["built"]["command"].startswith("python -m benchmarks.calibrate")
    assert len(cal["built"]["commit"]) == 40 and cal["built"]["date"]
    rows = len(cal["size_edges"])
    for name, d in cal["detectors"].items():
        cols = len(d["score_edges"])
        assert list(d["score_edges"]) == sorted(d["score_edges"]) and d["score_edges"][0] == d["report_threshold"]
        for cond in cal["conditions"]:
            cells, detection = d["cells"][cond], d["detection"][cond]
            for key in ("face", "clutter", "likelihood_ratio"):
                assert np.shape(cells[key]) == (rows, cols), (name, cond, key)
            assert all(isinstance(v, int) and v >= 0 for row in cells["face"] + cells["clutter"] for v in row)
            assert all(math.isfinite(v) and v > 0 for row in cells["likelihood_ratio"] for v in row), (name, cond)
            found, faces = np.array(detection["found"]), np.array(detection["faces"])
            assert found.shape == (rows, cols) and faces.shape == (rows,)
            assert (found <= faces[:, None]).all() and (np.diff(found, axis=1) <= 0).all()
            p = np.array(detection["probability"])
            assert ((p > 0) & (p < 1)).all() and (np.diff(p, axis=1) <= 0).all()


def test_shipped_calibration_is_well_formed_and_covers_every_detector() -> None:
    cal = calibrate.load()
    assert_well_formed(cal)
    assert set(cal["detectors"]) == {c.name for c in calibrate.CANDIDATES}
    for name, d in cal["detectors"].items():
        for cond in cal["conditions"]:
            assert sum(map(sum, d["cells"][cond]["face"])) > 0, f"{name} found no face in {cond}: nothing measured"


@pytest.fixture(scope="module")
def portrait(shared_data: Path) -> np.ndarray:
    """A real public-domain portrait in a grey 1280x720 frame, its face about 100 px wide, RGB: a face as a
    720p camera shows a person a few metres away."""
    bgr = cv2.imread(str(shared_data / "obama.jpg"))
    h, w = bgr.shape[:2]
    small = cv2.resize(bgr, (320, round(h * 320 / w)), interpolation=cv2.INTER_AREA)
    frame = np.full((720, 1280, 3), 128, np.uint8)
    frame[160:160 + small.shape[0], 480:800] = small[:560]
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("detector", ["blazeface", "centerface-1.0"])
@pytest.mark.parametrize("condition", ["colour", "ir"])
def test_a_clear_face_is_evidence_for_a_face_and_a_clutter_level_score_is_not(
        portrait: np.ndarray, detector: str, condition: str) -> None:
    """The shipped detectors' find on a real portrait (as shot, and made night IR) makes a face more likely than
    clutter; a find of the same size at the lowest score recorded, where most clutter scores, makes it less."""
    cal = calibrate.load()
    image = portrait
    if condition == "ir":
        grey = ir_picture(portrait.astype(np.float32), np.random.default_rng(0))
        image = np.clip(grey + 0.5, 0, 255).astype(np.uint8)
    c = calibrate.candidate(detector)
    with c.build(c.report) as det:
        found = det.detect(image)
    best = int(np.argmax(found.confidence))
    size = float(found.widths[best]) * c.input_scale(image.shape[1], image.shape[0])
    confident = calibrate.likelihood_ratio(cal, detector, float(found.confidence[best]), size, condition)
    faint = calibrate.likelihood_ratio(cal, detector, c.report, size, condition)
    assert found.confidence[best] >= 0.5
    assert confident > 10 > 1 > faint


def test_a_pass_over_a_large_face_that_finds_nothing_is_stronger_evidence_than_one_over_a_small_face() -> None:
    """What a miss may subtract: whole-frame BlazeFace finds faces of 24-48 px at its input (160-320 px in a 720p
    frame) over 90% of the time and faces under 12 px (80 px) under 30%; CenterFace finds faces of 48 px or more
    more often than faces of 12-24 px; in colour and in night IR."""
    cal = calibrate.load()
    for cond in ("colour", "ir"):
        def p(detector: str, size: float) -> float:
            return calibrate.detection_probability(cal, detector, size, cond, calibrate.PAIR_THRESHOLD)

        assert p("blazeface", 30.0) > 0.9 and p("blazeface", 8.0) < 0.3, cond
        assert p("centerface-1.0", 60.0) > 0.9 > p("centerface-1.0", 16.0), cond


@pytest.fixture(scope="module")
def tiny_design_set(tmp_path_factory: pytest.TempPathFactory) -> list[calibrate.Material]:
    """The first FRAMES frames of the real design clip `walking` with their boxes, and the tiny synthetic scene
    (design seed 1) as night IR, every 4th frame."""
    folder = tmp_path_factory.mktemp("design")
    source = REAL_DIR / "walking.mp4"
    if not source.is_file():
        pytest.fail(f"{REAL_DIR}: real clips missing; clone ../shared beside the repo")
    truth = json.loads((REAL_DIR / "walking.json").read_text())
    truth["frames"] = truth["frames"][:FRAMES]
    encode_video(folder / "walking.mp4", read_video(source).frames[:FRAMES], fps=round(truth["fps"]))
    (folder / "walking.json").write_text(json.dumps(truth))
    scene = make_clip(night_ir(tiny_test_clip(seed=1)), folder / "tiny_ir.mp4")
    return [calibrate.Material("real", "walking", "colour", "frontal", folder / "walking.mp4",
                               load_real_truth(folder / "walking.json"), 1, 1),
            calibrate.Material("synthetic", "tiny_s1_ir", "ir", "frontal", folder / "tiny_ir.mp4", scene, 4, 4)]


def test_rebuilding_from_a_tiny_design_set_gives_a_well_formed_file(
        tiny_design_set: list[calibrate.Material], tmp_path: Path) -> None:
    """Measure, save, refit from the saved records on the command line: the file is well formed, counts every
    face find once, and every face-frame once per detector."""
    pair = tuple(calibrate.candidate(name) for name in calibrate.PAIR)
    records = calibrate.measure(tiny_design_set, pair, ("centerface-1.0",), progress=False)
    walking = [image for m in tiny_design_set[:1] for _, image, _ in m.frames()][:2]
    records |= {"cost": calibrate.cost(pair, walking), "command": "python -m benchmarks.calibrate (test)",
                "machine": calibrate.speed.machine(), "uncommitted": [], "material": {"real": ["walking, 6 frames"]}}
    saved, written = tmp_path / "records.json", tmp_path / "calibration.json"
    saved.write_text(json.dumps(records))
    result = CliRunner().invoke(calibrate.main, ["--refit", "--records", str(saved), "--calibration", str(written)])
    assert result.exit_code == 0, result.output
    assert "| centerface-1.0 | colour |" in result.output
    cal = calibrate.load(written)
    assert_well_formed(cal)
    n_faces = len(records["faces"])
    scored = sum(1 for m in tiny_design_set for f in range(0, m.truth.n_frames, m.step)
                 for box in m.truth.boxes_at(f) if box.visible_fraction >= calibrate.MIN_VISIBLE)
    assert n_faces == scored > FRAMES
    for c in pair:
        finds = [f for f in records["finds"] if f["detector"] == c.name and f["label"] == "face"]
        assert sum(sum(map(sum, cal["detectors"][c.name]["cells"][cond]["face"])) for cond in ("colour", "ir")) \
            == len(finds) > 0
        assert sum(sum(cal["detectors"][c.name]["detection"][cond]["faces"]) for cond in ("colour", "ir")) == n_faces


@pytest.mark.parametrize("clips, seeds", [(("one_by_one",), (1,)), (("walking_pause",), (1,)),
                                          (("walking",), (10_000,)), (("walking",), (0,))])
def test_validation_material_is_refused(clips: tuple[str, ...], seeds: tuple[int, ...], tmp_path: Path) -> None:
    """Nothing may be chosen on validation material: its real clips and fresh seeds are refused before
    anything is measured."""
    with pytest.raises(click.BadParameter):
        calibrate.design_material(REAL_DIR, clips, seeds, tmp_path, 5, 25, 3)
    assert not any(tmp_path.iterdir())
