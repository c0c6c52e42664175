"""Watchlist recognition on real faces: the evidence behind the match threshold.

Four measurements, all with obama.jpg enrolled (the only enrolment photo):

1. photos: descriptor distances from obama.jpg to the other real photos.
2. sizes: the same faces composited into H.264 video at 32-128 px, found by the
   detector and embedded; per-sample distances by face width, and the share of
   samples each threshold accepts (same person: higher is better; strangers:
   must be zero).
3. scenes: composite clips where obama2/obama3 move among strangers, run
   through the full pipeline: share of the watchlist person's frames (face >=
   40 px) left clear, and share of strangers' frames left clear (must be 0).
4. strangers: clips crowded with short-lived stranger tracks; false matches
   per thousand tracks at the chosen threshold.

    python -m benchmarks.recognition [--out benchmarks/out/recognition] [--json results.json]

Only two stranger identities (biden, the astronaut) are available as real
public-domain faces here, so the false-match count shows the margin on these
faces, not a false-match rate for a population.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import av
import click
import numpy as np

from benchmarks.score import compare_face
from benchmarks.synth import ClipSpec, FaceSpec, GroundTruth, make_clip
from redactor_video.detect import create_detector
from redactor_video.files.jobs import redact_file
from redactor_video.pipeline import Pipeline, RedactSettings
from redactor_video.recognise import MatchPolicy, build_recogniser
from redactor_video.recognise.embedder import Embedder
from redactor_video.recognise.keys import generate_key, load_key
from redactor_video.recognise.matcher import DEFAULT_THRESHOLD, MAX_THRESHOLD
from redactor_video.recognise.watchlist import enrol_photo, new_entry, write_entries
from redactor_video.geometry import iou_matrix

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
WATCHLIST_PHOTOS = ("obama2", "obama3")
STRANGERS = ("biden", "astronaut")
MIN_WIDTH = 40
THRESHOLDS = (0.4, 0.45, 0.5, 0.55, 0.6)
WIDTHS = (32, 40, 48, 64, 96, 128)


def data_dir() -> Path:
    """The real photos: ../shared/data beside the repo (CI) or /work/shared/data."""
    for candidate in (DATA, Path("/work/shared/data")):
        if (candidate / "obama.jpg").is_file():
            return candidate
    raise FileNotFoundError("real face photos not found in ../shared/data")


def watchlist_scene(seed: int = 0, n_frames: int = 48) -> ClipSpec:
    """640x360 at 12 fps: obama2 and obama3 (56-110 px) walk in lanes among biden (twice) and the astronaut.

    Three horizontal lanes keep faces near each other but never overlapping (an
    overlap makes the matcher mask a confirmed face until it is re-checked, which
    is measured separately); the seed jitters positions and speeds.
    """
    rng = np.random.default_rng([seed, 7])

    def j(x: float, y: float) -> tuple[float, float]:
        return (x + float(rng.uniform(-20, 20)), y + float(rng.uniform(-6, 6)))

    faces = (
        FaceSpec("obama2", 64, 100, (j(90, 75), j(540, 80)), 0, n_frames, (0, 6), (1.0, 0.9)),
        FaceSpec("obama3", 56, 84, (j(80, 185), j(260, 185)), 6, n_frames, (3, -3)),
        FaceSpec("astronaut", 52, 60, (j(600, 185), j(440, 185)), 4, n_frames, 0, (0.9, 1.1)),
        FaceSpec("biden", 96, 88, (j(580, 295), j(320, 295)), 0, n_frames, (-4, 2)),
        FaceSpec("biden", 46, 54, (j(40, 300), j(180, 300)), 18, n_frames, 0),
    )
    return ClipSpec(640, 360, 12, n_frames, faces, seed=seed)


def stranger_crowd(seed: int, n_frames: int = 144, life: int = 12) -> ClipSpec:
    """Stranger faces (48-84 px) living `life` frames each in a 3x3 grid of a 640x360 frame.

    A cell is reused only after two idle seconds, longer than the tracker's hold,
    so every face is a track of its own and is judged on its own.
    """
    rng = np.random.default_rng([seed, 11])
    faces = []
    for period in range(n_frames // life):
        for cell in range(period % 3, 9, 3):
            cx, cy = 107 + 213 * (cell % 3), 60 + 120 * (cell // 3)
            w = float(rng.uniform(48, 84))
            a = (cx + float(rng.uniform(-40, 40)), cy + float(rng.uniform(-6, 6)))
            b = (a[0] + float(rng.uniform(-25, 25)), a[1] + float(rng.uniform(-4, 4)))
            faces.append(FaceSpec(STRANGERS[(cell + period + seed) % 2], w, w * float(rng.uniform(0.9, 1.1)), (a, b),
                                  period * life, (period + 1) * life, float(rng.uniform(-10, 10)),
                                  float(rng.uniform(0.75, 1.2))))
    return ClipSpec(640, 360, 12, n_frames, tuple(faces), seed=seed)


def enrolled_watchlist(folder: Path) -> tuple[Path, Path]:
    """A key and a watchlist with obama.jpg enrolled on basis consent; made once per folder."""
    key_file, watchlist = folder / "bench.key", folder / "bench.watchlist"
    if not key_file.exists():
        generate_key(key_file)
    if not watchlist.exists():
        with create_detector("centerface", threshold=0.5) as detector:
            template = enrol_photo(data_dir() / "obama.jpg", detector, Embedder())
        entry = new_entry("obama", [template], "consent", "CONSENT-BENCH-1", "benchmark", "consented", "2099-12-31")
        write_entries(watchlist, load_key(key_file), [entry])
    return key_file, watchlist


def _grey(path: Path) -> Iterator[np.ndarray]:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="gray")


@dataclass
class TrackClear:
    """How many of one ground-truth face's frames (at least `MIN_WIDTH` px, half visible) were left clear."""

    photo: str
    frames: int = 0
    clear: int = 0


