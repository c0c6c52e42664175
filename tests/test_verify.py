"""The independent verifier: it must flag faces left clear and stay quiet on a properly redacted output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.score import score
from benchmarks.synth import GroundTruth
from redactor_video.cli import main
from redactor_video.files.jobs import redact_file
from redactor_video.media.sink import EncodeSettings
from redactor_video.pipeline import Pipeline
from redactor_video.geometry import iou_matrix
from redactor_video.files.verify import verifier, verify

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def second() -> object:
    with verifier() as detector:
        yield detector


def test_unredacted_copy_is_flagged_on_every_face_frame(tiny_clip: tuple[Path, GroundTruth], second: object) -> None:
    clip, gt = tiny_clip
    report = verify(clip, clip, second)
    assert report.frames == gt.n_frames
    big = {row[0] for t in gt.tracks for row in t.frames if row[6] >= 60 and row[5] > 0.9}
    assert big <= set(report.residual_frames), "every frame with a large clear face is reported"
    assert report.to_dict()["residual_risk"] > 0.9


def test_redacted_output_passes(tmp_path: Path, tiny_clip: tuple[Path, GroundTruth], pipeline: Pipeline,
                                second: object) -> None:
    clip, gt = tiny_clip
    out = tmp_path / "red.mp4"
    redact_file(clip, out, pipeline, EncodeSettings())
    on_faces = [r for r in verify(clip, out, second).residuals
                if any(iou_matrix(np.array([r.box], np.float32), np.array([b.box], np.float32))[0, 0] > 0.1
                       for b in gt.boxes_at(r.frame))]
    assert on_faces == [], "no real face is reported clear (a few background false alarms are the verifier's own)"


def test_verify_pass_masks_what_the_first_pass_missed(tmp_path: Path, tiny_clip: tuple[Path, GroundTruth],
                                                      pipeline: Pipeline, second: object) -> None:
    """A pipeline whose tracks are all revealed leaves every face clear; --verify must still mask them."""

    class RevealEverything:
        def observe(self, frame: object, tracked: object) -> None:
            return None

        def reveals(self, track_id: int, index: int) -> bool:
            return True

        def close(self) -> None:
            return None

    clip, gt = tiny_clip
    leaky = Pipeline(pipeline.settings, recogniser=RevealEverything())
    out, report = tmp_path / "fixed.mp4", tmp_path / "fixed.json"
    try:
        stats = redact_file(clip, out, leaky, EncodeSettings(), report=report, verifier=second)
    finally:
        leaky.close()
    assert stats.verification["residual_faces_found"] > 0
    big = [(f, t) for f, t in score(clip, out, gt).clear_faces
           if any(b.face_width >= 60 for b in gt.boxes_at(f) if b.track_id == t)]
    assert big == [], "large faces the verifier saw are masked in the kept output"
    assert json.loads(report.read_text())["summary"]["verification"]["frames_fixed"] > 0


def test_cli_exit_codes(tmp_path: Path, tiny_clip: tuple[Path, GroundTruth]) -> None:
    clip, _ = tiny_clip
    runner = CliRunner()
    flagged = runner.invoke(main, ["verify", str(clip), str(clip), "-q", "--json", str(tmp_path / "v.json")])
    assert flagged.exit_code == 10, flagged.output
    assert json.loads((tmp_path / "v.json").read_text())["residual_faces"] > 0
    out = tmp_path / "red.mp4"
    assert runner.invoke(main, ["redact", str(clip), "-o", str(out), "-q", "--verify"]).exit_code == 0
    clean = runner.invoke(main, ["verify", str(clip), str(out), "-q"])
    assert clean.exit_code == 0, clean.output
    mismatch = runner.invoke(main, ["verify", str(clip), str(tmp_path / "missing.mp4")])
    assert mismatch.exit_code == 3 and "Traceback" not in mismatch.output
