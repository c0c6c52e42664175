"""A subject access request answered from real footage with a scene cut: the clip is redacted with its context.

The archive is one recording spliced from two real clips in ../shared/data/real
(CC-BY 4.0, (c) Intel Corporation, intel-iot-devkit/sample-videos): frames
40-111 of one_by_one.mp4 (768x432 at 10 fps, scaled to 960x540) and then,
after a cut, the whole of headpose.mp4, where the requester (Person A, actor 1)
sits beside Person B, a stranger to the request; all at 12 fps, H.264, 128
frames. The requester is enrolled from two stills of headpose_female.mp4
saved as JPEG photos, as a requester sends them (frames 19 and 9: her
sharpest, most frontal looks).

The request's window opens on the last frame before the cut, as the man of
one_by_one (actor 0, 52 px wide here) walks out of the picture. Cut cold at
that frame, the redaction had no track for him yet and wrote his face clear; a
whole-file redaction masks it, because its track started earlier. The window
closes mid-headpose, 17 frames before the recording ends: cut cold there, the
requester's last five frames, which only her samples after the window vouch
for, were masked. `redactor sar` runs as a user runs it (CliRunner), and its
clip and thumbnails are scored with benchmarks.score's protection rule against
the recording's own frames and the clips' hand-checked boxes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.score import compare_face
from redactor_video.cli import main
from tests.helpers import data_dir, encode_video, grey, read_video

pytestmark = pytest.mark.integration

FPS = 12
WIDTH, HEIGHT = 960, 540
STRANGERS = ("one_by_one", 40, 112)
REQUESTER_CLIP = ("headpose", 0, 56)
REQUESTER = ("headpose", 1)
CUT = STRANGERS[2] - STRANGERS[1]
FIRST, LAST = CUT - 1, CUT + 38
"""The window's first and last frames: the bystander's last frame, then 39 of headpose's 56."""
RECORDED = datetime(2026, 11, 15, 10, 15)
NAME = f"CAM1_{RECORDED:%Y%m%d_%H%M%S}.mp4"
MIN_WIDTH = 40
MIN_VISIBLE = 0.7


@dataclass(frozen=True)
class Face:
    requester: bool
    box: tuple[float, float, float, float]
    width: float


@dataclass(frozen=True)
class Archive:
    folder: Path
    frames: list[np.ndarray]
    faces: list[list[Face]]


