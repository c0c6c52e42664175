"""`redactor batch`: a folder of real-face clips redacted into a mirror, as an operator's archive would be.

Every batch here runs the real models and codecs on synthetic clips with exact
ground truth (benchmarks.synth): outputs must protect every face (benchmarks.score's
rule), hold exactly the input's frames and timestamps, and the manifest must say
what happened to each file. The crash test kills the real `redactor` process with
SIGKILL; the worker tests kill a real worker process (local or Ray) mid-chunk.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.synth import ClipSpec, FaceSpec, GTBox, mux_tone, render_frames, tiny_test_clip
from redactor_video.batch import BatchOptions, run_batch
from redactor_video.batch.chunks import Chunk, Probe, plan
from redactor_video.batch.engines import Engine
from redactor_video.batch.manifest import (MANIFEST_NAME, STAGING_NAME, InputKey, Manifest, Outcome, Status, file_sha256,
                                     settings_hash)
from redactor_video.batch.walk import walk
from redactor_video.cli import main
from redactor_video.errors import InputError, ModelError, OutputError, ProcessingError
from redactor_video.pipeline import RedactSettings
from tests.helpers import DoesNotRaise, clear_faces, read_video, wait_for

REDACTOR = [str(Path(sys.executable).with_name("redactor"))]
CHUNK_SECONDS = 2.0
"""The long clip is 8 s at 12 fps with a keyframe every second: four chunks, with overlap 1.75 s at the defaults."""


# ---------------------------------------------------------------- media


def long_spec() -> ClipSpec:
    """8 s with faces on stage across every seam: one all along, one entering and leaving mid-clip, one late."""
    faces = (
        FaceSpec("obama", 70, 80, ((60, 90), (250, 110)), 0, 96, (0, 6)),
        FaceSpec("biden", 90, 100, ((250, 150), (80, 140)), 18, 78, (-4, 0)),
        FaceSpec("astronaut", 45, 50, ((160, 190), (100, 180)), 44, 96, 0, (0.9, 1.1)),
    )
    return ClipSpec(320, 240, 12, 96, faces, seed=3)


def encode_clip(spec: ClipSpec, path: Path, gop: int = 12, drop: frozenset[int] = frozenset()) -> list[list[GTBox]]:
    """A camera-like file: H.264 with B-frames and a keyframe every `gop` frames, AAC audio, pts = frame number
    (frames in `drop` are missing, as a camera skips them). Returns the ground truth of each frame written."""
    tb = Fraction(1, spec.fps)
    boxes = []
    # Streamable MP4 (index first), as cameras write it: a cut-off file then fails as truncated, not unreadable.
    options = {"video_track_timescale": str(spec.fps), "movflags": "faststart"} if path.suffix == ".mp4" else {}
    with av.open(str(path), "w", options=options) as out:
        video = out.add_stream("libx264", rate=spec.fps)
        video.width, video.height, video.pix_fmt = spec.width, spec.height, "yuv420p"
        video.time_base = video.codec_context.time_base = tb
        video.codec_context.gop_size = gop
        video.options = {"crf": "18", "preset": "medium"}
        sound = out.add_stream("aac", rate=48000)
        sound.layout = "mono"
        done = 0
        for t, (rgb, gt) in enumerate(render_frames(spec)):
            if t in drop:
                continue
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = t, tb
            out.mux(video.encode(frame))
            done = mux_tone(out, sound, done, (t + 1) * 48000 // spec.fps)
            boxes.append(gt)
        out.mux(video.encode(None))
        out.mux(sound.encode(None))
    return boxes


def timeline(path: Path) -> tuple[list[Fraction], list[Fraction], bool]:
    """Presentation times of every video and audio packet (exact), and whether the first video packet is a keyframe."""
    times: dict[str, list[Fraction]] = {"video": [], "audio": []}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.size and packet.pts is not None:
                if not times["video"] and packet.stream.type == "video":
                    keyframe_first = packet.is_keyframe
                times[packet.stream.type].append(packet.pts * packet.time_base)
    return sorted(times["video"]), sorted(times["audio"]), keyframe_first


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[list[GTBox]]]]:
    """SRC: a long recording (chunked), two short ones, a truncated and a garbage 'video', and files to ignore."""
    src = tmp_path_factory.mktemp("archive")
    (src / "cam1").mkdir()
    (src / "cam2").mkdir()
    truth = {
        "cam1/long.mp4": encode_clip(long_spec(), src / "cam1" / "long.mp4", drop=frozenset({30, 31, 61})),
        "cam2/a.mp4": encode_clip(tiny_test_clip(0), src / "cam2" / "a.mp4"),
        "cam2/b.mkv": encode_clip(tiny_test_clip(1), src / "cam2" / "b.mkv"),
    }
    encode_clip(tiny_test_clip(2), src / "cam2" / "cut.mp4")
    whole = (src / "cam2" / "cut.mp4").read_bytes()
    (src / "cam2" / "cut.mp4").write_bytes(whole[: len(whole) * 6 // 10])
    (src / "garbage.mp4").write_bytes(os.urandom(4000))
    (src / "cam2" / "notes.txt").write_text("not a video")
    (src / ".hidden.mp4").write_bytes((src / "cam2" / "a.mp4").read_bytes())
    return src, truth


# ---------------------------------------------------------------- the same checks for every engine


def read_manifest(dst: Path, sql: str) -> list[tuple]:
    """Read the manifest as an operator would, while a batch may be writing it."""
    with closing(sqlite3.connect(f"file:{dst / MANIFEST_NAME}?mode=ro", uri=True, timeout=5)) as db:
        return db.execute(sql).fetchall()


def check_batch(src: Path, dst: Path, truth: dict[str, list[list[GTBox]]], reasons: dict[str, str]) -> None:
    """Every good file done, frame-exact and protected; each bad one failed alone with its reason; nothing else."""
    assert set(reasons) == {"garbage.mp4", "cam2/cut.mp4"}
    assert "not a video" in reasons["garbage.mp4"] and "corrupt or truncated" in reasons["cam2/cut.mp4"]
    rows = {r[0]: r[1:] for r in read_manifest(
        dst, "SELECT rel, status, input_sha256, output_sha256, frames, chunks, settings_hash, reason FROM files")}
    for rel, boxes in truth.items():
        status, in_sha, out_sha, frames, chunks, settings, _ = rows[rel]
        out = dst / rel
        assert status == Status.DONE and settings
        assert in_sha == file_sha256(src / rel) and out_sha == file_sha256(out)
        assert frames == len(boxes)
        assert chunks == (4 if rel == "cam1/long.mp4" else 1)
        video_in, audio_in, _ = timeline(src / rel)
        video_out, audio_out, keyframe_first = timeline(out)
        assert video_out == video_in, f"{rel}: frames or timestamps differ from the input"
        assert audio_out == audio_in and keyframe_first
        original, redacted = read_video(src / rel), read_video(out)
        assert len(redacted.frames) == len(boxes)
        assert clear_faces(original.frames, redacted.frames, boxes) == [], f"{rel}: faces left clear"
    for rel in ("garbage.mp4", "cam2/cut.mp4"):
        assert rows[rel][0] == Status.FAILED and not (dst / rel).exists()
    left = {p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file()}
    kept = {".redactor-batch.lock", MANIFEST_NAME, f"{MANIFEST_NAME}-wal", f"{MANIFEST_NAME}-shm"}  # SQLite's own
    assert left - kept == set(truth), "temporary or extra files left in DST"


def test_local_batch_redacts_mirrors_and_fails_bad_files_alone(archive: tuple[Path, dict], tmp_path: Path) -> None:
    src, truth = archive
    dst = tmp_path / "out"
    result = CliRunner().invoke(main, ["batch", str(src), str(dst), "-j", "2", "--chunk-seconds", str(CHUNK_SECONDS)])
    assert result.exit_code == InputError.exit_code, result.output
    assert "5 files found, 3 redacted, 0 already done, 2 failed" in result.output
    assert "2 of 5 files failed" in result.output
    failures = [line.split(": failed: ", 1) for line in result.output.splitlines() if ": failed: " in line]
    check_batch(src, dst, truth, dict(failures))
    again = CliRunner().invoke(main, ["batch", str(src), str(dst), "--resume", "-j", "1"])
    assert again.exit_code == InputError.exit_code, again.output
    assert "0 redacted, 3 already done, 0 failed, 2 failed earlier" in again.output
    assert "2 of 5 files still failed from an earlier run" in again.output


# ---------------------------------------------------------------- resume: replaced inputs, earlier failures


def pad_mp4(path: Path, size: int) -> None:
    """Grow an MP4 to `size` bytes with a trailing `free` box (players skip it): the same video at another size."""
    extra = size - path.stat().st_size
    assert extra >= 8
    with path.open("ab") as f:
        f.write(extra.to_bytes(4, "big") + b"free" + bytes(extra - 8))


def distance(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Mean absolute pixel difference of two equally long videos."""
    return float(np.mean([np.abs(x.astype(np.int16) - y).mean() for x, y in zip(a, b, strict=True)]))


