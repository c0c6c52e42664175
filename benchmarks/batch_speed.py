"""Throughput of `redactor batch`: 1 and 2 local workers and the Ray engine on the same folder, and one long
recording redacted whole by one worker or split into chunks for two.

Every configuration runs `redactor batch SRC DST -q ...` as its own process into
an empty DST and is timed from start to exit, so imports, model loading in every
worker and (for Ray) starting a local Ray instance all count. The batch's own
summary, read back from the manifest's `runs` table, says how much of that was
start-up (walking, planning and starting the workers), so the steady rate is
shown too. Every output is scored against its ground truth with benchmarks.score,
so a configuration that is fast because it protects less would show it.

The folder is N clips of the crowd_720p scene (different seeds: faces 12-250 px);
the long recording is the same scene stretched to `--long-seconds`.

Run: python -m benchmarks.batch_speed [--clips 6] [--seconds 4] [--long-seconds 12] [--json out.json]
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import click

from benchmarks.score import score
from benchmarks.speed import crowd_spec, ensure_clip, machine, run_timed
from benchmarks.synth import GroundTruth
from redactor_video.batch.manifest import MANIFEST_NAME

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "benchmarks" / "out" / "batch"
REDACTOR = str(Path(sys.executable).with_name("redactor"))


@dataclass(frozen=True)
class Run:
    """One `redactor batch` process on one folder."""

    label: str
    args: tuple[str, ...]
    files: int
    frames: int
    wall_seconds: float
    startup_seconds: float
    protected: int
    face_frames: int

    @property
    def files_per_second(self) -> float:
        return self.files / self.wall_seconds

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.wall_seconds

    @property
    def steady_frames_per_second(self) -> float:
        return self.frames / max(1e-9, self.wall_seconds - self.startup_seconds)


def batch_summary(dst: Path) -> dict:
    with closing(sqlite3.connect(f"file:{dst / MANIFEST_NAME}?mode=ro", uri=True)) as db:
        (summary,) = db.execute("SELECT summary FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
    return json.loads(summary)


def measure(label: str, src: Path, truth: dict[str, GroundTruth], args: tuple[str, ...]) -> Run:
    dst = OUT_DIR / "runs" / label.replace(" ", "_").replace(",", "")
    shutil.rmtree(dst, ignore_errors=True)
    timed = run_timed([REDACTOR, "batch", str(src), str(dst), "-q", *args])
    summary = batch_summary(dst)
    if summary["failed"] or summary["done"] != len(truth):
        raise RuntimeError(f"{label}: batch did not redact every file: {summary['failed']}")
    protected = face_frames = 0
    for rel, gt in truth.items():
        report = score(src / rel, dst / rel, gt)
        if report.error is not None:
            raise RuntimeError(f"{label}: {rel}: {report.error}")
        protected += report.protected
        face_frames += report.face_frames
    # Process wall time minus the driver's own loop gives imports + planning + worker start-up.
    startup = timed.seconds - (summary["seconds"] - summary["startup_seconds"])
    return Run(label, args, summary["done"], summary["frames"], timed.seconds, startup, protected, face_frames)


def table(runs: list[Run]) -> str:
    lines = ["| configuration | files | frames | wall s | start-up s | files/s | frames/s | frames/s after start-up "
             "| faces protected |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        share = f"{100 * r.protected / r.face_frames:.2f}% ({r.protected}/{r.face_frames})" if r.face_frames else "n/a"
        lines.append(f"| {r.label} | {r.files} | {r.frames} | {r.wall_seconds:.1f} | {r.startup_seconds:.1f} "
                     f"| {r.files_per_second:.3f} | {r.frames_per_second:.2f} | {r.steady_frames_per_second:.2f} "
                     f"| {share} |")
    return "\n".join(lines)


def with_keyframes(src: Path, dst: Path, gop: int) -> None:
    """Re-encode with a keyframe every `gop` frames, as cameras write (synth's clips have one every 250)."""
    with av.open(str(src)) as inp, av.open(str(dst), mode="w", options={"video_track_timescale": "25"}) as out:
        vin = inp.streams.video[0]
        vout = out.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        vout.time_base = vout.codec_context.time_base = vin.time_base
        vout.codec_context.gop_size = gop
        vout.options = {"crf": "16", "preset": "medium"}
        for frame in inp.decode(vin):
            out.mux(vout.encode(frame))
        out.mux(vout.encode(None))


def make_folder(name: str, clips: dict[str, tuple[float, int]], gop: int = 0) -> tuple[Path, dict[str, GroundTruth]]:
    """SRC folder `name` holding each clip (rel -> (seconds, seed)), linked from a rendered cache; with `gop`,
    re-encoded with a keyframe every `gop` frames (same pictures, so the same ground truth)."""
    src = OUT_DIR / name
    truth = {}
    for rel, (seconds, seed) in clips.items():
        cached = OUT_DIR / "clips" / f"crowd_720p_{seconds:g}s_seed{seed}.mp4"
        truth[rel] = ensure_clip(crowd_spec("720p", seconds, seed), cached)
        if gop:
            keyed = cached.with_name(f"{cached.stem}_gop{gop}.mp4")
            if not keyed.exists() or keyed.stat().st_mtime < cached.stat().st_mtime:
                with_keyframes(cached, keyed, gop)
            cached = keyed
        target = src / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.link(cached, target)
    return src, truth


@click.command()
@click.option("--clips", type=click.IntRange(1, 100), default=6, show_default=True, help="Clips in the folder.")
@click.option("--seconds", type=click.FloatRange(0.2, 600), default=4.0, show_default=True, help="Length of each.")
@click.option("--long-seconds", type=click.FloatRange(0, 3600), default=12.0, show_default=True,
              help="Length of the long recording (0: skip that part).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every figure as JSON.")
def main(clips: int, seconds: float, long_seconds: float, json_path: Path | None) -> None:
    """Time `redactor batch` with 1 and 2 local workers and on Ray; print Markdown tables."""
    info = machine()
    click.echo(f"{info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB, {info['date']}, "
               f"commit {info['commit'][:10]}" + (", uncommitted changes: " + "; ".join(info["uncommitted"])
                                                   if info["uncommitted"] else ""))
    src, truth = make_folder(f"folder_{clips}x{seconds:g}s",
                             {f"cam{i % 2 + 1}/clip{i}.mp4": (seconds, i) for i in range(clips)})
    load_before = os.getloadavg()
    folder_runs = [measure(label, src, truth, args) for label, args in (
        ("local, 1 worker", ("-j", "1")),
        ("local, 2 workers", ("-j", "2")),
        ("ray (local instance), 2 workers", ("-j", "2", "--engine", "ray")),
    )]
    load_after = os.getloadavg()
    click.echo(f"\nFolder: {clips} clips of {seconds:g} s, 1280x720 at 25 fps; load average (1, 5, 15 min) "
               f"before {tuple(round(x, 2) for x in load_before)}, after {tuple(round(x, 2) for x in load_after)}\n")
    click.echo(table(folder_runs))
    everything = {"machine": info, "folder": [asdict(r) for r in folder_runs]}
    if long_seconds > 0:
        chunk = long_seconds / 3
        long_src, long_truth = make_folder(f"long_{long_seconds:g}s", {"long.mp4": (long_seconds, 100)}, gop=25)
        long_runs = [measure(label, long_src, long_truth, args) for label, args in (
            ("local, 1 worker, whole file", ("-j", "1", "--chunk-seconds", "0")),
            (f"local, 2 workers, {chunk:g} s chunks", ("-j", "2", "--chunk-seconds", f"{chunk:g}")),
        )]
        click.echo(f"\nOne {long_seconds:g} s recording, 1280x720 at 25 fps, a keyframe every second:\n")
        click.echo(table(long_runs))
        everything["long"] = [asdict(r) for r in long_runs]
    if json_path is not None:
        json_path.write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
