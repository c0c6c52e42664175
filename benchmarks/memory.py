"""Peak memory of `redactor redact` on a 1080p clip and on one ten times longer.

A streaming redactor's memory must not grow with the input: it holds a few
queued frames and the look-ahead buffer, never the video. The long clip is the
short one's H.264 packets repeated with shifted timestamps (no re-encoding), so
both clips have the same content per second and only their length differs.

Resident memory is read from /proc/<pid>/status while the process runs: VmHWM
(the kernel's high-water mark of resident memory, which survives between polls)
for the peak, VmRSS for the curve over time. `ru_maxrss` from wait4 would not
do: a child inherits its parent's high-water mark across fork and exec.

Run: python -m benchmarks.memory [--seconds 4] [--times 10] [--size 1080p] [--flags '--lookahead 2'] [--long-only]
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import click

from benchmarks.speed import OUT_DIR, REPO_ROOT, SIZES, crowd_spec, ensure_clip, machine

POLL_SECONDS = 0.05
RSS_POINTS = (0.25, 0.5, 0.75, 0.9)
"""Where in the run the RSS curve is shown (the end is shutdown, already freeing memory)."""


def loop_clip(src: Path, dst: Path, times: int) -> int:
    """Write `src`'s video packets `times` times over into `dst`, shifting pts/dts; returns frames written.

    The source must start with a keyframe and be closed-GOP (as x264's default
    output from benchmarks.synth is), so every repetition decodes on its own.
    """
    with av.open(str(src)) as inp:
        packets = [p for p in inp.demux(inp.streams.video[0]) if p.dts is not None]
        stream = inp.streams.video[0]
        span = max(p.pts + p.duration for p in packets) - min(p.pts for p in packets)
        with av.open(str(dst), mode="w", options={"video_track_timescale": str(int(1 / stream.time_base))}) as out:
            vout = out.add_stream_from_template(stream)
            for i in range(times):
                for p in packets:
                    q = av.Packet(bytes(p))
                    q.pts, q.dts, q.duration = p.pts + i * span, p.dts + i * span, p.duration
                    q.is_keyframe, q.time_base, q.stream = p.is_keyframe, p.time_base, vout
                    out.mux(q)
    return len(packets) * times


@dataclass(frozen=True)
class MemoryRun:
    """One run's peak resident memory and the RSS curve sampled over its life."""

    clip: str
    frames: int
    seconds: float
    peak_bytes: int
    rss_over_run: tuple[int, int, int, int]


def _status_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def measure(clip: Path, frames: int, out: Path, flags: tuple[str, ...] = ()) -> MemoryRun:
    """Run the CLI on `clip`, polling its resident memory until it exits."""
    command = [str(Path(sys.executable).parent / "redactor"), "redact", str(clip), "-o", str(out), "-q", "--overwrite",
               *flags]
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples: list[tuple[float, int]] = []
    peak = 0
    while proc.poll() is None:
        try:
            status = _status_kib(proc.pid)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            break
        if status:
            peak = max(peak, status.get("VmHWM", 0) * 1024)
            samples.append((time.perf_counter() - t0, status.get("VmRSS", 0) * 1024))
        time.sleep(POLL_SECONDS)
    stderr = proc.communicate()[1]
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"redactor exited {proc.returncode}: {stderr.decode(errors='replace')[-2000:]}")
    if not samples:
        raise RuntimeError("redactor finished before its memory could be read; use a longer clip")

    def rss_at(fraction: float) -> int:
        """The sample nearest to that fraction of the run."""
        return min(samples, key=lambda s: abs(s[0] - fraction * seconds))[1]

    return MemoryRun(clip.name, frames, seconds, peak, tuple(rss_at(f) for f in RSS_POINTS))


def markdown(runs: list[MemoryRun]) -> str:
    mib = 2**20
    lines = ["| clip | frames | wall s | peak RSS MiB | RSS at 25% / 50% / 75% / 90% of the run, MiB |",
             "|---|---:|---:|---:|---|"]
    for r in runs:
        curve = " / ".join(f"{x / mib:.0f}" for x in r.rss_over_run)
        lines.append(f"| {r.clip} | {r.frames} | {r.seconds:.1f} | {r.peak_bytes / mib:.0f} | {curve} |")
    return "\n".join(lines)


@click.command()
@click.option("--seconds", type=click.FloatRange(0.5, 60), default=4.0, show_default=True, help="Short clip length.")
@click.option("--times", type=click.IntRange(2, 100), default=10, show_default=True,
              help="The long clip is the short one repeated this many times.")
@click.option("--size", type=click.Choice(list(SIZES)), default="1080p", show_default=True)
@click.option("--flags", default="", help="redactor redact flags to measure, e.g. '--lookahead 2' (default: none).")
@click.option("--long-only", is_flag=True, help="Skip the short clip (the long one's peak is the one that wanders).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(seconds: float, times: int, size: str, flags: str, long_only: bool, json_path: Path | None) -> None:
    """Peak RSS of `redactor redact` on a short clip and on one `times` longer."""
    info = machine()
    spec = crowd_spec(size, seconds)
    short = OUT_DIR / f"crowd_{size}_{seconds:g}s_seed0.mp4"
    ensure_clip(spec, short)
    long = OUT_DIR / f"crowd_{size}_{seconds:g}s_x{times}.mp4"
    long_frames = loop_clip(short, long, times)
    one_frame = OUT_DIR / f"crowd_{size}_1frame_seed0.mp4"
    ensure_clip(dataclasses.replace(spec, n_frames=1), one_frame)
    measure(one_frame, 1, OUT_DIR / "memory_warmup.mp4")  # a first run compiles Numba's kernels: not ours to count
    extra = tuple(shlex.split(flags))
    runs = [] if long_only else [measure(short, spec.n_frames, OUT_DIR / "memory_short.mp4", extra)]
    runs.append(measure(long, long_frames, OUT_DIR / "memory_long.mp4", extra))
    click.echo(f"{info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB, {info['date']}; "
               f"{spec.width}x{spec.height}, redactor {flags or 'defaults'}\n")
    click.echo(markdown(runs))
    if json_path is not None:
        json_path.write_text(json.dumps({"machine": info, "runs": [asdict(r) for r in runs]}, indent=1))


if __name__ == "__main__":
    main()