def test_resume_redoes_a_source_replaced_by_another_of_the_same_size_and_mtime(tmp_path: Path) -> None:
    """A recording overwritten by a different one of the same size, its mtime set back (`touch -r`, `cp -p`), is
    redone, not left with the old recording's output; a file only touched is hashed and kept, not redone."""
    src, dst = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    old, new = tmp_path / "old.mp4", tmp_path / "new.mp4"
    for seed, path in ((0, src / "a.mp4"), (1, old), (2, new)):
        encode_clip(tiny_test_clip(seed), path)
    size = max(old.stat().st_size, new.stat().st_size) + 16
    pad_mp4(old, size)
    pad_mp4(new, size)
    (src / "b.mp4").write_bytes(old.read_bytes())
    first = CliRunner().invoke(main, ["batch", str(src), str(dst), "-q"])
    assert first.exit_code == 0, first.output
    sql = "SELECT rel, input_sha256, output_sha256 FROM files"
    before = {rel: shas for rel, *shas in read_manifest(dst, sql)}
    kept = (dst / "a.mp4").stat()

    recorded = (src / "b.mp4").stat()
    (src / "b.mp4").write_bytes(new.read_bytes())                       # in place: the same inode
    os.utime(src / "b.mp4", ns=(recorded.st_atime_ns, recorded.st_mtime_ns))
    replaced = (src / "b.mp4").stat()
    assert (replaced.st_size, replaced.st_mtime_ns) == (recorded.st_size, recorded.st_mtime_ns)
    touched = (src / "a.mp4").stat()
    os.utime(src / "a.mp4", ns=(touched.st_atime_ns, touched.st_mtime_ns + 10**9))

    resumed = CliRunner().invoke(main, ["batch", str(src), str(dst), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "2 files found, 1 redacted, 1 already done, 0 failed" in resumed.output
    after = {rel: shas for rel, *shas in read_manifest(dst, sql)}
    assert after["b.mp4"][0] == file_sha256(new) != before["b.mp4"][0]
    assert after["b.mp4"][1] == file_sha256(dst / "b.mp4") != before["b.mp4"][1]
    redacted = read_video(dst / "b.mp4").frames
    assert distance(redacted, read_video(new).frames) < distance(redacted, read_video(old).frames)
    assert after["a.mp4"] == before["a.mp4"]
    assert ((dst / "a.mp4").stat().st_ino, (dst / "a.mp4").stat().st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)
    # The touched file was hashed once; its new key is recorded, so the next run knows it without hashing.
    key = read_manifest(dst, "SELECT input_size, input_mtime_ns, input_ctime_ns, input_ino FROM files "
                             "WHERE rel='a.mp4'")
    assert InputKey(*key[0]) == InputKey.of((src / "a.mp4").stat())


class Bystander:
    """An observer that ignores the batch's progress; the ones below act on it by overriding `advance`."""

    def planned(self, files: int, frames: int) -> None:
        pass

    def expect(self, frames: int) -> None:
        pass

    def advance(self, frames: int) -> None:
        pass

    def finished(self, rel: str, reason: str | None) -> None:
        pass


class ReplaceSource(Bystander):
    """Overwrites a source file in place with other bytes as soon as any frame of it is reported, that is while the
    batch has it claimed and before its output is published."""

    def __init__(self, path: Path, replacement: bytes) -> None:
        self.path, self.replacement, self.replaced = path, replacement, False

    def advance(self, frames: int) -> None:
        if not self.replaced and frames > 0:
            self.path.write_bytes(self.replacement)
            self.replaced = True


def test_a_source_replaced_while_it_is_redacted_fails_and_is_redone_on_resume(tmp_path: Path) -> None:
    """An output made while its source was being overwritten is never published as that source's: the file fails
    (input code, nothing in DST) and --resume redoes it from what the source now holds."""
    src, dst = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    new = tmp_path / "new.mp4"
    encode_clip(tiny_test_clip(6), src / "a.mp4")
    encode_clip(tiny_test_clip(7), new)
    replacer = ReplaceSource(src / "a.mp4", new.read_bytes())
    summary = run_batch(src, dst, RedactSettings(), BatchOptions(), observer=replacer)
    assert replacer.replaced and summary.done == 0
    assert [(rel, code) for rel, _, code in summary.failed] == [("a.mp4", InputError.exit_code)]
    assert "changed while it was being redacted" in summary.failed[0][1]
    assert not (dst / "a.mp4").exists()

    resumed = run_batch(src, dst, RedactSettings(), BatchOptions(resume=True))
    assert (resumed.done, resumed.failed, resumed.failed_before) == (1, [], [])
    assert read_manifest(dst, "SELECT input_sha256, output_sha256 FROM files") == [
        (file_sha256(new), file_sha256(dst / "a.mp4"))]


def test_resume_exits_non_zero_while_files_are_still_failed_from_an_earlier_run(tmp_path: Path) -> None:
    """--resume that leaves an earlier failure untried is not a complete batch: the failed file's exit code, how many
    are left and how to retry them; --retry-failed tries it again, and a repaired input is redone unasked."""
    src, dst = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    encode_clip(tiny_test_clip(3), src / "good.mp4")
    whole = tmp_path / "whole.mp4"
    encode_clip(tiny_test_clip(4), whole)
    (src / "cut.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    command = ["batch", str(src), str(dst)]
    first = CliRunner().invoke(main, [*command, "-q"])
    assert first.exit_code == InputError.exit_code, first.output
    assert "1 of 2 files failed (see" in first.output

    again = CliRunner().invoke(main, [*command, "--resume"])
    assert again.exit_code == InputError.exit_code, again.output
    assert "Traceback" not in again.output
    assert f"cut.mp4: failed earlier: {src / 'cut.mp4'}: truncated" in again.output
    assert "0 redacted, 1 already done, 0 failed, 1 failed earlier" in again.output
    assert again.output.strip().splitlines()[-1] == (
        f"Error: 1 of 2 files still failed from an earlier run (see {dst / MANIFEST_NAME}); "
        "fix them and run again with --resume --retry-failed")
    assert read_manifest(dst, "SELECT status, exit_code, attempts FROM files WHERE rel='cut.mp4'") == [
        ("failed", InputError.exit_code, 1)]

    retried = CliRunner().invoke(main, [*command, "--resume", "--retry-failed", "-q"])
    assert retried.exit_code == InputError.exit_code, retried.output
    assert "1 of 2 files failed (see" in retried.output and "earlier" not in retried.output
    assert read_manifest(dst, "SELECT attempts FROM files WHERE rel='cut.mp4'") == [(2,)]

    (src / "cut.mp4").write_bytes(whole.read_bytes())
    repaired = CliRunner().invoke(main, [*command, "--resume", "-q"])
    assert repaired.exit_code == 0, repaired.output
    assert read_manifest(dst, "SELECT rel, status, exit_code FROM files ORDER BY rel") == [
        ("cut.mp4", "done", None), ("good.mp4", "done", None)]


def test_manifest_of_schema_1_is_migrated_and_resumed(tmp_path: Path) -> None:
    """A manifest written before the quick key held ctime and inode (schema 1) is upgraded in place: a finished file
    is hashed once and kept, a failed one still counts (its unrecorded exit code as 6); an unknown schema is refused."""
    src, dst = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    encode_clip(tiny_test_clip(5), src / "a.mp4")
    (src / "c.mp4").write_bytes((src / "a.mp4").read_bytes())
    wanted = settings_hash(RedactSettings())
    with Manifest(dst) as m:
        m.staging.mkdir()
        (dst / "c.mp4").mkdir()    # c's output cannot be moved into place: it fails with code 4
        for rel in ("a.mp4", "c.mp4"):
            m.mark_running("r1", rel, InputKey.of((src / rel).stat()), wanted)
            staged = m.staging / rel
            staged.write_bytes(b"redacted " + rel.encode())
            m.publish("r1", rel, staged, Outcome(file_sha256(src / rel), file_sha256(staged), 24, 2.0, 1.0, 1))
    rows = {rel: (status, code) for rel, status, code in read_manifest(dst, "SELECT rel, status, exit_code FROM files")}
    assert rows == {"a.mp4": ("done", None), "c.mp4": ("failed", OutputError.exit_code)}
    with closing(sqlite3.connect(dst / MANIFEST_NAME)) as db, db:
        for column in ("input_ctime_ns", "input_ino", "exit_code"):
            db.execute(f"ALTER TABLE files DROP COLUMN {column}")
        db.execute("UPDATE meta SET value='1' WHERE key='schema'")

    summary = run_batch(src, dst, RedactSettings(), BatchOptions(resume=True))
    assert (summary.done, summary.skipped, [(rel, code) for rel, _, code in summary.failed_before]) == (
        0, 1, [("c.mp4", ProcessingError.exit_code)])
    assert (dst / "a.mp4").read_bytes() == b"redacted a.mp4"
    assert read_manifest(dst, "SELECT value FROM meta WHERE key='schema'") == [("2",)]
    key = read_manifest(dst, "SELECT input_size, input_mtime_ns, input_ctime_ns, input_ino FROM files "
                             "WHERE rel='a.mp4'")
    assert InputKey(*key[0]) == InputKey.of((src / "a.mp4").stat())

    with closing(sqlite3.connect(dst / MANIFEST_NAME)) as db, db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema'")
    with pytest.raises(OutputError, match="manifest schema 99 is not 2"):
        Manifest(dst)


# ---------------------------------------------------------------- crash and resume


def done_so_far(dst: Path) -> list[tuple]:
    try:
        return read_manifest(dst, "SELECT rel FROM files WHERE status='done'")
    except sqlite3.OperationalError:  # not created yet
        return []


def children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(c) for c in path.read_text().split()} if path.exists() else set()


@pytest.fixture(scope="module")
def short_clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[list[GTBox]]]]:
    src = tmp_path_factory.mktemp("shorts")
    truth = {f"day{i // 3}/clip{i}.mp4": None for i in range(5)}
    for i, rel in enumerate(truth):
        (src / rel).parent.mkdir(exist_ok=True)
        truth[rel] = encode_clip(tiny_test_clip(10 + i), src / rel)
    return src, truth


