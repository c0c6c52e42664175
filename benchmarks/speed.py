"""End-to-end speed and recall of `redactor redact` against the floor and against deface, on the same clips.

For each clip size this runs, one after another on the same machine:

- the floor: decode + RGB conversion + encode with PyAV and redactor's default
  encoder settings, nothing in between; no redaction tool can be faster;
- `redactor redact -q` with default settings, then with each other detector
  and with the small-face sweep every frame and every 2nd frame at 25 fps (`--sweep-rate 25`, `12.5`);
- deface with its default detection settings and our encoder settings
  (see benchmarks/peers.py).

Every tool runs as its own process and is timed from start to exit, so model
loading and start-up count; a second run on a one-frame cut of the clip shows
how much of the time that fixed cost is. Each tool first runs once, untimed, on
the one-frame cut, so Numba's compile cache and the OS file cache are warm.
CPU seconds (user + system of the process and its children) are reported too:
on a shared machine they move far less than wall time. Each output is scored against the synthetic ground truth
with benchmarks.score, and redactor's own per-stage seconds are read from its
`--report` JSON.

Run: python -m benchmarks.speed [--seconds 10] [--sizes 720p,1080p] [--json out.json]
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from benchmarks import peers
from benchmarks.score import (IDENTITY_EVERY, IDENTITY_MATCH, IDENTITY_MIN_VISIBLE, IDENTITY_MIN_WIDTH, IdentityCheck,
                              ScoreReport, score)
from benchmarks.synth import ClipSpec, FaceSpec, GroundTruth, crowd_720p, make_clip
from redactor_video.detect import DETECTOR_CHOICES
from redactor_video.media.sink import EncodeSettings
from redactor_video.pipeline import RedactSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "benchmarks" / "out" / "speed"
SYNTH_SOURCE = Path(__file__).resolve().parent / "synth.py"
SIZES = {"720p": 1.0, "1080p": 1.5}
"""Clip sizes as scale factors of the 1280x720 crowd preset (faces and paths scale with the frame)."""


# ---------------------------------------------------------------- clips


def crowd_spec(size: str, seconds: float, seed: int = 0) -> ClipSpec:
    """The crowd_720p scene scaled to `size` and stretched to `seconds` (faces walk slower, same mix of sizes)."""
    base = crowd_720p(seed)
    k = SIZES[size]
    n = max(1, round(seconds * base.fps))
    t = n / base.n_frames

    def scale(face: FaceSpec) -> FaceSpec:
        (ax, ay), (bx, by) = face.path
        return dataclasses.replace(
            face, width_px_start=face.width_px_start * k, width_px_end=face.width_px_end * k,
            path=((ax * k, ay * k), (bx * k, by * k)),
            start_frame=round(face.start_frame * t), end_frame=max(round(face.start_frame * t) + 1,
                                                                    round(face.end_frame * t)))

    return dataclasses.replace(base, width=round(base.width * k), height=round(base.height * k), n_frames=n,
                               faces=tuple(scale(f) for f in base.faces))


def ensure_clip(spec: ClipSpec, path: Path) -> GroundTruth:
    """Render the clip unless an up-to-date one (newer than synth.py, same spec) is already there."""
    gt_path = Path(f"{path}.gt.json")
    spec_path = Path(f"{path}.spec.json")
    spec_text = json.dumps(dataclasses.asdict(spec), sort_keys=True)
    fresh = (path.exists() and gt_path.exists() and spec_path.exists() and spec_path.read_text() == spec_text
             and gt_path.stat().st_mtime > SYNTH_SOURCE.stat().st_mtime)
    if fresh:
        return GroundTruth.load(gt_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    gt = make_clip(spec, path)
    spec_path.write_text(spec_text)
    return gt


# ---------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timed:
    """One process run: wall seconds and CPU seconds (user + system, with its waited-for children)."""

    seconds: float
    cpu_seconds: float


def run_timed(command: list[str]) -> Timed:
    """Run `command` from the repository root to completion; raise with its stderr if it fails.

    `os.wait4` gives this one child's resource use (RUSAGE_CHILDREN would mix all runs).
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read() if proc.stderr is not None else b""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} exited {proc.returncode}: {stderr.decode(errors='replace')[-2000:]}")
    return Timed(seconds, usage.ru_utime + usage.ru_stime)


