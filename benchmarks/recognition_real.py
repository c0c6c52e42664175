"""Watchlist recognition on real video: the measurements behind the match threshold, the vote and the reveal rule.

Material: the real clips in ../shared/data/real (CC-BY 4.0, (c) Intel Corporation, from
intel-iot-devkit/sample-videos) and the public-domain portraits in ../shared/data (plus scikit-image's NASA
astronaut). Person A (walking_pause actor 0, headpose actor 1) is enrolled from headpose_female.mp4 and
Person B (headpose actor 0) from headpose_male.mp4: the 3 best looks (sharpest, most frontal, at least half
a second apart) of each clip become the entry's templates, as `--photo` given three stills would. Probes are
the ground-truth face boxes of the other clips (vis >= 0.7, at least `min_face_px` wide: what the matcher
would look at), each described with the matcher's own look (aligned chip) and compared with both entries.
Impostor pairs: every other actor of every clip against A and B, A against B and B against A, and the
portraits against both.

Design material (parameters were chosen on it): A probed in headpose; the impostors against A in headpose,
walking and the obama portraits; for the sample-quality rule, headpose_female probed against A's headpose
frames; for the colour signature, the headpose, walking and headpose_female/male clips.
Validation material (reported, never tuned on): A probed in walking_pause, B probed in headpose; every other
impostor pair; headpose_female probed against A's walking_pause frames; walking_pause and one_by_one.

Five measurements:

1. distances: genuine and impostor descriptor distances per sample, design and validation.
2. threshold: the lowest distance at which >= 95% of design genuine samples match; per-sample acceptance
   of both splits at a range of thresholds.
3. tracks: the vote (MatchPolicy.votes agreeing samples that outnumber misses, at most max_samples) replayed
   on every genuine and impostor track, one best look per window from every starting frame; and a modelled
   stranger-track false-match rate (track means and within-track spread fitted as normals, design and
   validation separately), for the stated target of at most 1 in 10,000 stranger tracks.
4. quality and signature: best look of each window against the first; colour-signature similarity of one
   person's consecutive looks against two people of one clip.
5. pipeline: every real clip redacted by `redactor redact --watchlist W --reveal matches`: share of each
   actor's face-frames (vis >= 0.7, >= 40 px) left clear (benchmarks.score's rule).

    python -m benchmarks.recognition_real [--out benchmarks/out/recognition_real] [--json F] [--markdown]
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import av
import click
import cv2
import numpy as np

from benchmarks.recognition import data_dir
from benchmarks.score import compare_face
from redactor_video.detect import create_detector
from redactor_video.recognise.embedder import Embedder, Look
from redactor_video.recognise.keys import generate_key, load_key
from redactor_video.recognise.matcher import DEFAULT_THRESHOLD, MAX_THRESHOLD, MatchPolicy
from redactor_video.recognise.watchlist import enrol_photo, new_entry, write_entries

ENROL = {"A": "headpose_female", "B": "headpose_male"}
GENUINE = {("walking_pause", 0): "A", ("headpose", 1): "A", ("headpose", 0): "B"}
CLIPS = ("walking", "walking_pause", "headpose", "store_aisle", "one_by_one")
PORTRAITS = ("obama", "obama2", "obama3", "obama_partial_face", "biden", "astronaut")
DESIGN_GENUINE = {("headpose", 1, "A")}
DESIGN_IMPOSTOR_CLIPS = {"headpose", "walking", "portrait"}
DESIGN_SIGNATURE_CLIPS = {"headpose", "walking", "headpose_female", "headpose_male"}
TEMPLATES = 3
TEMPLATE_SPACING_SECONDS = 0.5
MIN_VISIBLE = 0.7
GENUINE_ACCEPTANCE = 0.95
TARGET_TRACK_FMR = 1e-4
THRESHOLDS = (0.40, 0.44, 0.46, 0.48, 0.49, 0.50, 0.52, 0.55, 0.58, 0.60)


def real_dir() -> Path:
    return data_dir() / "real"


def frames(path: Path) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, seconds, RGB) of every frame of a clip."""
    with av.open(str(path)) as container:
        for index, vf in enumerate(container.decode(video=0)):
            yield index, float(vf.time), vf.to_ndarray(format="rgb24")