def test_kill_9_mid_batch_then_resume_does_every_file_exactly_once(short_clips: tuple[Path, dict],
                                                                    tmp_path: Path) -> None:
    src, truth = short_clips
    dst = tmp_path / "out"
    command = [*REDACTOR, "batch", str(src), str(dst), "-j", "1", "-q"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: bool(done_so_far(dst)), timeout=60)
        workers = children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for(lambda: all(not Path(f"/proc/{w}").exists() for w in workers), timeout=5)  # workers die with the driver
    status = dict(read_manifest(dst, "SELECT rel, status FROM files"))
    done_first = {rel: (dst / rel).stat() for rel, s in status.items() if s == "done"}
    assert 0 < len(done_first) < len(truth)
    visible = {p.relative_to(dst).as_posix() for p in dst.rglob("*.mp4") if not p.name.startswith(".")}
    # Only finished files are visible (or one caught between its rename and its 'done' commit).
    assert set(done_first) <= visible <= {rel for rel, s in status.items() if s in ("done", "finishing")}

    refused = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert refused.returncode == OutputError.exit_code and "--resume" in refused.stderr
    resumed = subprocess.run([*command[:-1], "--resume"], capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr

    events = read_manifest(dst, "SELECT rel, event FROM events")
    for rel in truth:
        assert [e for r, e in events if r == rel].count("done") == 1, f"{rel} done more or less than once"
    for rel, before in done_first.items():
        after = (dst / rel).stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), f"{rel} was redone"
    assert read_manifest(dst, "SELECT count(*) FROM files WHERE status='done'") == [(len(truth),)]
    assert {r for r, e in events if e == "requeued"} <= set(truth) - set(done_first)
    for rel, boxes in truth.items():
        original, redacted = read_video(src / rel), read_video(dst / rel)
        assert redacted.seconds == original.seconds
        assert clear_faces(original.frames, redacted.frames, boxes) == [], f"{rel}: faces left clear"
    assert not (dst / STAGING_NAME).exists() and not [p for p in dst.rglob(".*part*")]


