"""Subject access request search speed on a 720p archive, as a multiple of real time.

The archive is `--files` recordings of `--seconds` each at 1280x720, 25 fps,
composed from the public-domain portraits over panning photographs
(benchmarks.synth): strangers (biden, the astronaut) walk through every file
at 60-140 px, with empty stretches between them, and the requester walks
through the first and the third file as obama2 and obama3. Files are H.264
from libx264 preset medium, crf 23 (keyframe every 250 frames, B-frames on).

Measured, one after another in this process:

- the decode floor: every frame decoded, none converted or analysed (no search
  that looks at the video can beat it);
- the search (`redactor_video.sar.search.Scanner`, default ScanSettings) with obama.jpg
  enrolled: wall and CPU seconds, frames examined, embeddings, and the
  requester's sightings against the ground truth;
- with `--export`, the whole `redactor sar` run (search, export of the segments
  through the default redaction pipeline, package), for scale.

Run: python -m benchmarks.sar_speed [--files 4] [--seconds 30] [--export] [--markdown]
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import time
from datetime import date
from pathlib import Path
from typing import Any

import av
import click
import numpy as np

from benchmarks.synth import ClipSpec, FaceSpec, GroundTruth, make_clip
from redactor_video.detect import create_detector
from redactor_video.pipeline import RedactSettings
from redactor_video.recognise.embedder import Embedder
from redactor_video.recognise.keys import Key
from redactor_video.recognise.matcher import MatchPolicy
from redactor_video.recognise.watchlist import enrol_photo
from redactor_video.sar import SubjectRequest, answer
from redactor_video.sar.archive import probe
from redactor_video.sar.package import PackageSettings
from redactor_video.sar.search import Scanner, ScanSettings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).resolve().parent / "out" / "sar_speed"
FPS = 25
REQUESTER = ("obama2", "obama3")


def data_dir() -> Path:
    for candidate in (DATA, Path("/work/shared/data")):
        if (candidate / "obama.jpg").is_file():
            return candidate
    raise FileNotFoundError("real face photos not found in ../shared/data")


def recording_spec(k: int, seconds: float) -> ClipSpec:
    """File k: three strangers passing at different times in lanes; the requester too in files 0 and 2."""
    n = round(seconds * FPS)
    rng = np.random.default_rng([k, 5])

    def window(a: float, b: float) -> tuple[int, int]:
        return round(a * n), max(round(a * n) + 1, round(b * n))

    def walk(y: float, left_to_right: bool) -> tuple[tuple[float, float], tuple[float, float]]:
        x0, x1 = (float(rng.uniform(80, 200)), float(rng.uniform(1000, 1180)))
        return ((x0, y), (x1, y + 10)) if left_to_right else ((x1, y), (x0, y + 10))

    faces = [
        FaceSpec("biden", 110, 140, walk(560, True), *window(0.1, 0.45)),
        FaceSpec("astronaut", 60, 72, walk(330, False), *window(0.35, 0.8)),
        FaceSpec("biden", 70, 90, walk(330, True), *window(0.85, 1.0)),
    ]
    if k % 2 == 0:
        photo = REQUESTER[(k // 2) % 2]
        faces.append(FaceSpec(photo, 80, 120, walk(110, k % 4 == 0), *window(0.3, 0.6), (0, 4), (1.0, 0.9)))
    backgrounds = ("mosaic", "coffee", "rocket", "chelsea", "motorcycle")
    return ClipSpec(1280, 720, FPS, n, tuple(faces), seed=k, background=backgrounds[k % len(backgrounds)])


def ensure_archive(folder: Path, files: int, seconds: float) -> list[tuple[Path, GroundTruth]]:
    """Render the archive once; reuse files already rendered for the same length."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(files):
        path = folder / f"CAM{k + 1}_20261115_{10 + k:02d}0000_{round(seconds)}s.mp4"
        gt_path = Path(f"{path}.gt.json")
        if not (path.exists() and gt_path.exists()):
            click.echo(f"rendering {path.name} ...", err=True)
            make_clip(recording_spec(k, seconds), path, crf=23)
        out.append((path, GroundTruth.load(gt_path)))
    return out


def decode_floor(path: Path) -> float:
    """Seconds to decode every frame of `path` (threaded, as the search decodes), converting none."""
    started = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            pass
    return time.perf_counter() - started


def truth_span(gt: GroundTruth) -> tuple[float, float] | None:
    frames = [row[0] for t in gt.tracks if t.photo in REQUESTER for row in t.frames]
    return (min(frames) / FPS, max(frames) / FPS) if frames else None