def clear_by_track(original: Path, redacted: Path, gt: GroundTruth, min_width: float = MIN_WIDTH,
                   min_visible: float = 0.5) -> dict[int, TrackClear]:
    """Per ground-truth face: frames counted and frames whose detail survived (benchmarks.score's rule)."""
    out = {t.id: TrackClear(t.photo) for t in gt.tracks}
    for index, (orig, red) in enumerate(zip(_grey(original), _grey(redacted))):
        for b in gt.boxes_at(index):
            if b.visible_fraction < min_visible or b.face_width < min_width:
                continue
            verdict = compare_face(orig, red, b.box, b.face_width)
            out[b.track_id].frames += 1
            out[b.track_id].clear += int(not verdict.protected)
    return out


def photo_distances(embedder: Embedder) -> dict[str, float]:
    """Distance from obama.jpg to each real photo, faces found by CenterFace."""
    folder = data_dir()
    with create_detector("centerface", threshold=0.5) as detector:
        vectors = {p.stem: enrol_photo(p, detector, embedder)
                   for p in sorted(folder.glob("*.jpg"))}
    ref = vectors["obama"]
    return {name: round(float(np.linalg.norm(v - ref)), 3) for name, v in vectors.items() if name != "obama"}


def size_sweep(folder: Path, embedder: Embedder, reference: np.ndarray) -> dict[str, dict[int, list[float]]]:
    """Per photo and face width, the distances of every detected sample in an H.264 clip."""
    photos = WATCHLIST_PHOTOS + STRANGERS
    out: dict[str, dict[int, list[float]]] = {p: {} for p in photos}
    with create_detector("centerface", threshold=0.5) as detector:
        for width in WIDTHS:
            faces = tuple(FaceSpec(p, width, width * 1.05, ((80 + 120 * k, 120), (90 + 120 * k, 130)), 0, 8,
                                   (-6 + 3 * k, 6 - 3 * k), (0.85, 1.1)) for k, p in enumerate(photos))
            clip = folder / f"sizes-{width}.mp4"
            gt = make_clip(ClipSpec(560, 240, 12, 8, faces, seed=width), clip, crf=23)
            with av.open(str(clip)) as container:
                for index, frame in enumerate(container.decode(video=0)):
                    rgb = frame.to_ndarray(format="rgb24")
                    found = detector.detect(rgb)
                    truth = gt.boxes_at(index)
                    if not len(found):
                        continue
                    iou = iou_matrix(np.array([b.box for b in truth], np.float32), found.xyxy)
                    for row, b in enumerate(truth):
                        col = int(np.argmax(iou[row]))
                        if iou[row, col] > 0.3:
                            vector = embedder.embed(rgb, found.xyxy[col])
                            out[b.photo].setdefault(width, []).append(float(np.linalg.norm(vector - reference)))
    return out