FLOOR_SCRIPT = """
import sys
import av
import cv2
src, dst, codec, crf, preset = sys.argv[1:]
with av.open(src) as inp, av.open(dst, mode="w") as out:
    vin = inp.streams.video[0]
    vin.thread_type = "AUTO"
    vout = out.add_stream(codec, rate=vin.average_rate)
    vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
    vout.time_base = vout.codec_context.time_base = vin.time_base
    vout.options = {"crf": crf, "preset": preset}
    for frame in inp.decode(vin):
        rgb = frame.to_ndarray(format="rgb24")
        new = av.VideoFrame.from_ndarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
        new.pts, new.time_base = frame.pts, frame.time_base
        out.mux(vout.encode(new))
    out.mux(vout.encode(None))
"""
"""The floor: decode, convert to RGB and back, encode with redactor's encoder settings. Only PyAV and
OpenCV (which converts RGB to 4:2:0, as redactor's sink does) are imported, so its start-up is theirs alone."""


# ---------------------------------------------------------------- tools


@dataclass(frozen=True)
class Tool:
    """Something to time: a name for the table and how to build its command for a clip."""

    name: str
    kind: str  # "floor", "redactor" or "deface"
    args: tuple[str, ...] = ()

    def command(self, src: Path, dst: Path, report: Path | None) -> list[str]:
        if self.kind == "floor":
            enc = EncodeSettings()
            return [sys.executable, "-c", FLOOR_SCRIPT, str(src), str(dst), enc.codec, str(enc.crf), enc.preset]
        if self.kind == "deface":
            return [str(peers.ensure_deface()), str(src), "-o", str(dst), *peers.deface_args(), *self.args]
        command = [str(Path(sys.executable).parent / "redactor"), "redact", str(src), "-o", str(dst), "-q",
                   "--overwrite", *self.args]
        return command + (["--report", str(report)] if report is not None else [])


def default_tools(extra: tuple[str, ...] = (), alternatives: bool = True) -> list[Tool]:
    """Floor, redactor's defaults, every other detector and sweeps every 1 and 2 frames (unless not
    `alternatives`), extra flag sets, deface.

    deface runs twice: as installed (CenterFace on onnxruntime) and with `--backend opencv`,
    the same model on OpenCV's DNN module (redactor runs it on OpenVINO).
    """
    default = RedactSettings()
    tools = [Tool("floor (PyAV decode+encode)", "floor"), Tool("redactor (defaults)", "redactor")]
    if alternatives:
        tools += [Tool(f"redactor --detector {d}", "redactor", ("--detector", d))
                  for d in DETECTOR_CHOICES if d != default.detector]
        tools += [Tool(f"redactor --sweep-rate {r:g}", "redactor", ("--sweep-rate", str(r)))
                  for r in (25.0, 12.5) if r != default.sweep_rate]
    tools += [Tool(f"redactor {flags}", "redactor", tuple(shlex.split(flags))) for flags in extra]
    tools.append(Tool(f"deface {peers.DEFACE_VERSION}", "deface"))
    tools.append(Tool(f"deface {peers.DEFACE_VERSION} --backend opencv", "deface", ("--backend", "opencv")))
    return tools


@dataclass
class Result:
    """One tool on one clip: timing, start-up cost, recall and, for redactor, its stage seconds."""

    tool: str
    command: str
    frames_in: int
    frames_out: int
    seconds: float
    cpu_seconds: float
    startup_seconds: float
    score: dict
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames_out / self.seconds


def measure(tool: Tool, clip: Path, one_frame: Path, out_dir: Path, frames_in: int, gt: GroundTruth,
            identity: IdentityCheck | None = None) -> Result:
    """Time the tool on the clip and on its one-frame cut, then score its output."""
    slug = "".join(c if c.isalnum() else "_" for c in tool.name).strip("_")
    dst = out_dir / f"{clip.stem}.{slug}.mp4"
    report = out_dir / f"{clip.stem}.{slug}.json" if tool.kind == "redactor" else None
    for path in (dst, report):
        if path is not None:
            path.unlink(missing_ok=True)
    command = tool.command(clip, dst, report)
    timed = run_timed(command)
    startup_dst = out_dir / f"{one_frame.stem}.{slug}.mp4"
    startup_dst.unlink(missing_ok=True)
    startup = run_timed(tool.command(one_frame, startup_dst, None))
    stages = json.loads(report.read_text())["summary"]["stage_seconds"] if report is not None else {}
    scored: ScoreReport = score(clip, dst, gt, identity=identity)
    return Result(tool.name, shlex.join(command), frames_in, peers.count_frames(dst), timed.seconds,
                  timed.cpu_seconds, startup.seconds, scored.to_dict(), stages)