# ---------------------------------------------------------------- workers dying mid-chunk


class KillOneWorker(Bystander):
    """SIGKILLs the engine's first worker as soon as any frame is reported (both are busy then)."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.killed = engine, False

    def advance(self, frames: int) -> None:
        if not self.killed and frames > 0:
            os.kill(self.engine.pids()[0], signal.SIGKILL)
            self.killed = True


def check_killed_worker_retry(src: Path, truth: dict, dst: Path, engine: Engine) -> None:
    killer = KillOneWorker(engine)
    options = BatchOptions(workers=2, engine=engine.name, include=("cam1/long.mp4",), chunk_seconds=CHUNK_SECONDS)
    summary = run_batch(src, dst, engine.settings, options, observer=killer, engine=engine)
    assert killer.killed and summary.retries == 1 and summary.done == 1 and not summary.failed
    retries = read_manifest(dst, "SELECT detail FROM events WHERE event='retry'")
    assert len(retries) == 1 and "#chunk" in retries[0][0] and "died" in retries[0][0]
    assert read_manifest(dst, "SELECT status, attempts, chunks FROM files") == [("done", 2, 4)]
    video_in, audio_in, _ = timeline(src / "cam1/long.mp4")
    assert timeline(dst / "cam1/long.mp4")[:2] == (video_in, audio_in)
    original, redacted = read_video(src / "cam1/long.mp4"), read_video(dst / "cam1/long.mp4")
    assert clear_faces(original.frames, redacted.frames, truth["cam1/long.mp4"]) == []


def test_local_worker_killed_mid_chunk_is_retried(archive: tuple[Path, dict], tmp_path: Path) -> None:
    from redactor_video.batch.local import LocalEngine

    engine = LocalEngine(RedactSettings(), None, 2)
    try:
        check_killed_worker_retry(*archive, tmp_path / "out", engine)
    finally:
        engine.close()


# ---------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def ray_engine() -> Iterator[Engine]:
    """A local two-CPU Ray instance and an actor pool on it, shut down after the module."""
    import ray

    from redactor_video.batch.ray_engine import RayEngine

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        engine = RayEngine(RedactSettings(), None, 2)
        yield engine
        engine.close()
    finally:
        ray.shutdown()


def test_ray_engine_runs_the_same_batch(archive: tuple[Path, dict], tmp_path: Path, ray_engine: Engine) -> None:
    src, truth = archive
    options = BatchOptions(workers=2, engine="ray", chunk_seconds=CHUNK_SECONDS)
    summary = run_batch(src, tmp_path / "out", ray_engine.settings, options, engine=ray_engine)
    assert summary.found == 5 and summary.done == 3
    check_batch(src, tmp_path / "out", truth, {rel: reason for rel, reason, _ in summary.failed})


def test_ray_worker_killed_mid_chunk_is_retried(archive: tuple[Path, dict], tmp_path: Path,
                                                ray_engine: Engine) -> None:
    check_killed_worker_retry(*archive, tmp_path / "out", ray_engine)


# ---------------------------------------------------------------- pieces, without models


def probe_of(n: int, gop: int, fps: int = 12) -> Probe:
    return Probe(tuple(range(n)), tuple(range(0, n, gop)), Fraction(1, fps))


@pytest.mark.parametrize(("n", "gop", "chunk_s", "bounds"), [
    (96, 12, 2.0, [(0, 24), (24, 48), (48, 72), (72, None)]),
    (96, 10, 2.0, [(0, 30), (30, 60), (60, None)]),   # cut at the first keyframe after each 24 frames
    (100, 12, 2.0, [(0, 24), (24, 48), (48, 72), (72, None)]),
    (47, 12, 2.0, [(0, None)]),                        # shorter than two chunks
    (96, 1000, 2.0, [(0, None)]),                      # no keyframe to cut at
    (96, 12, 0.0, [(0, None)]),                        # splitting off
])
def test_plan_cuts_at_keyframes(n: int, gop: int, chunk_s: float, bounds: list) -> None:
    chunks = plan(probe_of(n, gop), chunk_s, overlap=1.75)
    assert [(c.start, c.end) for c in chunks] == bounds
    assert sum(c.frames for c in chunks) == n


def test_chunk_windows_cover_the_overlap_from_a_keyframe() -> None:
    chunks = plan(probe_of(96, 12), 2.0, overlap=1.75)   # 21 frames of overlap
    assert [(c.window[0], c.window[-1], c.first_index) for c in chunks] == [
        (0, 45, 0), (0, 69, 0), (24, 93, 24), (48, 95, 48)]
    for c in chunks[1:]:
        assert c.window[0] % 12 == 0 and c.window[0] <= c.start - 21
        assert c.end is None or c.window[-1] >= c.end + 21 - 1
    assert Chunk(1, 24, 48, tuple(range(0, 70)), 0).frames == 24


@pytest.mark.parametrize(("include", "exclude", "expected", "raises"), [
    ((), (), ["a.mp4", "cam1/b.MOV", "cam1/deep/c.jpg", "cam2/d.mkv"], DoesNotRaise()),
    (("*.mp4",), (), ["a.mp4"], DoesNotRaise()),
    (("cam1/*",), (), ["cam1/b.MOV", "cam1/deep/c.jpg"], DoesNotRaise()),
    ((), ("cam1/*", "*.mkv"), ["a.mp4"], DoesNotRaise()),
    (("cam*",), ("*.jpg",), ["cam1/b.MOV", "cam2/d.mkv"], DoesNotRaise()),
])
def test_walk_selects_and_mirrors(tmp_path: Path, include: tuple, exclude: tuple, expected: list,
                                  raises: AbstractContextManager) -> None:
    src = tmp_path / "src"
    for rel in ["a.mp4", "cam1/b.MOV", "cam1/deep/c.jpg", "cam2/d.mkv", "cam2/e.txt", ".h/f.mp4", "cam2/.g.mp4",
                "out/x.mp4"]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(b"")
    with raises:
        items = walk(src, src / "out", include, exclude)
        assert [i.rel for i in items] == expected
        assert all(i.dst == src / "out" / i.rel and i.src == src / i.rel for i in items)


@pytest.mark.parametrize(("dst", "raises"), [
    (".", pytest.raises(OutputError, match="is the input folder")),
    ("..", pytest.raises(OutputError, match="contains the input folder")),
    ("missing/../../elsewhere", DoesNotRaise()),
])
def test_walk_refuses_overlapping_folders(tmp_path: Path, dst: str, raises: AbstractContextManager) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with raises:
        walk(src, src / dst)


def test_manifest_settles_what_a_killed_run_left(tmp_path: Path) -> None:
    """A kill between 'finishing' and 'done' (either side of the rename) is finished, not redone; a kill before
    'finishing' re-queues the file; and a second driver on the same DST is refused while the first holds it."""
    dst = tmp_path / "out"
    with Manifest(dst) as m:
        with pytest.raises(OutputError, match="another batch is running"):
            Manifest(dst)
        m.staging.mkdir()
        for rel in ("staged.mp4", "renamed.mp4", "lost.mp4", "running.mp4"):
            m.mark_running("r1", rel, InputKey(1, 1, 1, 1), "h")
        for rel, content in (("staged.mp4", b"one"), ("renamed.mp4", b"two"), ("lost.mp4", b"three")):
            staged = m.staging / rel
            staged.write_bytes(content)
            m.mark_finishing(rel, staged, Outcome("in", file_sha256(staged), 1, 1.0, 1.0, 1))
        os.replace(m.staging / "renamed.mp4", dst / "renamed.mp4")
        (m.staging / "lost.mp4").unlink()
    with Manifest(dst) as m:
        assert m.recover("r2") == 2
        rows = m.rows()
    assert {rel: r.status for rel, r in rows.items()} == {
        "staged.mp4": Status.DONE, "renamed.mp4": Status.DONE, "lost.mp4": Status.QUEUED, "running.mp4": Status.QUEUED}
    assert (dst / "staged.mp4").read_bytes() == b"one" and (dst / "renamed.mp4").read_bytes() == b"two"


def test_cli_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["batch", str(tmp_path), str(tmp_path / "o"), "--retry-failed"])
    assert result.exit_code == 2 and "--retry-failed needs --resume" in result.output
    result = runner.invoke(main, ["batch", str(tmp_path), str(tmp_path / "o"), "--address", "ray://h:10001"])
    assert result.exit_code == 2 and "--address needs --engine ray" in result.output
    help_text = runner.invoke(main, ["batch", "--help"]).output
    for option in ("--workers", "--resume", "--include", "--exclude", "--engine", "--address", "--mode", "--hold"):
        assert option in help_text
    # Every code the batch path can end with: the errors it raises (1 for an unexpected one), click's usage code,
    # Ctrl-C and SIGTERM; none it cannot.
    documented = {int(n) for n in re.findall(r"\b\d+\b", help_text.split("Exit codes:")[1].split("Options:")[0])}
    assert documented == {0, 1, 2, InputError.exit_code, OutputError.exit_code, ModelError.exit_code,
                          ProcessingError.exit_code, 130, 143}