@dataclass
class Sample:
    """One described face: where it was, how good a look it was, and its distance to each person's templates."""

    clip: str
    actor: Any
    index: int
    seconds: float
    width: float
    quality: float
    distance: dict[str, float] = field(default_factory=dict)


def best_looks(looks: list[tuple[float, Look]]) -> list[Look]:
    """The TEMPLATES best of (seconds, look), at least TEMPLATE_SPACING_SECONDS apart: a few good, different stills."""
    chosen: list[tuple[float, Look]] = []
    for seconds, look in sorted(looks, key=lambda x: -x[1].quality):
        if len(chosen) < TEMPLATES and all(abs(seconds - s) >= TEMPLATE_SPACING_SECONDS for s, _ in chosen):
            chosen.append((seconds, look))
    return [look for _, look in chosen]


def detected_looks(embedder: Embedder, clip: str) -> list[tuple[int, float, Look]]:
    """(index, seconds, look) of the largest face CenterFace finds in each frame of a clip without ground truth."""
    out = []
    with create_detector("centerface", threshold=0.5) as detector:
        for index, seconds, rgb in frames(real_dir() / f"{clip}.mp4"):
            found = detector.detect(rgb)
            if len(found):
                k = int(np.argmax(found.xyxy[:, 2] - found.xyxy[:, 0]))
                out.append((index, seconds, embedder.look(rgb, found.xyxy[k])))
    return out


def enrol(embedder: Embedder, clip: str) -> np.ndarray:
    """Templates of the one person in `clip`, from its best looks."""
    return np.array([embedder.describe(look) for look in
                     best_looks([(seconds, look) for _, seconds, look in detected_looks(embedder, clip)])])


def truth(clip: str) -> list[list[list[float]]]:
    return json.loads((real_dir() / f"{clip}.json").read_text())["frames"]


def probe_clip(embedder: Embedder, clip: str, templates: dict[str, np.ndarray], min_width: float) -> list[Sample]:
    """Every ground-truth face of `clip` the matcher would look at, described and compared with each person."""
    out = []
    boxes = truth(clip)
    for index, seconds, rgb in frames(real_dir() / f"{clip}.mp4"):
        for actor, x, y, w, h, vis in boxes[index]:
            if vis < MIN_VISIBLE or min(w, h) < min_width:
                continue
            look = embedder.look(rgb, (x, y, x + w, y + h))
            vector = embedder.describe(look)
            out.append(Sample(clip, int(actor), index, seconds, w, look.quality,
                              {p: float(np.linalg.norm(t - vector, axis=1).min()) for p, t in templates.items()}))
    return out