def run_scene(spec: ClipSpec, folder: Path, name: str, key_file: Path, watchlist: Path,
              policy: MatchPolicy) -> dict[str, Any]:
    """Render, redact with the watchlist, and score one scene."""
    clip, redacted = folder / f"{name}.mp4", folder / f"{name}.redacted.mp4"
    audit = folder / f"{name}.audit.jsonl"
    for stale in (redacted, audit, audit.with_name(audit.name + ".head")):
        stale.unlink(missing_ok=True)
    gt = make_clip(spec, clip)
    recogniser = build_recogniser(watchlist, key_file, None, True, audit, policy=policy)
    started = time.perf_counter()
    with Pipeline(RedactSettings(), recogniser=recogniser) as pipeline:
        stats = redact_file(clip, redacted, pipeline, RedactSettings().encode)
        match = recogniser.stats
    seconds = time.perf_counter() - started
    tracks = clear_by_track(clip, redacted, gt)
    mine = [t for t in tracks.values() if t.photo in WATCHLIST_PHOTOS]
    others = [t for t in tracks.values() if t.photo not in WATCHLIST_PHOTOS]
    return {
        "name": name, "frames": stats.frames, "tracks": stats.tracks, "seconds": round(seconds, 1),
        "recognise_seconds": round(stats.seconds.get("recognise", 0.0), 2),
        "embeddings": match.embeddings, "confirmed": match.confirmed, "rejected": match.rejected,
        "withdrawn": match.withdrawn,
        "watchlist_frames": sum(t.frames for t in mine), "watchlist_clear": sum(t.clear for t in mine),
        "stranger_frames": sum(t.frames for t in others), "stranger_clear": sum(t.clear for t in others),
        "per_track": {str(k): vars(v) for k, v in tracks.items()},
    }


def _acceptance(samples: dict[str, dict[int, list[float]]], threshold: float) -> dict[str, dict[int, float]]:
    return {p: {w: round(float(np.mean(np.array(d) <= threshold)), 3) for w, d in by_w.items()}
            for p, by_w in samples.items()}


def _pct(n: int, d: int) -> str:
    return f"{100 * n / d:.1f}% ({n}/{d})" if d else "n/a"


def report_markdown(results: dict[str, Any]) -> str:
    """The 'Watchlist recognition' section for benchmarks/RESULTS.md."""
    lines = ["## Watchlist recognition", "",
             f"`python -m benchmarks.recognition` ({results['date']}); obama.jpg enrolled (basis consent), "
             f"threshold {results['threshold']} (limit {MAX_THRESHOLD}), "
             "votes: 2 agreeing samples confirm, 2 disagreeing (or 5 without a decision) reject.", "",
             "Real photos, descriptor distance to obama.jpg:", ""]
    lines += [f"- {k}: {v}" for k, v in results["photos"].items()]
    lines += ["", "Composited into H.264 video and found by CenterFace, per-sample distance by face width "
              "(median / worst: max for obama, min for strangers):", "",
              "| face | " + " | ".join(f"{w} px" for w in WIDTHS) + " |", "|---" * (len(WIDTHS) + 1) + "|"]
    for photo, by_w in results["sizes"].items():
        worst = max if photo in WATCHLIST_PHOTOS else min
        cells = [f"{np.median(by_w[w]):.2f} / {worst(by_w[w]):.2f}" if by_w.get(w) else "-" for w in WIDTHS]
        lines.append(f"| {photo} | " + " | ".join(cells) + " |")
    lines += ["", "Share of samples accepted at each threshold (obama2+obama3 at >= 40 px; strangers, all sizes):", "",
              "| threshold | same person accepted | strangers accepted |", "|---|---|---|"]
    for thr, row in results["acceptance"].items():
        lines.append(f"| {thr} | {row['same']:.3f} | {row['strangers']:.3f} |")
    lines += ["", "Full pipeline (default settings) on composite scenes, faces >= 40 px:", "",
              "| scene | watchlist frames clear | stranger frames clear | tracks | embeddings | recognise s | run s |",
              "|---|---|---|---|---|---|---|"]
    for s in results["scenes"]:
        lines.append(f"| {s['name']} | {_pct(s['watchlist_clear'], s['watchlist_frames'])} | "
                     f"{_pct(s['stranger_clear'], s['stranger_frames'])} | {s['tracks']} | {s['embeddings']} | "
                     f"{s['recognise_seconds']} | {s['seconds']} |")
    fm = results["false_matches"]
    lines += ["", f"False matches: {fm['confirmed']} of {fm['tracks']} stranger tracks "
              f"({fm['per_thousand']:.1f} per thousand tracks) at threshold {results['threshold']}, "
              f"{fm['embeddings']} embeddings. Only two stranger identities exist here (biden, astronaut), so this "
              "shows the margin on these faces, not a population false-match rate.", ""]
    return "\n".join(lines)