def real(name: str) -> Path:
    return data_dir() / "real" / name


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    """The spliced recording, its decoded frames (grey) and the scored faces (vis >= 0.7) of each frame."""
    images, faces = [], []
    for name, lo, hi in (STRANGERS, REQUESTER_CLIP):
        decoded = read_video(real(f"{name}.mp4")).frames
        truth = json.loads(real(f"{name}.json").read_text())
        sx, sy = WIDTH / truth["width"], HEIGHT / truth["height"]
        for i in range(lo, hi):
            images.append(cv2.resize(decoded[i], (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA))
            faces.append([Face((name, actor) == REQUESTER, (x * sx, y * sy, (x + w) * sx, (y + h) * sy), w * sx)
                          for actor, x, y, w, h, vis in truth["frames"][i] if vis >= MIN_VISIBLE])
    folder = tmp_path_factory.mktemp("archive") / "cctv"
    folder.mkdir()
    encode_video(folder / NAME, images, fps=FPS)
    return Archive(folder, [grey(f) for f in read_video(folder / NAME).frames], faces)


def moment(frame: float) -> str:
    """The local wall-clock time of `frame` of the recording (its start comes from the file name)."""
    return (RECORDED + timedelta(seconds=frame / FPS)).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Run:
    package: Path
    clip: dict


@pytest.fixture(scope="module")
def disclosed(archive: Archive, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """`redactor sar` over the archive for the window FIRST..LAST, with the requester's two photos."""
    folder = tmp_path_factory.mktemp("sar")
    stills = read_video(real("headpose_female.mp4")).frames
    photos = []
    for k in (19, 9):
        photos += ["--subject", str(folder / f"me{k}.jpg")]
        cv2.imwrite(photos[-1], cv2.cvtColor(stills[k], cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    package = folder / "package"
    result = CliRunner().invoke(main, ["sar", "--request-id", "R-2026-020", "--received", "2026-11-20", "-q",
                                       *photos, "--from", moment(FIRST - 0.5), "--to", moment(LAST + 0.5),
                                       "-o", str(package), str(archive.folder)])
    assert result.exit_code == 0, result.output
    (clip,) = json.loads((package / "manifest.json").read_text())["clips"]
    return Run(package, clip)


def verdicts(archive: Archive, index: int, image: np.ndarray, scale: float = 1.0) -> list[tuple[Face, bool]]:
    """(face, clear?) for each scored face of recording frame `index`, shown in `image` at `scale`."""
    source = archive.frames[index]
    if scale != 1.0:
        source = cv2.resize(source, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_AREA)
    return [(f, not compare_face(source, image, tuple(v * scale for v in f.box), f.width * scale).protected)
            for f in archive.faces[index]]


def test_the_clip_holds_exactly_the_window(archive: Archive, disclosed: Run) -> None:
    """Only the segment's frames are written, from 0 s, though the redaction ran from seconds before it and on
    past it; each written frame is the recording's frame at its offset."""
    clip = read_video(disclosed.package / disclosed.clip["file"])
    assert disclosed.clip["frames"] == len(clip.frames) == LAST - FIRST + 1
    assert disclosed.clip["source_start_seconds"] == pytest.approx(FIRST / FPS, abs=1e-3)
    assert disclosed.clip["source_end_seconds"] == pytest.approx(LAST / FPS, abs=1e-3)
    assert clip.seconds == pytest.approx([i / FPS for i in range(len(clip.frames))], abs=1e-3)
    for i, image in enumerate(clip.frames):
        distances = [float(np.mean(cv2.absdiff(grey(image), archive.frames[j]))) for j in (FIRST + i - 1,
                                                                                          FIRST + i, FIRST + i + 1)]
        assert int(np.argmin(distances)) == 1, f"clip frame {i} is not recording frame {FIRST + i}: {distances}"


def test_requester_clear_and_nobody_else_from_the_first_frame(archive: Archive, disclosed: Run) -> None:
    """The requester is clear in >= 90% of their face-frames >= 40 px and in the clip's last frame (evidence from
    after the window counts); the bystander in the first frame and Person B throughout are masked."""
    mine, others = [], []
    for i, image in enumerate(read_video(disclosed.package / disclosed.clip["file"]).frames):
        for face, clear in verdicts(archive, FIRST + i, grey(image)):
            if not face.requester:
                others.append((FIRST + i, clear))
            elif face.width >= MIN_WIDTH:
                mine.append((FIRST + i, clear))
    assert len(mine) == LAST - CUT + 1 and len(others) == len(mine) + 1
    shown = sum(clear for _, clear in mine)
    assert shown >= 0.9 * len(mine), f"requester clear in {shown}/{len(mine)} face-frames"
    assert mine[-1] == (LAST, True), "the requester is masked in the clip's last frame"
    assert [i for i, clear in others if clear] == [], "another face is clear"
    assert disclosed.clip["requester_frames"] >= 0.9 * len(mine)
    assert "the final check did not" not in (disclosed.package / "index.html").read_text()


def test_thumbnails_are_redacted_frames_of_the_clip(archive: Archive, disclosed: Run) -> None:
    """Each still is a downscale of a frame of the clip (the nearest one, found by its pixels) that shows the
    requester, and nobody else is clear in it, by the protection rule against the recording's frame at that
    scale."""
    clip = [grey(f) for f in read_video(disclosed.package / disclosed.clip["file"]).frames]
    assert len(disclosed.clip["thumbnails"]) == 3
    for name in disclosed.clip["thumbnails"]:
        still = cv2.imread(str(disclosed.package / name), cv2.IMREAD_GRAYSCALE)
        size = (still.shape[1], still.shape[0])
        nearest = [float(np.mean(cv2.absdiff(still, cv2.resize(f, size, interpolation=cv2.INTER_AREA))))
                   for f in clip]
        k = int(np.argmin(nearest))
        faces = verdicts(archive, FIRST + k, still, still.shape[1] / WIDTH)
        others = [clear for face, clear in faces if not face.requester]
        assert others and not any(others), f"{name}: another face is clear"
        assert any(clear for face, clear in faces if face.requester), f"{name} does not show the requester"
