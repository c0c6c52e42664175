"""The command line: one-line errors with documented exit codes, inputs untouched, nothing left behind.

Most cases run through click's CliRunner; a few run `redactor` as a real process,
where a traceback or native log noise would reach the user's terminal, and where
SIGINT / SIGTERM arrive as they do from a shell or a process supervisor.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from benchmarks.synth import GroundTruth, render_frames, tiny_test_clip
from redactor_video.cli import main
from redactor_video.media.sink import VideoSink
from tests.helpers import encode_video, read_video, sha256, wait_for

REDACTOR = [str(Path(sys.executable).with_name("redactor"))]
"""The installed console script, as a user runs it."""


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden temporaries included) with its SHA-256."""
    return {str(p.relative_to(folder)): sha256(p) if p.is_file() else "dir" for p in sorted(folder.rglob("*"))}


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("Error:")]


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six frames of the tiny clip (two real faces), for runs that only need to succeed quickly."""
    frames = [f for f, _ in render_frames(tiny_test_clip())][:6]
    path = tmp_path_factory.mktemp("cli") / "short.mp4"
    encode_video(path, frames, audio=True)
    return path


@pytest.fixture(scope="module")
def cut_streamable(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The first half of a streamable (moov-first) mp4: it opens, then runs out mid-stream."""
    path = tmp_path_factory.mktemp("cut") / "streamable.mp4"
    encode_video(path, [f for f, _ in render_frames(tiny_test_clip())], options={"movflags": "faststart"})
    data = path.read_bytes()
    return data[: len(data) // 2]


@pytest.fixture()
def workdir(tmp_path: Path, tiny_clip: tuple[Path, GroundTruth], short_clip: Path, cut_streamable: bytes,
            monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of good and bad inputs; tests run inside it."""
    shutil.copy(tiny_clip[0], tmp_path / "clip.mp4")
    shutil.copy(short_clip, tmp_path / "short.mp4")
    (tmp_path / "notes.mp4").write_text("meeting notes, not a video\n")
    data = (tmp_path / "clip.mp4").read_bytes()
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "cut.mp4").write_bytes(cut_streamable)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no videos here\n")
    (tmp_path / "exists.mp4").write_bytes(b"the user's own file")
    (tmp_path / "folder.mp4").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


ERROR_CASES = [
    ("missing file", ["missing.mp4", "-o", "out.mp4"], 3, "missing.mp4: no such file"),
    ("folder with no videos", ["empty", "-o", "outdir"], 3, "no video or image files"),
    ("text file named .mp4", ["notes.mp4", "-o", "out.mp4"], 3, "notes.mp4: not a video or image"),
    ("mp4 cut in half", ["half.mp4", "-o", "out.mp4"], 3, "half.mp4: not a video or image"),
    ("streamable mp4 cut in half", ["cut.mp4", "-o", "out.mp4"], 3, "cut.mp4: corrupt or truncated"),
    ("output is the input", ["clip.mp4", "-o", "clip.mp4"], 4, "would overwrite the input"),
    ("output is the input, --overwrite", ["clip.mp4", "-o", "./clip.mp4", "--overwrite"], 4, "overwrite the input"),
    ("output exists", ["clip.mp4", "-o", "exists.mp4"], 4, "exists.mp4: already exists"),
    ("output is a folder", ["clip.mp4", "-o", "folder.mp4", "--overwrite"], 4, "is a folder"),
    ("output under a file", ["clip.mp4", "-o", "exists.mp4/out.mp4"], 4, "is not a folder"),
    ("output without extension", ["clip.mp4", "-o", "out"], 4, "needs a file extension"),
    ("image output for a video", ["clip.mp4", "-o", "out.png"], 4, "the input is a video"),
    ("two inputs, one output file", ["clip.mp4", "short.mp4", "-o", "exists.mp4"], 4, "need an output folder"),
    ("unwritable output folder", ["clip.mp4", "-o", "/proc/out.mp4"], 4, "/proc: cannot create a file there"),
    ("uncreatable output folder", ["clip.mp4", "-o", "/proc/sub/out.mp4"], 4, "cannot create the output folder"),
    ("unknown option", ["clip.mp4", "-o", "out.mp4", "--blur-harder"], 2, "No such option"),
    ("bad --threshold", ["clip.mp4", "-o", "out.mp4", "--threshold", "2"], 2, "'--threshold'"),
    ("bad --mode", ["clip.mp4", "-o", "out.mp4", "--mode", "glitter"], 2, "'--mode'"),
    ("no output option", ["clip.mp4"], 2, "'-o' / '--output'"),
    ("--report with many inputs", ["clip.mp4", "short.mp4", "-o", "outdir", "--report", "r.json"], 2, "--report"),
]


@pytest.mark.parametrize(("args", "code", "message"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_errors_are_one_line_and_leave_everything_as_it_was(workdir: Path, args: list[str], code: int,
                                                            message: str) -> None:
    before = snapshot(workdir)
    result = invoke("redact", *args)
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), "errors end in a clean exit, never an escaped exception"
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert message in errors[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert snapshot(workdir) == before, "inputs unchanged, no output or temporary file left"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_read_only_output_folder(workdir: Path) -> None:
    (workdir / "ro").mkdir()
    (workdir / "ro").chmod(0o555)
    try:
        result = invoke("redact", "clip.mp4", "-o", "ro/out.mp4")
        assert result.exit_code == 4 and "not writable" in result.stderr
        assert list((workdir / "ro").iterdir()) == []
    finally:
        (workdir / "ro").chmod(0o755)


def test_failure_inside_the_encoder_exits_6_and_leaves_nothing(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = VideoSink.write
    calls: list[int] = []

    def failing_write(self: VideoSink, frame: object, image: np.ndarray) -> None:
        calls.append(1)
        if len(calls) == 8:
            raise OSError(28, "No space left on device")
        real_write(self, frame, image)

    monkeypatch.setattr(VideoSink, "write", failing_write)
    before = snapshot(workdir)
    result = invoke("redact", "clip.mp4", "-o", "out.mp4", "--report", "out.json")
    assert result.exit_code == 6
    assert len(error_lines(result.stderr)) == 1 and "No space left" in result.stderr
    assert snapshot(workdir) == before


@pytest.mark.integration
def test_redact_writes_output_report_and_summary(workdir: Path) -> None:
    before = sha256(workdir / "short.mp4")
    result = invoke("redact", "short.mp4", "-o", "out/short.redacted.mp4", "--report", "out/short.json")
    assert result.exit_code == 0, result.output
    out = workdir / "out" / "short.redacted.mp4"
    assert "6 frames" in result.stderr and "face tracks" in result.stderr
    assert len(read_video(out).frames) == 6
    assert (workdir / "out" / "short.json").is_file()
    assert sha256(workdir / "short.mp4") == before
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask, "outputs get normal permissions, not mkstemp's 0600"
    assert sorted(p.name for p in (workdir / "out").iterdir()) == ["short.json", "short.redacted.mp4"]


@pytest.mark.integration
def test_overwrite_replaces_an_existing_output(workdir: Path) -> None:
    result = invoke("redact", "short.mp4", "-o", "exists.mp4", "--overwrite", "-q")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert len(read_video(workdir / "exists.mp4").frames) == 6


@pytest.mark.integration
def test_folder_input_is_mirrored_under_the_output_folder(workdir: Path) -> None:
    videos = workdir / "videos"
    (videos / "day2").mkdir(parents=True)
    shutil.copy(workdir / "short.mp4", videos / "a.mp4")
    shutil.copy(workdir / "short.mp4", videos / "day2" / "b.MP4")
    (videos / "notes.txt").write_text("skip me\n")
    (videos / ".hidden.mp4").write_text("skip me too\n")
    result = invoke("redact", "videos", "-o", "redacted", "-q")
    assert result.exit_code == 0, result.output
    written = sorted(str(p.relative_to(workdir / "redacted")) for p in (workdir / "redacted").rglob("*") if p.is_file())
    assert written == ["videos/a.mp4", "videos/day2/b.MP4"]


def test_help_lists_the_exit_codes() -> None:
    result = invoke("redact", "--help")
    assert result.exit_code == 0
    for code in ("2 bad usage", "3 bad input", "4 output problem", "5 model problem", "6 processing failed",
                 "130 interrupted", "143 terminated"):
        assert code in result.output


def run_redactor(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REDACTOR, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.integration
@pytest.mark.parametrize(("args", "code", "message"), [
    (["notes.mp4", "-o", "out.mp4"], 3, "not a video or image"),
    (["cut.mp4", "-o", "out.mp4"], 3, "corrupt or truncated"),
    (["clip.mp4", "-o", "out.png"], 4, "the input is a video"),
])
def test_real_process_prints_only_the_error(workdir: Path, args: list[str], code: int, message: str) -> None:
    """No traceback and no native log chatter: stderr is the one error line."""
    before = snapshot(workdir)
    proc = run_redactor("redact", *args, cwd=workdir)
    assert proc.returncode == code
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], proc.stderr
    assert snapshot(workdir) == before


def test_real_process_usage_error(workdir: Path) -> None:
    proc = run_redactor("redact", "clip.mp4", "-o", "out.mp4", "--blur-harder", cwd=workdir)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(error_lines(proc.stderr)) == 1


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """192 frames (the tiny clip eight times over): long enough to be interrupted mid-run."""
    frames = [f for f, _ in render_frames(tiny_test_clip())]
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    encode_video(path, frames * 8, audio=True)
    return path


@pytest.mark.integration
@pytest.mark.parametrize(("signum", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                      (signal.SIGTERM, 143, "terminated")])
def test_interrupted_run_leaves_no_output(tmp_path: Path, long_clip: Path, signum: int, code: int, word: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    before = sha256(long_clip)
    proc = subprocess.Popen([*REDACTOR, "redact", str(long_clip), "-o", str(out / "long.mp4"), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(".part" in p.name for p in out.iterdir()), timeout=60)
        time.sleep(0.2)
        assert proc.poll() is None, "the run must still be going when the signal arrives"
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code
    assert stderr.strip().splitlines() == [f"Error: {word}; no output was written"]
    assert list(out.iterdir()) == [], "no output and no partial file"
    assert sha256(long_clip) == before