# ---------------------------------------------------------------- tables


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def speed_table(results: list[Result]) -> str:
    """Wall-clock fps and CPU seconds per frame, each as a ratio to the floor and to deface.

    deface is its best row: the fastest for fps, the cheapest for CPU. CPU cost
    ratios are "how many times the work", so > 1 means more expensive.
    """
    floor = next(r for r in results if r.tool.startswith("floor"))
    defaces = [r for r in results if r.tool.startswith("deface")]

    def cpu(r: Result) -> float:
        return r.cpu_seconds / r.frames_out

    fast = max(defaces, key=lambda r: r.fps, default=None)
    cheap = min(defaces, key=cpu, default=None)
    lines = ["| tool | frames in/out | wall s | fps | fps x floor | fps x deface | CPU s / frame | CPU x floor | "
             "CPU x deface | start-up s (1 frame) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        vs_fast = f"{r.fps / fast.fps:.2f}" if fast else "-"
        vs_cheap = f"{cpu(r) / cpu(cheap):.2f}" if cheap else "-"
        lines.append(f"| {r.tool} | {r.frames_in}/{r.frames_out} | {r.seconds:.1f} | {r.fps:.2f} | "
                     f"{r.fps / floor.fps:.2f} | {vs_fast} | {cpu(r):.3f} | {cpu(r) / cpu(floor):.1f} | {vs_cheap} | "
                     f"{r.startup_seconds:.1f} |")
    return "\n".join(lines)


def recall_table(results: list[Result]) -> str:
    bins = list(results[0].score["by_width"])
    lines = ["| tool | recall | " + " | ".join(f"{b} px" for b in bins)
             + " | tracks ever clear | longest clear run (frames) | background changed | identity kept |",
             "|---|---:|" + "---:|" * len(bins) + "---:|---:|---:|---:|"]
    for r in results:
        s = r.score
        cells = [_pct(s["by_width"][b]["recall"]) for b in bins]
        longest = max((t["longest_clear_run"] for t in s["tracks"]), default=0)
        error = f" (scorer: {s['error']})" if s.get("error") else ""
        lines.append(f"| {r.tool}{error} | {_pct(s['recall'])} | " + " | ".join(cells)
                     + f" | {s['tracks_ever_clear']} of {len(s['tracks'])} | {longest} | "
                     f"{_pct(s['background_changed'])} | {_identity(s)} |")
    face_frames = " | ".join(f"{b}: {results[0].score['by_width'][b]['face_frames']}" for b in bins)
    return ("\n".join(lines) + f"\n\nFace-frames per width bin: {face_frames}. Identity kept: face-frames >= "
            f"{IDENTITY_MIN_WIDTH:.0f} px, {IDENTITY_MIN_VISIBLE:.0%} visible (every {IDENTITY_EVERY}th frame) whose "
            f"dlib descriptor after redaction is still within {IDENTITY_MATCH} of the original's (benchmarks/score.py).")


def _identity(s: dict) -> str:
    checked = s.get("identity_checked", 0)
    return f"{s['identity_kept']} of {checked}" if checked else "n/a"


def stage_table(results: list[Result]) -> str:
    """redactor's own stage clocks; stages run in three threads, so they overlap and do not sum to wall time."""
    timed = [r for r in results if r.stage_seconds]
    if not timed:
        return ""
    stages = sorted({k for r in timed for k in r.stage_seconds}, key=lambda k: -timed[0].stage_seconds.get(k, 0))
    lines = ["| tool | wall s | " + " | ".join(f"{k} s" for k in stages) + " | "
             + " | ".join(f"{k} ms/frame" for k in stages) + " |",
             "|---|---:|" + "---:|" * (2 * len(stages))]
    for r in timed:
        secs = [r.stage_seconds.get(k, 0.0) for k in stages]
        lines.append(f"| {r.tool} | {r.seconds:.1f} | " + " | ".join(f"{s:.2f}" for s in secs) + " | "
                     + " | ".join(f"{1000 * s / r.frames_out:.1f}" for s in secs) + " |")
    return "\n".join(lines)


def tables(size: dict) -> str:
    """All tables for one clip size, from the dict that --json stores (so a saved run can be re-printed)."""
    names = {f.name for f in dataclasses.fields(Result)}
    results = [Result(**{k: v for k, v in r.items() if k in names}) for r in size["results"]]
    return (f"\n### {size['width']}x{size['height']}, {size.get('fps', 25)} fps, {size['frames']} frames "
            f"({Path(size['clip']).name})\n\n"
            f"Load average (1, 5, 15 min) before: {tuple(size['load_before'])}, after: {tuple(size['load_after'])}\n\n"
            + speed_table(results) + "\n\n" + recall_table(results) + "\n\n" + stage_table(results))


def machine() -> dict:
    """Where and on what code the figures were taken (the CPU may be shared: see the load averages)."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()

    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(mem / 2**20, 1), "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": git("rev-parse", "HEAD"),
            "uncommitted": git("status", "--porcelain", "--", "redactor", "benchmarks").splitlines()}


@click.command()
@click.option("--seconds", type=click.FloatRange(0.2, 600), default=10.0, show_default=True, help="Clip length.")
@click.option("--sizes", default="720p,1080p", show_default=True, help=f"Comma-separated, from {', '.join(SIZES)}.")
@click.option("--seed", type=int, default=0, show_default=True, help="crowd_720p scene seed.")
@click.option("--variant", "variants", multiple=True,
              help="Extra redactor flags to time, e.g. --variant '--centerface-scale 2' (repeatable).")
@click.option("--no-deface", is_flag=True, help="Skip the peer (no venv is built).")
@click.option("--no-alternatives", is_flag=True,
              help="Only the floor, the defaults, --variant rows and deface (no other detectors or periods).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every figure, command and score as JSON.")
@click.option("--no-identity", is_flag=True, help="Skip the face-descriptor identity check (saves ~20 s a row).")
@click.option("--tables-from", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Measure nothing: re-print the tables of a run saved with --json.")
def main(seconds: float, sizes: str, seed: int, variants: tuple[str, ...], no_deface: bool,
         no_alternatives: bool, json_path: Path | None, no_identity: bool, tables_from: Path | None) -> None:
    """Time the floor, redactor and deface on the same synthetic clips; print Markdown tables."""
    if tables_from is not None:
        saved = json.loads(tables_from.read_text())
        for size in saved["sizes"].values():
            click.echo(tables(size))
        return
    names = [s.strip() for s in sizes.split(",") if s.strip()]
    for name in names:
        if name not in SIZES:
            raise click.BadParameter(f"{name!r}; choose from {', '.join(SIZES)}", param_hint="--sizes")
    tools = [t for t in default_tools(variants, not no_alternatives) if not (no_deface and t.kind == "deface")]
    info = machine()
    if not no_deface:
        peers.ensure_deface()
        info["deface"], info["deface_args"] = peers.deface_versions(), peers.deface_args()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    identity = None if no_identity else IdentityCheck()
    everything: dict = {"machine": info, "seconds": seconds, "seed": seed, "sizes": {}}
    click.echo(f"{info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB, {info['date']}, "
               f"commit {info['commit'][:10]}" + (", uncommitted changes: " + "; ".join(info["uncommitted"])
                                                   if info["uncommitted"] else ""))
    for name in names:
        spec = crowd_spec(name, seconds, seed)
        clip = OUT_DIR / f"crowd_{name}_{seconds:g}s_seed{seed}.mp4"
        gt = ensure_clip(spec, clip)
        one_frame = OUT_DIR / f"crowd_{name}_1frame_seed{seed}.mp4"
        ensure_clip(dataclasses.replace(spec, n_frames=1), one_frame)
        for tool in tools:  # untimed: fills JIT and file caches, so no row pays for them
            run_timed(tool.command(one_frame, OUT_DIR / "warmup.mp4", None))
        load_before = os.getloadavg()
        results = [measure(t, clip, one_frame, OUT_DIR, spec.n_frames, gt, identity) for t in tools]
        load_after = os.getloadavg()
        size = {"clip": str(clip), "width": spec.width, "height": spec.height, "fps": spec.fps,
                "frames": spec.n_frames, "load_before": load_before, "load_after": load_after,
                "results": [dataclasses.asdict(r) for r in results]}
        click.echo(tables(size))
        everything["sizes"][name] = size
    if json_path is not None:
        json_path.write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
