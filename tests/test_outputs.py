"""Outputs fail closed in every corner (#21): what `redact` writes, where, and what it says when it cannot.

Real processes, real codecs, real full disks: a tmpfs mounted 8 KiB small where
mounting is allowed, and everywhere a file size limit (RLIMIT_FSIZE, whose
writes fail with EFBIG) on a real `redactor` process.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner, Result

from redactor_video.cli import main
from redactor_video.detect.base import Detector
from redactor_video.errors import VerificationFailed
from redactor_video.files.jobs import redact_file
from redactor_video.media.atomic import atomic_path
from redactor_video.pipeline import Pipeline
from redactor_video.types import Detections
from tests.helpers import REPO, encode_video, read_video, sha256, wait_for

SAMPLE = REPO / "samples" / "people.mp4"
SAMPLE_FRAMES = 132


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """still.png (the sample clip's first frame) and static.mp4 (400 grey 64x64 frames: its report,
    38 KB, outweighs its video, 12 KB), both real files in a folder of their own."""
    folder = tmp_path_factory.mktemp("media")
    with av.open(str(SAMPLE)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="bgr24")
    cv2.imwrite(str(folder / "still.png"), first)
    encode_video(folder / "static.mp4", [np.full((64, 64, 3), 128, np.uint8)] * 400, fps=25)
    return folder


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["redact", *args, "-q"])


def entries(folder: Path) -> list[str]:
    """Every name in `folder`, hidden temporaries included."""
    return sorted(os.listdir(folder))


def one_error(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), text
    return lines[0]


# 1. The report never lands on the output or the input.

@pytest.mark.integration
@pytest.mark.parametrize(("report", "message"), [
    ("out.mp4", "out.mp4: the report would overwrite the output"),
    ("sub/../out.mp4", "the report would overwrite the output"),
    ("here/out.mp4", "the report would overwrite the output"),          # here -> . (a linked folder)
    ("link.json", "link.json: the report would overwrite the output"),  # link.json -> out.mp4
    ("INPUT", "report would overwrite the input"),
], ids=["same name", "dot-dot", "linked folder", "link to the output", "the input"])
def test_report_path_may_not_be_the_output_or_the_input(tmp_path: Path, media: Path, monkeypatch: pytest.MonkeyPatch,
                                                        report: str, message: str) -> None:
    """Exit 4, like an output that would overwrite the input: both are outputs colliding on disk."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "here").symlink_to(".")
    (tmp_path / "link.json").symlink_to("out.mp4")
    before, given = entries(tmp_path), sha256(media / "static.mp4")
    result = invoke(str(media / "static.mp4"), "-o", "out.mp4", "--report",
                    str(media / "static.mp4") if report == "INPUT" else report)
    assert result.exit_code == 4, result.output
    assert message in one_error(result.stderr)
    assert entries(tmp_path) == before and sha256(media / "static.mp4") == given, "nothing written, input untouched"