def probe_portraits(embedder: Embedder, templates: dict[str, np.ndarray]) -> list[Sample]:
    import skimage.data

    out = []
    with create_detector("centerface", threshold=0.5) as detector:
        for name in PORTRAITS:
            path = data_dir() / f"{name}.jpg"
            if name == "astronaut":
                path = Path(os.environ.get("TMPDIR", "/tmp")) / "redactor-astronaut.png"
                cv2.imwrite(str(path), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
            vector = enrol_photo(path, detector, embedder)
            out.append(Sample("portrait", name, 0, 0.0, 0.0, 0.0,
                              {p: float(np.linalg.norm(t - vector, axis=1).min()) for p, t in templates.items()}))
    return out


def pairs(samples: list[Sample]) -> dict[tuple[str, Any, str], list[Sample]]:
    """(clip, actor, person) -> samples, for every genuine and impostor pair."""
    out: dict[tuple[str, Any, str], list[Sample]] = {}
    for s in samples:
        for person in ENROL:
            out.setdefault((s.clip, s.actor, person), []).append(s)
    return out


def is_genuine(key: tuple[str, Any, str]) -> bool:
    return GENUINE.get((key[0], key[1])) == key[2]


def is_design(key: tuple[str, Any, str]) -> bool:
    if is_genuine(key):
        return key in DESIGN_GENUINE
    return key[2] == "A" and key[0] in DESIGN_IMPOSTOR_CLIPS and key[1] != "biden" and key[1] != "astronaut"


def vote(outcomes: list[bool], policy: MatchPolicy) -> tuple[bool | None, int]:
    """The matcher's first decision on a track from its samples in order: (confirmed, rejected or None if the
    samples ran out first; samples used)."""
    hits = misses = 0
    for n, hit in enumerate(outcomes, start=1):
        hits, misses = hits + hit, misses + (not hit)
        if hits >= policy.votes and hits > misses:
            return True, n
        if (misses >= policy.votes and misses > hits) or n >= policy.max_samples:
            return False, n
    return None, len(outcomes)


def window_picks(track: list[Sample], window: float, phase: int, best: bool) -> list[Sample]:
    """One sample per `window` seconds from frame `phase` on: the best look of each window, or its first."""
    track = sorted(track, key=lambda s: s.index)[phase:]
    picks, opened, pool = [], None, []
    for s in track:
        opened = s.seconds if opened is None else opened
        pool.append(s)
        if s.seconds - opened >= window:
            picks.append(max(pool, key=lambda x: x.quality) if best else pool[0])
            opened, pool = None, []
    return picks


def replay(groups: dict[tuple[str, Any, str], list[Sample]], policy: MatchPolicy, threshold: float) -> dict:
    """The vote on every video track from every starting frame: runs decided (a run that reaches the end of the
    clip first is undecided), confirmed, and samples needed to confirm."""
    out = {}
    for key, track in groups.items():
        if key[0] == "portrait":
            continue  # one still: a single sample never decides a track
        decided = [vote([s.distance[key[2]] <= threshold for s in window_picks(track, policy.window_seconds, p, True)],
                        policy) for p in range(len(track))]
        settled = [(c, n) for c, n in decided if c is not None]
        out[key] = {"runs": len(settled), "undecided": len(decided) - len(settled),
                    "confirmed": sum(c for c, _ in settled), "samples": [n for c, n in settled if c]}
    return out


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def modelled_fmr(groups: dict[tuple[str, Any, str], list[Sample]], policy: MatchPolicy, threshold: float) -> dict:
    """Stranger-track false-match rate under the vote, from normals fitted to impostor tracks' mean distances and
    to the spread within a track (samples of one track are not independent; the model keeps them together)."""
    tracks = [np.array([s.distance[k[2]] for s in t]) for k, t in groups.items()]
    means = np.array([t.mean() for t in tracks])
    within = float(np.sqrt(np.mean([t.var() for t in tracks if len(t) > 1])))
    mu, sigma = float(means.mean()), float(means.std())
    grid = np.linspace(mu - 8 * sigma, mu + 8 * sigma, 4001)
    weight = np.exp(-0.5 * ((grid - mu) / sigma) ** 2)
    weight /= weight.sum()
    confirm = np.array([_confirm_probability(_phi((threshold - m) / within), policy) for m in grid])
    per_sample = np.array([_phi((threshold - m) / within) for m in grid])
    return {"tracks": len(tracks), "mean": mu, "between_sd": sigma, "within_sd": within,
            "per_sample": float(weight @ per_sample), "per_track": float(weight @ confirm)}


def _confirm_probability(p: float, policy: MatchPolicy) -> float:
    """Chance that the vote confirms a track whose samples each match with probability p."""
    memo: dict[tuple[int, int], float] = {}

    def go(hits: int, misses: int) -> float:
        if hits >= policy.votes and hits > misses:
            return 1.0
        if (misses >= policy.votes and misses > hits) or hits + misses >= policy.max_samples:
            return 0.0
        if (hits, misses) not in memo:
            memo[hits, misses] = p * go(hits + 1, misses) + (1 - p) * go(hits, misses + 1)
        return memo[hits, misses]

    return go(0, 0)


def quality_check(embedder: Embedder, policy: MatchPolicy, threshold: float) -> dict:
    """headpose_female (turns from three-quarter to frontal) against A's templates from another clip: the best look
    of each window against the first look, over every window phase."""
    female = [(index, seconds, look.quality, embedder.describe(look))
              for index, seconds, look in detected_looks(embedder, "headpose_female")]
    out = {}
    for split, clip, actor in (("design", "headpose", 1), ("validation", "walking_pause", 0)):
        looks = []
        boxes = truth(clip)
        for index, seconds, rgb in frames(real_dir() / f"{clip}.mp4"):
            looks += [(seconds, embedder.look(rgb, (x, y, x + w, y + h))) for a, x, y, w, h, _ in boxes[index]
                      if a == actor]
        templates = np.array([embedder.describe(look) for look in best_looks(looks)])
        track = [Sample("headpose_female", 0, i, t, 0.0, q, {"A": float(np.linalg.norm(templates - v, axis=1).min())})
                 for i, t, q, v in female]
        row = {}
        for mode in ("first", "best"):
            picked = [s.distance["A"] for p in range(len(track))
                      for s in window_picks(track, policy.window_seconds, p, mode == "best")]
            row[mode] = {"mean": float(np.mean(picked)), "worst": float(np.max(picked)),
                         "accepted": float(np.mean(np.array(picked) <= threshold)), "n": len(picked)}
        out[split] = row
    return out


def signature_check(embedder: Embedder, min_width: float) -> dict:
    """Colour-signature similarity of one person's consecutive looks (one frame apart) and of two people of one
    clip (looks at most one frame apart), per split."""
    looks: dict[tuple[str, int], dict[int, np.ndarray]] = {
        (clip, 0): {index: look.signature for index, _, look in detected_looks(embedder, clip)}
        for clip in ENROL.values()}
    for clip in CLIPS:
        boxes = truth(clip)
        for index, _, rgb in frames(real_dir() / f"{clip}.mp4"):
            for actor, x, y, w, h, vis in boxes[index]:
                if vis >= MIN_VISIBLE and min(w, h) >= min_width:
                    looks.setdefault((clip, int(actor)), {})[index] = embedder.look(rgb, (x, y, x + w, y + h)).signature
    out: dict[str, dict[str, list[float]]] = {"design": {"same": [], "other": []},
                                              "validation": {"same": [], "other": []}}
    for (clip, actor), by_index in looks.items():
        split = "design" if clip in DESIGN_SIGNATURE_CLIPS else "validation"
        out[split]["same"] += [float(by_index[i] @ by_index[i + 1]) for i in by_index if i + 1 in by_index]
        for (clip2, actor2), other in looks.items():
            if clip2 == clip and actor2 > actor:
                out[split]["other"] += [float(v @ other[j]) for i, v in by_index.items()
                                        for j in (i - 1, i, i + 1) if j in other]
    return out


def write_watchlist(folder: Path, templates: dict[str, np.ndarray]) -> tuple[Path, Path]:
    key_file, watchlist = folder / "bench.key", folder / "real.watchlist"
    for stale in (key_file, watchlist):
        stale.unlink(missing_ok=True)
    for stale in folder.glob("*.audit.jsonl*"):
        stale.unlink()
    generate_key(key_file)
    entries = [new_entry(f"Person {p}", list(t), "consent", f"CONSENT-REAL-{p}", "benchmark", "consented",
                         "2099-12-31") for p, t in templates.items()]
    write_entries(watchlist, load_key(key_file), entries)
    return key_file, watchlist


def _grey(path: Path) -> Iterator[np.ndarray]:
    with av.open(str(path)) as container:
        for vf in container.decode(video=0):
            yield vf.to_ndarray(format="gray")


def pipeline_run(folder: Path, clip: str, key_file: Path, watchlist: Path, min_width: float) -> dict:
    """`redactor redact CLIP --watchlist W --reveal matches`, then each actor's face-frames left clear."""
    source, out = real_dir() / f"{clip}.mp4", folder / f"{clip}.redacted.mp4"
    audit = folder / f"{clip}.audit.jsonl"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "redactor_video", "redact", str(source), "-o", str(out), "--overwrite", "-q",
                    "--watchlist", str(watchlist), "--reveal", "matches", "--audit-log", str(audit)],
                   check=True, env={**os.environ, "REDACTOR_KEY_FILE": str(key_file)})
    seconds = time.perf_counter() - started
    boxes = truth(clip)
    actors: dict[int, dict[str, int]] = {}
    for index, (orig, red) in enumerate(zip(_grey(source), _grey(out))):
        for actor, x, y, w, h, vis in boxes[index]:
            if vis < MIN_VISIBLE:
                continue
            clear = not compare_face(orig, red, (x, y, x + w, y + h), w).protected
            row = actors.setdefault(int(actor), {"frames": 0, "clear": 0, "small_frames": 0, "small_clear": 0})
            big = min(w, h) >= min_width
            row["frames" if big else "small_frames"] += 1
            row["clear" if big else "small_clear"] += int(clear)
    events = [json.loads(line)["event"] for line in audit.read_text().splitlines()]
    return {"clip": clip, "seconds": round(seconds, 1), "actors": actors,
            "matches": events.count("match"), "withdrawn": events.count("match-withdrawn")}