def measure(files: int, seconds: float, export: bool) -> dict[str, Any]:
    archive = ensure_archive(OUT / "archive", files, seconds)
    embedder = Embedder()
    with create_detector("centerface", threshold=0.5) as detector:
        template = enrol_photo(data_dir() / "obama.jpg", detector, embedder)[None, :]
    settings = ScanSettings()
    rows = []
    with Scanner(settings, embedder) as scanner:
        for path, gt in archive:
            floor = decode_floor(path)
            rec = probe(path)
            cpu, wall = time.process_time(), time.perf_counter()
            result = scanner.scan(rec, (0.0, rec.duration), template)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            rows.append({"file": path.name, "seconds": round(rec.duration, 2), "decode_floor_s": round(floor, 2),
                         "scan_s": round(wall, 2), "scan_cpu_s": round(cpu, 2), "samples": result.samples,
                         "tracks": result.tracks, "embeddings": result.embeddings,
                         "seen": [[round(a, 2), round(b, 2)] for a, b in result.seen], "truth": truth_span(gt),
                         "load_avg": round(os.getloadavg()[0], 2)})
            click.echo(f"{path.name}: {rec.duration / wall:.1f}x real time (floor {rec.duration / floor:.1f}x), "
                       f"seen {rows[-1]['seen']} truth {rows[-1]['truth']}", err=True)
    video = sum(r["seconds"] for r in rows)
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.processor() or platform.machine()}, "
                                                      f"{os.cpu_count()} cores", "settings": settings.to_dict(),
        "files": rows, "video_seconds": video,
        "scan_speed": video / sum(r["scan_s"] for r in rows),
        "scan_cpu_speed": video / sum(r["scan_cpu_s"] for r in rows),
        "floor_speed": video / sum(r["decode_floor_s"] for r in rows),
    }
    if export:
        package = OUT / f"package-{secrets.token_hex(3)}"
        request = SubjectRequest("R-BENCH", date(2026, 11, 20))
        key = Key(secrets.token_bytes(32), "benchmark")
        started = time.perf_counter()
        outcome = answer(request, [data_dir() / "obama.jpg"], [p for p, _ in archive], package, key,
                         OUT / f"{package.name}.audit.jsonl",
                         PackageSettings(ScanSettings(), RedactSettings(), MatchPolicy(), False))
        results["export"] = {"seconds": round(time.perf_counter() - started, 1), "clips": len(outcome.clips),
                             "clip_seconds": round(sum(c.last_offset - c.first_offset for c in outcome.clips), 1)}
    return results


def report_markdown(r: dict[str, Any]) -> str:
    """The 'Subject access requests' section for benchmarks/RESULTS.md."""
    s, policy = r["settings"], MatchPolicy()
    lines = ["## Subject access requests", "",
             f"`python -m benchmarks.sar_speed` ({r['date']}, {r['machine']}, shared with other work); "
             f"{len(r['files'])} recordings of 1280x720 at {FPS} fps, {r['video_seconds']:.0f} s in all; "
             "obama.jpg enrolled; strangers in every file, the requester (obama2/obama3) in files 1 and 3.", "",
             f"Search settings: BlazeFace on {s['sample_rate']:g} frames/s, CenterFace at scale {s['sweep_scale']} "
             f"on {s['sweep_rate']:g} frame/s, at most {s['samples_per_track']} embeddings per track "
             f"(faces >= {policy.min_face_px:g} px), match threshold {policy.threshold} (the watchlist's).", "",
             "| file | length s | decode floor | search | search (CPU time) | frames examined | tracks | "
             "embeddings | requester seen (s) | truth (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for f in r["files"]:
        seen = ", ".join(f"{a:.1f}-{b:.1f}" for a, b in f["seen"]) or "-"
        truth = f"{f['truth'][0]:.1f}-{f['truth'][1]:.1f}" if f["truth"] else "-"
        lines.append(f"| {f['file']} | {f['seconds']:.0f} | {f['seconds'] / f['decode_floor_s']:.1f}x | "
                     f"{f['seconds'] / f['scan_s']:.1f}x | {f['seconds'] / f['scan_cpu_s']:.1f}x | {f['samples']} | "
                     f"{f['tracks']} | {f['embeddings']} | {seen} | {truth} |")
    loads = [f["load_avg"] for f in r["files"]]
    lines += ["", f"**Search: {r['scan_speed']:.1f}x real time** (wall clock; {r['scan_cpu_speed']:.1f}x per CPU "
              f"second, all threads counted), against a decode-only floor of {r['floor_speed']:.1f}x; 1-minute load "
              f"average {min(loads):.1f}-{max(loads):.1f} during the search."]
    if "export" in r:
        e = r["export"]
        lines += ["", f"The whole `redactor sar` run (search, then {e['clips']} clip(s), {e['clip_seconds']} s of "
                  f"footage, through the default redaction pipeline, and the package) took {e['seconds']} s."]
    return "\n".join(lines + [""])


@click.command()
@click.option("--files", type=click.IntRange(1, 20), default=4, show_default=True)
@click.option("--seconds", type=click.FloatRange(5, 600), default=30.0, show_default=True)
@click.option("--export", is_flag=True, help="Also time the whole run, export and package included.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--markdown", is_flag=True, help="Print the RESULTS.md section.")
@click.option("--tables-from", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Measure nothing; print the section of a run saved with --json.")
def main(files: int, seconds: float, export: bool, json_path: Path | None, markdown: bool,
         tables_from: Path | None) -> None:
    """Measure the subject access request search on a 720p archive."""
    if tables_from is not None:
        click.echo(report_markdown(json.loads(tables_from.read_text())))
        return
    results = measure(files, seconds, export)
    if json_path is not None:
        json_path.write_text(json.dumps(results, indent=1))
    click.echo(f"search {results['scan_speed']:.1f}x real time, decode floor {results['floor_speed']:.1f}x", err=True)
    if markdown:
        click.echo(report_markdown(results))


if __name__ == "__main__":
    main()