@click.command()
@click.option("--out", "folder", type=click.Path(file_okay=False, path_type=Path),
              default=Path("benchmarks/out/recognition"), show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--scenes", type=click.IntRange(1, 10), default=3, show_default=True)
@click.option("--crowds", type=click.IntRange(0, 10), default=3, show_default=True)
@click.option("--markdown", is_flag=True, help="Print the RESULTS.md section.")
def main(folder: Path, json_path: Path | None, scenes: int, crowds: int, markdown: bool) -> None:
    """Measure recognition on real photos, composited video and full pipeline runs."""
    folder.mkdir(parents=True, exist_ok=True)
    key_file, watchlist = enrolled_watchlist(folder)
    embedder = Embedder()
    with create_detector("centerface", threshold=0.5) as detector:
        reference = enrol_photo(data_dir() / "obama.jpg", detector, embedder)
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "threshold": DEFAULT_THRESHOLD}
    results["photos"] = photo_distances(embedder)
    click.echo(f"photos: {results['photos']}", err=True)
    samples = size_sweep(folder, embedder, reference)
    results["sizes"] = {p: {w: [round(d, 4) for d in v] for w, v in by_w.items()} for p, by_w in samples.items()}
    same = [d for p in WATCHLIST_PHOTOS for w, v in samples[p].items() if w >= MIN_WIDTH for d in v]
    strangers = [d for p in STRANGERS for v in samples[p].values() for d in v]
    results["acceptance"] = {str(t): {"same": float(np.mean(np.array(same) <= t)),
                                      "strangers": float(np.mean(np.array(strangers) <= t))} for t in THRESHOLDS}
    click.echo(f"acceptance: {results['acceptance']}", err=True)
    policy = MatchPolicy()
    results["scenes"] = []
    for seed in range(scenes):
        row = run_scene(watchlist_scene(seed), folder, f"scene-{seed}", key_file, watchlist, policy)
        results["scenes"].append(row)
        click.echo(f"scene {seed}: watchlist {_pct(row['watchlist_clear'], row['watchlist_frames'])} clear, "
                   f"strangers {_pct(row['stranger_clear'], row['stranger_frames'])} clear", err=True)
    crowd_rows = [run_scene(stranger_crowd(seed), folder, f"crowd-{seed}", key_file, watchlist, policy)
                  for seed in range(crowds)]
    stranger_tracks = sum(r["confirmed"] + r["rejected"] for r in crowd_rows)
    confirmed = sum(r["confirmed"] for r in crowd_rows)
    results["crowds"] = crowd_rows
    results["false_matches"] = {"tracks": stranger_tracks, "confirmed": confirmed,
                                "per_thousand": 1000 * confirmed / max(stranger_tracks, 1),
                                "embeddings": sum(r["embeddings"] for r in crowd_rows)}
    click.echo(f"false matches: {results['false_matches']}", err=True)
    if json_path is not None:
        json_path.write_text(json.dumps(results, indent=1))
    if markdown:
        click.echo(report_markdown(results))


if __name__ == "__main__":
    main()