def report_markdown(r: dict[str, Any]) -> str:
    """The 'Watchlist on real video' section for benchmarks/RESULTS.md."""
    t = r["threshold"]
    lines = ["## Watchlist on real video (#20)", "",
             f"`python -m benchmarks.recognition_real --markdown` ({r['date']}). Person A enrolled from the "
             f"{TEMPLATES} best looks of headpose_female.mp4, Person B from headpose_male.mp4; probes are the "
             "ground-truth faces (vis >= 0.7, >= 40 px) of the other real clips (CC-BY 4.0, (c) Intel "
             "Corporation) and the public-domain portraits. Design: A probed in headpose, impostors against A in "
             "headpose, walking and the obama portraits. Validation: A in walking_pause, B in headpose, every "
             "other impostor pair.", "",
             "Per-sample distances (min / median / max):", "",
             "| split | pairs | samples | genuine | impostor |", "|---|---|---|---|---|"]
    for split in ("design", "validation"):
        d = r["distances"][split]
        g, i = np.array(d["genuine"]), np.array(d["impostor"])
        lines.append(f"| {split} | {d['pairs']} | {len(g)} + {len(i)} | {g.min():.3f} / {np.median(g):.3f} / "
                     f"{g.max():.3f} | {i.min():.3f} / {np.median(i):.3f} / {i.max():.3f} |")
    lines += ["", "Share of samples at or under each threshold (genuine: higher is better; impostor: must be 0):", "",
              "| threshold | design genuine | design impostor | validation genuine | validation impostor |",
              "|---|---|---|---|---|"]
    for thr, row in r["acceptance"].items():
        lines.append(f"| {thr} | {row['design']['genuine']:.3f} | {row['design']['impostor']:.3f} | "
                     f"{row['validation']['genuine']:.3f} | {row['validation']['impostor']:.3f} |")
    v = r["vote"]
    lines += ["", f"Chosen on design: threshold **{t}**, the lowest at which >= {GENUINE_ACCEPTANCE:.0%} of design "
              f"genuine samples match (dlib's limit {MAX_THRESHOLD} is never reached). Rule: one sample per "
              f"{v['window']} s window, the window's best look; {v['votes']} matching samples that outnumber the "
              f"misses confirm a track, {v['votes']} misses that outnumber the matches (or {v['max_samples']} "
              f"samples) reject it. Target: at most {TARGET_TRACK_FMR:g} false matches per stranger track.", "",
              "Track level: the vote replayed on each video track from every starting frame (a run that reaches "
              "the end of the clip undecided is left out):", "",
              "| split | genuine runs confirmed (false non-match) | samples to confirm | impostor runs confirmed "
              "(false match) |", "|---|---|---|---|"]
    for split in ("design", "validation"):
        g, i = r["tracks"][split]["genuine"], r["tracks"][split]["impostor"]
        lines.append(f"| {split} | {g['confirmed']}/{g['runs']} of {g['tracks']} tracks "
                     f"({1 - g['confirmed'] / max(g['runs'], 1):.1%}) | {g['samples_median']} (max "
                     f"{g['samples_max']}) | {i['confirmed']}/{i['runs']} of {i['tracks']} tracks |")
    m = r["model"]
    lines += ["", f"Modelled false matches per stranger track at {t}: {m['per_track']:.1e} (per sample "
              f"{m['per_sample']:.1e}), from normals fitted to all {m['tracks']} video impostor tracks (both splits: "
              f"the model chose nothing, it checks the target): track means {m['mean']:.3f} +- "
              f"{m['between_sd']:.3f}, spread within a track {m['within_sd']:.3f}. The observed counts bound it only "
              f"weakly: no stranger track confirmed, but there are only {m['tracks']} of them. The "
              f"nearest portrait is {r['portraits']:.3f} from a template."]
    q = r["quality"]
    lines += ["", "Sample quality, headpose_female (three-quarter to frontal) against A's templates from another "
              f"clip, one sample per {v['window']} s window (mean / worst distance, share matching):", "",
              "| split (templates) | first look of each window | best look (sharpness x frontal) |", "|---|---|---|"]
    for split, clip in (("design", "headpose"), ("validation", "walking_pause")):
        f, b = q[split]["first"], q[split]["best"]
        lines.append(f"| {split} ({clip}) | {f['mean']:.3f} / {f['worst']:.3f}, {f['accepted']:.0%} | "
                     f"{b['mean']:.3f} / {b['worst']:.3f}, {b['accepted']:.0%} |")
    s = r["signature"]
    lines += ["", f"Colour signature (split below {r['same_face']}): one person's consecutive looks, two people "
              "of one clip at most a frame apart:", "",
              "| split | same person min (split rate) | two people max (caught) |", "|---|---|---|"]
    for split in ("design", "validation"):
        same, other = np.array(s[split]["same"]), np.array(s[split]["other"])
        lines.append(f"| {split} | {same.min():.3f} ({np.mean(same < r['same_face']):.1%} of {len(same)}) | "
                     f"{other.max():.3f} ({np.mean(other < r['same_face']):.1%} of {len(other)}) |")
    lines += ["", "`redactor redact CLIP --watchlist W --reveal matches` (default settings), face-frames "
              "(vis >= 0.7) left clear, >= 40 px (smaller):", "",
              "| clip | enrolled person clear | everyone else clear | matches / withdrawn |", "|---|---|---|---|"]
    for run in r["pipeline"]:
        mine = [f"{GENUINE[(run['clip'], a)]}: {row['clear']}/{row['frames']}"
                for a, row in run["actors"].items() if (run["clip"], a) in GENUINE]
        others = [row for a, row in run["actors"].items() if (run["clip"], a) not in GENUINE]
        lines.append(f"| {run['clip']} | {', '.join(mine) or '-'} | {sum(o['clear'] for o in others)}/"
                     f"{sum(o['frames'] for o in others)} ({sum(o['small_clear'] for o in others)}/"
                     f"{sum(o['small_frames'] for o in others)}) | {run['matches']} / {run['withdrawn']} |")
    lines.append("")
    return "\n".join(lines)