@pytest.mark.integration
def test_report_on_the_output_with_overwrite_keeps_the_users_file(tmp_path: Path, media: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out.mp4").write_bytes(b"the user's own file")
    result = invoke(str(media / "static.mp4"), "-o", "out.mp4", "--report", "./out.mp4", "--overwrite")
    assert result.exit_code == 4, result.output
    assert "would overwrite the output" in one_error(result.stderr)
    assert (tmp_path / "out.mp4").read_bytes() == b"the user's own file"
    assert entries(tmp_path) == ["out.mp4"]


# 2. Temporary files of killed jobs are removed by the next run; a running job's never.

def temps(folder: Path, stem: str) -> list[str]:
    """The temporary files of the output named `stem` in `folder`."""
    return [name for name in entries(folder) if name.startswith(f".{stem}.") and ".part" in name]


def start_redact(src: Path, dst: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "redactor_video", "redact", str(src), "-o", str(dst), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_redact(src: Path, dst: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "redactor_video", "redact", str(src), "-o", str(dst), "-q"],
                          capture_output=True, text=True, timeout=300)


def stop_once_writing(proc: subprocess.Popen[str], dst: Path) -> str:
    """SIGSTOP `proc` once its temporary file for `dst` exists, so it is certainly mid-run; the temporary's name."""
    wait_for(lambda: bool(temps(dst.parent, dst.stem)) or proc.poll() is not None, timeout=300)
    os.kill(proc.pid, signal.SIGSTOP)
    assert proc.poll() is None, "the run must still be going"
    (name,) = temps(dst.parent, dst.stem)
    return name


@pytest.mark.integration
def test_temporary_file_of_a_killed_run_is_removed_by_the_next_run(tmp_path: Path, media: Path) -> None:
    proc = start_redact(SAMPLE, tmp_path / "people.mp4")
    try:
        stale = stop_once_writing(proc, tmp_path / "people.mp4")
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert entries(tmp_path) == [stale], "kill -9 leaves the temporary file behind"
    done = run_redact(media / "still.png", tmp_path / "still.png")
    assert done.returncode == 0, done.stderr
    assert entries(tmp_path) == ["still.png"], "the next run into the folder removed it"


@pytest.mark.integration
def test_temporary_file_of_a_running_job_is_kept(tmp_path: Path, media: Path) -> None:
    abandoned = tmp_path / ".old.0123abcd.part.mp4"
    abandoned.write_bytes(b"left by a job killed earlier")
    proc = start_redact(SAMPLE, tmp_path / "people.mp4")
    try:
        running = stop_once_writing(proc, tmp_path / "people.mp4")
        done = run_redact(media / "still.png", tmp_path / "still.png")
        assert done.returncode == 0, done.stderr
        assert entries(tmp_path) == sorted([running, "still.png"]), "the abandoned one went, the running one stayed"
        os.kill(proc.pid, signal.SIGCONT)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert entries(tmp_path) == ["people.mp4", "still.png"]
    assert len(read_video(tmp_path / "people.mp4").frames) == SAMPLE_FRAMES, "its encoder wrote on undisturbed"


def test_sweep_removes_only_unlocked_files_of_the_temporary_pattern(tmp_path: Path) -> None:
    target = tmp_path / "someone.txt"
    target.write_text("a file a link points to")
    keep = {
        ".notes.part.mp4": "hidden, but no random part",
        ".out.0123ABCD.part.mp4": "not our hex",
        ".wl.bin.deadbeef.part": "no suffix: how the watchlist's and the audit log's temporaries end",
        "out.0123abcd.part.mp4": "not hidden",
    }
    for name in keep:
        (tmp_path / name).write_bytes(b"not ours")
    (tmp_path / ".dir.0123abcd.part.mp4").mkdir()
    (tmp_path / ".link.0123abcd.part.mp4").symlink_to(target)
    os.mkfifo(tmp_path / ".fifo.0123abcd.part.mp4")
    (tmp_path / ".stale.0123abcd.part.mp4").write_bytes(b"left by a killed job")
    (tmp_path / ".report.89abcdef.part.json").write_bytes(b"left by a killed job")
    with atomic_path(tmp_path / "held.mp4") as held:
        held.write_bytes(b"a job still running")
        with atomic_path(tmp_path / "new.mp4") as tmp:
            assert held.exists(), "a temporary whose lock is held is never removed"
            tmp.write_bytes(b"done")
    survivors = [*keep, ".dir.0123abcd.part.mp4", ".link.0123abcd.part.mp4", ".fifo.0123abcd.part.mp4"]
    assert entries(tmp_path) == sorted([*survivors, "held.mp4", "new.mp4", "someone.txt"])
    assert target.read_text() == "a file a link points to"


# 3. Any directory entry at the output is an existing output; --overwrite replaces a link, never its target.

@pytest.mark.integration
def test_dangling_symlink_at_the_output_is_not_replaced_without_overwrite(tmp_path: Path, media: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out.png").symlink_to("gone.png")
    result = invoke(str(media / "still.png"), "-o", "out.png")
    assert result.exit_code == 4, result.output
    assert "out.png: already exists" in one_error(result.stderr)
    assert os.readlink(tmp_path / "out.png") == "gone.png" and entries(tmp_path) == ["out.png"]


@pytest.mark.integration
@pytest.mark.parametrize("points_to", ["gone.png", "kept.png", "folder"])
def test_overwrite_replaces_the_link_itself_never_its_target(tmp_path: Path, media: Path,
                                                             monkeypatch: pytest.MonkeyPatch, points_to: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kept.png").write_bytes(b"the user's own file")
    (tmp_path / "folder").mkdir()
    (tmp_path / "out.png").symlink_to(points_to)
    result = invoke(str(media / "still.png"), "-o", "out.png", "--overwrite")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out.png"
    assert not out.is_symlink() and cv2.imread(str(out)).shape == (540, 960, 3)
    assert (tmp_path / "kept.png").read_bytes() == b"the user's own file"
    assert entries(tmp_path) == ["folder", "kept.png", "out.png"] and entries(tmp_path / "folder") == []


# 4. A full disk is an output problem (exit 4) and the message names the user's path, not the temporary.

CASES = [  # name, arguments (INPUT/ and OUT/ are filled in), the path the error must name
    ("video", ["INPUT/static.mp4", "-o", "OUT/out.mp4"], "OUT/out.mp4"),
    ("image", ["INPUT/still.png", "-o", "OUT/out.png"], "OUT/out.png"),
    ("report", ["INPUT/static.mp4", "-o", "out.mp4", "--report", "OUT/out.json"], "OUT/out.json"),
]


def fill(words: list[str], media: Path, out: Path) -> list[str]:
    return [w.replace("INPUT", str(media)).replace("OUT", str(out)) for w in words]


@pytest.fixture()
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 KiB tmpfs: every output here outgrows it. Skipped where mounting is not permitted."""
    folder = tmp_path / "full"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


@pytest.mark.integration
@pytest.mark.parametrize(("args", "named"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_full_disk_exits_4_naming_the_users_path(tmp_path: Path, media: Path, full_disk: Path,
                                                 monkeypatch: pytest.MonkeyPatch, args: list[str], named: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(*fill(args, media, full_disk))
    assert result.exit_code == 4, result.output
    line = one_error(result.stderr)
    assert line.startswith(f"Error: {fill([named], media, full_disk)[0]}: ") and "No space left on device" in line
    assert ".part" not in line
    assert entries(tmp_path) == ["full"] and entries(full_disk) == [], "nothing left, here or on the full disk"


LIMITS = {"video": 8 << 10, "image": 64 << 10, "report": 24 << 10}
"""File size limits under what each case writes: static.mp4's redacted video (12 KB) fits its report's 24 KiB."""


@pytest.mark.integration
@pytest.mark.parametrize(("case", "args", "named"), CASES, ids=[c[0] for c in CASES])
def test_file_size_limit_exits_4_naming_the_users_path(tmp_path: Path, media: Path, case: str, args: list[str],
                                                       named: str) -> None:
    """No mount needed: a real process under RLIMIT_FSIZE, where writes past the limit fail with EFBIG
    (Python ignores SIGXFSZ, so the write returns the error rather than the signal killing the process)."""
    out = tmp_path / "out"
    out.mkdir()

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (LIMITS[case], LIMITS[case]))

    proc = subprocess.run([sys.executable, "-m", "redactor_video", "redact", *fill(args, media, out), "-q"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, preexec_fn=limit)
    assert proc.returncode == 4, proc.stderr
    line = one_error(proc.stderr)
    assert line.startswith(f"Error: {fill([named], media, out)[0]}: ") and "File too large" in line
    assert ".part" not in line
    assert entries(tmp_path) == ["out"] and entries(out) == []


# 5. Faces still clear after the re-mask rounds: exit 10 (verification failed), nothing written.

class SharpestPatch(Detector):
    """A stand-in verifier that takes the four sharpest 32 px patches of each frame for faces.

    The real verifier stops finding a face once it is masked, so it cannot be
    made to fail after three rounds without a masking fault. This one always
    finds fresh detail somewhere the earlier rounds did not mask, as a verifier
    that keeps finding faces would (three rounds mask at most twelve patches of
    a frame, and those either side of it; with one patch a round, a pipeline
    that masked a little more of the sample left no sharp patch clear);
    masking, encoding and the detail comparison with the original that decides
    what is clear all run for real.
    """

    name = "sharpest-patch"

    def detect(self, image: np.ndarray) -> Detections:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        energy = cv2.Laplacian(grey, cv2.CV_32F) ** 2
        rows, cols = grey.shape[0] // 32, grey.shape[1] // 32
        cells = energy[: rows * 32, : cols * 32].reshape(rows, 32, cols, 32).sum(axis=(1, 3))
        r, c = np.unravel_index(np.argsort(cells, axis=None)[-4:], cells.shape)
        boxes = np.stack([c * 32, r * 32, c * 32 + 32, r * 32 + 32], axis=1).astype(np.float32)
        return Detections(boxes, np.ones(len(boxes), np.float32))


@pytest.mark.integration
def test_faces_still_clear_after_re_masking_fail_verification(tmp_path: Path, pipeline: Pipeline) -> None:
    with av.open(str(SAMPLE)) as container:
        frames = [vf.to_ndarray(format="rgb24") for _, vf in zip(range(8), container.decode(video=0))]
    src = tmp_path / "sample8.mp4"
    encode_video(src, frames)
    before = sha256(src)
    with pytest.raises(VerificationFailed, match="still finds .* after re-masking; nothing was written") as caught:
        redact_file(src, tmp_path / "out.mp4", pipeline, pipeline.settings.encode, report=tmp_path / "out.json",
                    verifier=SharpestPatch())
    assert caught.value.exit_code == 10
    assert entries(tmp_path) == ["sample8.mp4"] and sha256(src) == before
