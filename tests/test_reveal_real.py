"""A face is shown only where identity evidence covers that frame, on real footage, through `redactor redact`.

The hand-off clips are spliced from real recordings in ../shared/data/real
(CC-BY 4.0, (c) Intel Corporation, intel-iot-devkit/sample-videos): the man
of headpose_male.mp4, a stranger to the watchlist, moved so that his face
sits where the woman of headpose_female.mp4 (Person A) has hers, next to her
own frames, and encoded with H.264: one track for the tracker, two people.
Person A is enrolled (basis consent) from a still of walking_pause.mp4 cut to
her alone, as an operator enrols a photo. The done-when test enrols A and B
from their own clips, as benchmarks/recognition_real.py does, and redacts the
clips where they appear among others.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.score import compare_face
from redactor_video.cli import main
from redactor_video.detect import create_detector
from tests.helpers import data_dir
from tests.recognition_helpers import enrolled

pytestmark = pytest.mark.integration

FPS = 12
STRANGER_FRAMES = 4


def real(name: str) -> Path:
    return data_dir() / "real" / name


def rgb_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [vf.to_ndarray(format="rgb24") for vf in container.decode(video=0)]


def grey_frames(path: Path) -> Iterator[np.ndarray]:
    with av.open(str(path)) as container:
        for vf in container.decode(video=0):
            yield vf.to_ndarray(format="gray")


def face_box(detector: object, rgb: np.ndarray) -> np.ndarray:
    found = detector.detect(rgb)
    return found.xyxy[int(np.argmax(found.xyxy[:, 2] - found.xyxy[:, 0]))].astype(np.float64)


def write_clip(path: Path, images: list[np.ndarray]) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = images[0].shape[1], images[0].shape[0], "yuv420p"
        stream.options = {"crf": "16"}
        for image in images:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def person_a(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Key file and watchlist with Person A enrolled from a walking_pause still cut to her alone."""
    folder = tmp_path_factory.mktemp("person-a")
    still = rgb_frames(real("walking_pause.mp4"))[40][:, :330]  # A at x 107-206; the next person starts at 395
    photo = folder / "a.png"
    cv2.imwrite(str(photo), cv2.cvtColor(still, cv2.COLOR_RGB2BGR))
    key_file, watchlist, _ = enrolled(folder, photo)
    return key_file, watchlist


@pytest.fixture(scope="module")
def footage() -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Person A's frames 7-22 (turning to the camera) and the stranger's frames, each with its face box."""
    with create_detector("centerface", threshold=0.5) as detector:
        woman = rgb_frames(real("headpose_female.mp4"))[7:23]
        man = rgb_frames(real("headpose_male.mp4"))[:16]
        return woman, [face_box(detector, f) for f in woman], man, [face_box(detector, f) for f in man]


def moved(images: list[np.ndarray], boxes: list[np.ndarray], to: np.ndarray) -> tuple[list[np.ndarray], list]:
    """The frames shifted (edges repeated) so that their first face box's centre lands on `to`'s centre."""
    dx, dy = (to[:2] + to[2:]) / 2 - (boxes[0][:2] + boxes[0][2:]) / 2
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    out = [cv2.warpAffine(f, shift, (f.shape[1], f.shape[0]), borderMode=cv2.BORDER_REPLICATE) for f in images]
    return out, [b + np.array([dx, dy, dx, dy]) for b in boxes]


def redact(folder: Path, images: list[np.ndarray], boxes: list[np.ndarray], person: tuple[Path, Path]) \
        -> tuple[list[bool], list[str]]:
    """Encode `images`, redact them with the watchlist (`--reveal matches`), check the tracker saw one track,
    and return per frame whether the face in `boxes[i]` is still clear (benchmarks.score's rule), with the
    audit log's events."""
    key_file, watchlist = person
    clip, out, report, audit = (folder / name for name in ("clip.mp4", "out.mp4", "report.json", "audit.jsonl"))
    write_clip(clip, images)
    result = CliRunner().invoke(main, ["redact", str(clip), "-o", str(out), "-q", "--watchlist", str(watchlist),
                                       "--reveal", "matches", "--key-file", str(key_file), "--report", str(report),
                                       "--audit-log", str(audit)])
    assert result.exit_code == 0, result.output
    frames = json.loads(report.read_text())["frames"]
    assert len({t for f in frames for t in f["tracks"]}) == 1 and all(f["tracks"] for f in frames), \
        "the tracker must see one track"
    clear = [not compare_face(o, r, tuple(b), float(b[2] - b[0])).protected
             for o, r, b in zip(grey_frames(clip), grey_frames(out), boxes)]
    return clear, [json.loads(line)["event"] for line in audit.read_text().splitlines()]


def test_a_stranger_before_the_enrolled_person_in_the_same_place_stays_masked(
        tmp_path: Path, person_a: tuple[Path, Path], footage: tuple) -> None:
    """4 frames of the stranger, then A where his face was: one track. He stays masked in all 4 frames; the
    same track is shown once A's own samples match."""
    woman, woman_boxes, man, man_boxes = footage
    stranger, stranger_boxes = moved(man[:STRANGER_FRAMES], man_boxes[:STRANGER_FRAMES], woman_boxes[0])
    shown, events = redact(tmp_path, stranger + woman, stranger_boxes + woman_boxes, person_a)
    assert shown[:STRANGER_FRAMES] == [False] * STRANGER_FRAMES
    assert sum(shown[STRANGER_FRAMES:]) >= 8, shown
    assert events.count("match") == 1


def test_a_stranger_after_the_enrolled_person_in_the_same_place_stays_masked(
        tmp_path: Path, person_a: tuple[Path, Path], footage: tuple) -> None:
    """A, then the stranger where her face was (one track): he stays masked in every frame, she is shown."""
    woman, woman_boxes, man, man_boxes = footage
    stranger, stranger_boxes = moved(man, man_boxes, woman_boxes[-1])
    shown, events = redact(tmp_path, woman + stranger, woman_boxes + stranger_boxes, person_a)
    assert shown[len(woman):] == [False] * len(man)
    assert sum(shown[:len(woman)]) >= 8, shown
    assert events.count("match") == 1


def test_done_when_enrolled_people_clear_and_nobody_else_on_the_real_clips(tmp_path: Path) -> None:
    """A and B enrolled from their own clips (3 best looks each); in walking_pause and headpose each is clear in
    >= 90% of their face-frames >= 40 px, and the two strangers of walking_pause in none."""
    from benchmarks.recognition_real import ENROL, GENUINE, enrol, pipeline_run, write_watchlist
    from redactor_video.recognise.embedder import Embedder

    embedder = Embedder()
    key_file, watchlist = write_watchlist(tmp_path, {p: enrol(embedder, clip) for p, clip in ENROL.items()})
    for clip in ("walking_pause", "headpose"):
        run = pipeline_run(tmp_path, clip, key_file, watchlist, 40.0)
        for actor, row in run["actors"].items():
            assert row["frames"] >= 40, run
            if (clip, actor) in GENUINE:
                assert row["clear"] >= 0.9 * row["frames"], run
            else:
                assert row["clear"] == 0, run