@click.command()
@click.option("--out", "folder", type=click.Path(file_okay=False, path_type=Path),
              default=Path("benchmarks/out/recognition_real"), show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--markdown", is_flag=True, help="Print the RESULTS.md section.")
def main(folder: Path, json_path: Path | None, markdown: bool) -> None:
    """Measure the watchlist on real video: distances, threshold, vote, sample quality, signature, pipeline."""
    folder.mkdir(parents=True, exist_ok=True)
    policy = MatchPolicy()
    embedder = Embedder()
    templates = {p: enrol(embedder, clip) for p, clip in ENROL.items()}
    samples = [s for clip in CLIPS for s in probe_clip(embedder, clip, templates, policy.min_face_px)]
    groups = pairs(samples + probe_portraits(embedder, templates))
    split = {k: "design" if is_design(k) else "validation" for k in groups}
    r: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "same_face": policy.same_face,
                         "vote": {"window": policy.window_seconds, "votes": policy.votes,
                                  "max_samples": policy.max_samples},
                         "distances": {}, "acceptance": {}, "tracks": {}}
    for name in ("design", "validation"):
        mine = {k: g for k, g in groups.items() if split[k] == name}
        r["distances"][name] = {
            "pairs": len(mine),
            "genuine": [round(s.distance[k[2]], 4) for k, g in mine.items() if is_genuine(k) for s in g],
            "impostor": [round(s.distance[k[2]], 4) for k, g in mine.items() if not is_genuine(k) for s in g]}
    for thr in THRESHOLDS:
        r["acceptance"][f"{thr:.2f}"] = {
            name: {kind: float(np.mean(np.array(r["distances"][name][kind]) <= thr))
                   for kind in ("genuine", "impostor")} for name in ("design", "validation")}
    design_genuine = np.array(r["distances"]["design"]["genuine"])
    r["threshold"] = next(t for t in (round(0.40 + 0.01 * k, 2) for k in range(21))
                          if np.mean(design_genuine <= t) >= GENUINE_ACCEPTANCE)
    if r["threshold"] != DEFAULT_THRESHOLD:
        click.echo(f"note: the design rule gives {r['threshold']}, the code's default is {DEFAULT_THRESHOLD}", err=True)
    replays = replay(groups, policy, r["threshold"])
    for name in ("design", "validation"):
        gen = [v for k, v in replays.items() if split[k] == name and is_genuine(k)]
        imp = [v for k, v in replays.items() if split[k] == name and not is_genuine(k)]
        needed = [n for v in gen for n in v["samples"]]
        r["tracks"][name] = {
            "genuine": {"tracks": len(gen), "runs": sum(v["runs"] for v in gen),
                        "confirmed": sum(v["confirmed"] for v in gen),
                        "undecided": sum(v["undecided"] for v in gen),
                        "samples_median": int(np.median(needed)) if needed else 0,
                        "samples_max": max(needed, default=0)},
            "impostor": {"tracks": len(imp), "runs": sum(v["runs"] for v in imp),
                         "confirmed": sum(v["confirmed"] for v in imp),
                         "undecided": sum(v["undecided"] for v in imp)}}
    video = {k: g for k, g in groups.items() if k[0] != "portrait" and not is_genuine(k)}
    r["model"] = modelled_fmr(video, policy, r["threshold"])
    r["portraits"] = min(s.distance[k[2]] for k, g in groups.items() if k[0] == "portrait" for s in g)
    click.echo(f"threshold {r['threshold']}: tracks {r['tracks']}, model {r['model']}", err=True)
    r["quality"] = quality_check(embedder, policy, r["threshold"])
    click.echo(f"quality: {r['quality']}", err=True)
    r["signature"] = signature_check(embedder, policy.min_face_px)
    key_file, watchlist = write_watchlist(folder, templates)
    r["pipeline"] = []
    for clip in CLIPS:
        run = pipeline_run(folder, clip, key_file, watchlist, policy.min_face_px)
        r["pipeline"].append(run)
        click.echo(f"{clip}: {run}", err=True)
    if json_path is not None:
        json_path.write_text(json.dumps(r, indent=1, default=str))
    if markdown:
        click.echo(report_markdown(r))


if __name__ == "__main__":
    main()
