"""Recall of redactor and deface 1.5.0 side by side on footage no parameter was chosen on (issue #19).

Real clips: `../shared/data/real/` (CC-BY 4.0, (c) Intel Corporation; from the
public repository intel-iot-devkit/sample-videos, see the README there), real
camera clips with hand-checked face boxes. Each clip belongs to the design or
the validation split (`SPLIT`); every row printed or written says which.

Each tool runs as a user would run it, as its own process with its own
defaults: `redactor redact CLIP -o OUT -q --overwrite [--redactor-args]` and
deface's command line from its own venv (benchmarks/peers.py, our encoder
settings only). Each output is scored with benchmarks/score.py's protection
rule against the clip's boxes:

- a box with vis >= 0.7 is a scored face-frame, PROTECTED or CLEAR by
  `score.compare_face`; a box under 0.7 is "don't care": not scored, and, like
  every box grown by half a face width, outside the background measure, so
  masking it is neither a hit nor collateral damage;
- recall by face-width band (the box width: eyebrows to chin, ear to ear);
- the longest run of consecutive frames one face (actor) stayed clear, over
  every scored face and over faces >= 24 px (a frame where the face is absent
  or only "don't care" ends a run, as in benchmarks/untuned.py);
- background changed: score.py's share of pixels outside every grown box whose
  blurred luma moved by more than 12 grey levels.

Totals add face-frames over clips; their longest clear run and background
changed are the worst clip's.

Fresh synthetic scenes (`--fresh N`): N scenes of benchmarks/synth.py, each
under conditions drawn at random from what the generator renders today (crowd
or walkers scene with a new seed >= 10000, 16:9 at 480p to 1080p, 2 to 30 fps
keeping the scene's length in seconds, colour or night IR, background photo,
crf 18 to 35). The seed is drawn from os.urandom unless `--seed` is given, and
printed, so a run can be repeated. They are validation material (split
"validation", material "fresh"), scored the same way with exact ground truth
(faces at least half visible scored, as score.py does for synthetic clips);
their totals stay apart from the real clips'. The generator has no contrast,
gamma, sensor-noise (beyond night IR) or motion-blur conditions yet.

Run: python -m benchmarks.recall [--split design|validation|all] [--clips walking,headpose]
         [--fresh N [--seed S]] [--no-real] [--redactor-args '--thorough'] [--no-deface] [--json out.json]
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
from tqdm import tqdm

from benchmarks import peers, speed
from benchmarks.score import WIDTH_BINS, score
from benchmarks.synth import BACKGROUNDS, PRESETS, ClipSpec, FaceSpec, GroundTruth, GTTrack, make_clip
from benchmarks.untuned import MIN_WIDTH, longest_clear_run

REPO_ROOT = Path(__file__).resolve().parent.parent
REAL_DIR = Path(os.environ.get("REDACTOR_TEST_DATA") or REPO_ROOT.parent / "shared" / "data") / "real"
OUT_DIR = REPO_ROOT / "benchmarks" / "out" / "recall"
ATTRIBUTION = ("real clips: intel-iot-devkit/sample-videos, CC-BY 4.0, (c) Intel Corporation "
               "(see ../shared/data/real/README.md)")

MIN_VISIBLE = 0.7
"""Boxes at least this visible are scored; the rest are "don't care" (the real clips' README)."""

BANDS: tuple[tuple[str, float, float], ...] = (
    ("<16", 0, 16),
    ("16-24", 16, 24),
    ("24-48", 24, 48),
    ("48-96", 48, 96),
    (">=96", 96, math.inf),
)

SPLIT: dict[str, str] = {
    "walking": "design",
    "headpose": "design",
    "store_aisle": "design",
    "walking_pause": "validation",
    "one_by_one": "validation",
}
SPLIT_REASON = (
    "Decided by the project lead before any #19 change, so that no parameter is chosen on validation footage: "
    "design has walking (24-53 px faces walking at the camera), headpose (122-152 px, strongly rolled heads) and "
    "store_aisle (16-27 px profiles from a high camera); validation keeps one clip of each kind of difficulty "
    "unseen: walking_pause (63-110 px, people walking and pausing) and one_by_one (15-42 px profiles and "
    "three-quarter views of people turning, a different camera at 10 fps)."
)


# ---------------------------------------------------------------- ground truth and scoring


def load_real_truth(path: str | Path) -> GroundTruth:
    """A real clip's boxes (`{"width","height","fps","frames": [[[actor, x, y, w, h, vis], ...], ...]}`) as the
    GroundTruth score.py reads: one track per actor, boxes clipped to the frame, face width = the box width."""
    d = json.loads(Path(path).read_text())
    width, height = int(d["width"]), int(d["height"])
    rows: dict[int, list[tuple[int, float, float, float, float, float, float]]] = {}
    for f, boxes in enumerate(d["frames"]):
        for actor, x, y, w, h, vis in boxes:
            box = (max(0.0, x), max(0.0, y), min(float(width), x + w), min(float(height), y + h))
            rows.setdefault(int(actor), []).append((f, *box, float(vis), float(w)))
    tracks = tuple(GTTrack(a, f"actor{a}", tuple(r)) for a, r in sorted(rows.items()))
    return GroundTruth(width, height, round(d["fps"]), len(d["frames"]), tracks)


def _band(lo: float, hi: float) -> str:
    """The band of BANDS that holds score.py's width bin [lo, hi)."""
    return next(name for name, blo, bhi in BANDS if blo <= lo and hi <= bhi)


@dataclass(frozen=True)
class ClipScore:
    """One tool's output on one clip: (face-frames, protected) per band, runs and background."""

    bands: dict[str, tuple[int, int]]
    face_frames: int
    protected: int
    recall: float | None
    face_frames_24_plus: int
    protected_24_plus: int
    longest_clear_run: int
    longest_clear_run_24_plus: int
    background_changed: float | None
    error: str | None


def score_clip(original: Path, redacted: Path, gt: GroundTruth, min_visible: float = MIN_VISIBLE) -> ClipScore:
    """Score a redacted copy with score.py's rule, in this harness's bands and runs."""
    report = score(original, redacted, gt, min_visible)
    bands = {name: [0, 0] for name, _, _ in BANDS}
    for name, lo, hi in WIDTH_BINS:
        b = report.by_width[name]
        bands[_band(lo, hi)][0] += b.face_frames
        bands[_band(lo, hi)][1] += b.protected
    big = [bands[name] for name, lo, _ in BANDS if lo >= MIN_WIDTH]
    clear = list(report.clear_faces)
    return ClipScore(
        bands={k: (n, p) for k, (n, p) in bands.items()},
        face_frames=report.face_frames,
        protected=report.protected,
        recall=report.recall,
        face_frames_24_plus=sum(n for n, _ in big),
        protected_24_plus=sum(p for _, p in big),
        longest_clear_run=longest_clear_run(clear, gt, 0.0),
        longest_clear_run_24_plus=longest_clear_run(clear, gt, MIN_WIDTH),
        background_changed=report.background_changed,
        error=report.error,
    )


# ---------------------------------------------------------------- tools


@dataclass(frozen=True)
class Tool:
    """A tool as run on every clip: its label in tables, its kind ("redactor", "deface", or "floor": the
    control, a plain decode and re-encode at redactor's encoder settings, benchmarks/speed.py's floor) and
    its options."""

    label: str
    kind: str
    args: tuple[str, ...] = ()

    @property
    def tag(self) -> str:
        """The output file name's tag: the kind and its options."""
        slug = re.sub(r"[^A-Za-z0-9.]+", "_", " ".join(self.args)).strip("_")
        return self.kind + (f"_{slug}" if slug else "")

    def command(self, src: Path, dst: Path) -> list[str]:
        if self.kind == "redactor":
            # `python -m` from the repository root runs this checkout's redactor, whichever one the venv installed.
            return [sys.executable, "-m", "redactor_video", "redact", str(src), "-o", str(dst), "-q", "--overwrite",
                    *self.args]
        return speed.Tool(self.label, self.kind, self.args).command(src, dst, None)


def redactor_tool(args: str = "") -> Tool:
    split = tuple(shlex.split(args))
    return Tool("redactor" + (f" {shlex.join(split)}" if split else ""), "redactor", split)


DEFACE = Tool(f"deface {peers.DEFACE_VERSION}", "deface")
CONTROL = Tool("re-encode only (control)", "floor")


def run_tool(tool: Tool, src: Path, dst: Path) -> tuple[list[str], float, str | None]:
    """Run one tool on one clip: its command, wall seconds and an error (None when it wrote its output)."""
    dst.unlink(missing_ok=True)
    command = tool.command(src, dst)
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    # deface prints its errors and still exits 0: a missing output is the signal that counts.
    if done.returncode != 0 or not dst.exists():
        return command, seconds, f"{tool.label} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"
    return command, seconds, None


# ---------------------------------------------------------------- clips and rows


@dataclass(frozen=True)
class Clip:
    """One clip to score: its name, split, material (real or fresh), video, ground truth and the visibility
    from which a box is scored."""

    name: str
    split: str
    video: Path
    gt: GroundTruth
    material: str = "real"
    min_visible: float = MIN_VISIBLE
    conditions: dict | None = None


def real_clips(folder: Path, names: list[str], split: str) -> list[Clip]:
    """The real clips named (default: every clip in SPLIT) that belong to `split` ("all": any)."""
    chosen = []
    for name in names or list(SPLIT):
        if name not in SPLIT:
            raise click.BadParameter(f"{name!r}: not a real clip; choose from {', '.join(SPLIT)}",
                                     param_hint="--clips")
        if split in ("all", SPLIT[name]):
            video, truth = folder / f"{name}.mp4", folder / f"{name}.json"
            if not video.is_file() or not truth.is_file():
                raise click.ClickException(f"{folder}: {name}.mp4 or {name}.json missing (see --real-dir)")
            chosen.append(Clip(name, SPLIT[name], video, load_real_truth(truth)))
    return chosen


# ---------------------------------------------------------------- fresh synthetic scenes


FRESH_SEED_MIN = 10_000
"""Scene seeds are drawn from here up: every fixed seed design work has used is under 100."""
FRESH_MIN_VISIBLE = 0.5
"""score.py's default for synthetic clips (their visible fraction is exact, not a judgement)."""
FRESH_PRESETS = ("crowd_720p", "walkers_720p")
FRESH_HEIGHTS = (480, 540, 576, 720, 900, 1080)
FRESH_FPS = (2, 30)
FRESH_CRF = (18, 35)


def draw_conditions(rng: np.random.Generator) -> dict:
    """One scene's conditions, each drawn at random from what benchmarks/synth.py renders today: scene (preset
    and a new seed), 16:9 size 480p-1080p, 2-30 fps, colour or night IR, background photo, and crf 18-35."""
    height = int(rng.choice(FRESH_HEIGHTS))
    return {
        "preset": str(rng.choice(FRESH_PRESETS)),
        "scene_seed": int(rng.integers(FRESH_SEED_MIN, 2**31)),
        "width": 2 * round(height * 16 / 9 / 2),
        "height": height,
        "fps": int(rng.integers(FRESH_FPS[0], FRESH_FPS[1] + 1)),
        "night_ir": bool(rng.random() < 0.5),
        "background": str(rng.choice(BACKGROUNDS)),
        "crf": int(rng.integers(FRESH_CRF[0], FRESH_CRF[1] + 1)),
    }


def fresh_spec(conditions: dict) -> ClipSpec:
    """The preset scene at the drawn size and frame rate: sizes and paths scale with the frame height, and the
    scene keeps its length in seconds, so a face crosses the frame in the same time at 2 fps as at 30."""
    base = PRESETS[conditions["preset"]](conditions["scene_seed"])
    k, t = conditions["height"] / base.height, conditions["fps"] / base.fps
    n = max(2, round(base.n_frames * t))

    def rescale(face: FaceSpec) -> FaceSpec:
        first = min(n - 1, round(face.start_frame * t))
        return dataclasses.replace(
            face, width_px_start=face.width_px_start * k, width_px_end=face.width_px_end * k,
            path=tuple((x * k, y * k) for x, y in face.path), start_frame=first,
            end_frame=min(n, max(first + 1, round(face.end_frame * t))))

    return dataclasses.replace(base, width=conditions["width"], height=conditions["height"], fps=conditions["fps"],
                               n_frames=n, faces=tuple(rescale(f) for f in base.faces),
                               night_ir=conditions["night_ir"], background=conditions["background"])


def fresh_name(i: int, c: dict) -> str:
    return (f"fresh{i:03d}_{c['preset'].removesuffix('_720p')}_s{c['scene_seed']}_{c['height']}p_{c['fps']}fps"
            f"_{'ir' if c['night_ir'] else 'colour'}_{c['background']}_crf{c['crf']}")


DESIGN_SCENES = ((1, 480, 25, False, 23), (2, 480, 12, True, 30), (3, 540, 30, False, 30), (4, 576, 20, True, 23),
                 (5, 720, 25, True, 28), (6, 1080, 15, False, 26), (7, 480, 28, False, 30), (8, 900, 8, True, 20))
"""The fixed-seed synthetic design scenes of each preset: seed, height, fps, night IR, crf."""


def design_conditions() -> list[dict]:
    """The conditions of every fixed-seed design scene (DESIGN_SCENES of each preset)."""
    return [{"preset": preset, "scene_seed": seed, "width": 2 * round(height * 16 / 9 / 2), "height": height,
             "fps": fps, "night_ir": ir, "background": BACKGROUNDS[seed % len(BACKGROUNDS)], "crf": crf}
            for preset in FRESH_PRESETS for seed, height, fps, ir, crf in DESIGN_SCENES]


def render_fresh(i: int, conditions: dict, out_dir: Path) -> Clip:
    """Render one drawn scene (validation material: its seed is new) and its exact ground truth. A scene
    already rendered under this name in `out_dir` is scored as it is: libx264 does not encode the same
    frames to the same stream twice, so only the same file lets two runs (two commits) be compared."""
    name = fresh_name(i, conditions)
    video = out_dir / "fresh" / f"{name}.mp4"
    video.parent.mkdir(parents=True, exist_ok=True)
    truth = Path(f"{video}.gt.json")
    if video.exists() and truth.exists():
        gt = GroundTruth.load(truth)
    else:
        gt = make_clip(fresh_spec(conditions), video, crf=conditions["crf"])
    return Clip(name, "validation", video, gt, "fresh", FRESH_MIN_VISIBLE, conditions)


def measure(clip: Clip, tool: Tool, out_dir: Path) -> dict:
    """Run `tool` on `clip`, score it, and return the row (split, clip, tool, command, seconds, figures)."""
    dst = (clip.video.parent if clip.material == "fresh" else out_dir) / f"{clip.name}.{tool.tag}.mp4"
    command, seconds, error = run_tool(tool, clip.video, dst)
    row = {"split": clip.split, "material": clip.material, "clip": clip.name, "tool": tool.label,
           "command": shlex.join(command), "seconds": round(seconds, 2), "output": str(dst),
           "min_visible": clip.min_visible} | ({"conditions": clip.conditions} if clip.conditions else {})
    if error is not None:
        return row | {"error": error}
    return row | dataclasses.asdict(score_clip(clip.video, dst, clip.gt, clip.min_visible))


def totals(rows: list[dict]) -> list[dict]:
    """Per material and split (and over all real clips when both splits are there), per tool: face-frames
    summed; the worst clip's longest clear runs and background changed."""
    out = []
    groups = list(dict.fromkeys((r["material"], r["split"]) for r in rows))
    if len({split for material, split in groups if material == "real"}) > 1:
        groups.append(("real", "all"))
    for material, split in groups:
        for tool in dict.fromkeys(r["tool"] for r in rows):
            chosen = [r for r in rows if r["tool"] == tool and r["material"] == material
                      and split in ("all", r["split"]) and "bands" in r]
            if not chosen:
                continue
            bands = {name: tuple(sum(r["bands"][name][i] for r in chosen) for i in (0, 1)) for name, _, _ in BANDS}
            n, p = sum(r["face_frames"] for r in chosen), sum(r["protected"] for r in chosen)
            backgrounds = [r["background_changed"] for r in chosen if r["background_changed"] is not None]
            out.append({
                "split": split, "material": material, "tool": tool, "bands": bands,
                "clip": f"total {material}, {len(chosen)} clip{'s' if len(chosen) > 1 else ''}",
                "face_frames": n, "protected": p, "recall": p / n if n else None,
                "face_frames_24_plus": sum(r["face_frames_24_plus"] for r in chosen),
                "protected_24_plus": sum(r["protected_24_plus"] for r in chosen),
                "longest_clear_run": max(r["longest_clear_run"] for r in chosen),
                "longest_clear_run_24_plus": max(r["longest_clear_run_24_plus"] for r in chosen),
                "background_changed": max(backgrounds) if backgrounds else None,
                "background_changed_mean": sum(backgrounds) / len(backgrounds) if backgrounds else None,
                "error": "; ".join(r["error"] for r in chosen if r.get("error")) or None,
            })
    return out


def _cell(n: int, p: int) -> str:
    return "-" if n == 0 else f"{100 * p / n:.1f}% ({p}/{n})"


def table(rows: list[dict]) -> str:
    """A Markdown table: one line per clip and tool, recall by band, clear runs and background changed."""
    lines = ["| split | clip | tool | " + " | ".join(f"{name} px" for name, _, _ in BANDS)
             + " | all scored | >= 24 px | longest clear run | >= 24 px | background changed |",
             "|---|---|---|" + "---:|" * (len(BANDS) + 5)]
    for r in rows:
        if "bands" not in r:
            lines.append(f"| {r['split']} | {r['clip']} | {r['tool']} | ERROR: {r['error']} |")
            continue
        bg = "n/a" if r["background_changed"] is None else f"{100 * r['background_changed']:.2f}%"
        lines.append(
            f"| {r['split']} | {r['clip']} | {r['tool']} | "
            + " | ".join(_cell(*r["bands"][name]) for name, _, _ in BANDS)
            + f" | {_cell(r['face_frames'], r['protected'])}"
            f" | {_cell(r['face_frames_24_plus'], r['protected_24_plus'])}"
            f" | {r['longest_clear_run']} | {r['longest_clear_run_24_plus']} | {bg} |"
            + (f" ERROR: {r['error']}" if r.get("error") else ""))
    return "\n".join(lines)


@click.command()
@click.option("--split", type=click.Choice(["design", "validation", "all"]), default="all", show_default=True,
              help="Score the design clips, the validation clips or both (fresh scenes are validation).")
@click.option("--clips", "clip_names", multiple=True, metavar="NAMES",
              help=f"Comma-separated real clips (repeatable) [default: all of {', '.join(SPLIT)}].")
@click.option("--real/--no-real", default=True, show_default=True, help="Score the real clips.")
@click.option("--fresh", type=click.IntRange(0), default=0, show_default=True, metavar="N",
              help="Also draw N synthetic scenes under random conditions (size, frame rate, colour or night IR, "
                   "background, crf) with new seeds, and score them the same way.")
@click.option("--design-scenes", is_flag=True,
              help="Also score the 16 fixed-seed synthetic design scenes (crowd and walkers, seeds 1-8, "
                   "480p-1080p, 8-30 fps), labelled design: material a change may be chosen on.")
@click.option("--seed", type=click.IntRange(0), default=None,
              help="Seed for --fresh [default: drawn from os.urandom and printed, so a run can be repeated].")
@click.option("--redactor-args", default="", metavar="ARGS",
              help="Extra `redactor redact` options, e.g. '--thorough' [default: none, the defaults].")
@click.option("--no-deface", is_flag=True, help="Score redactor only (no deface venv is built).")
@click.option("--control", is_flag=True,
              help="Also score a plain re-encode at redactor's encoder settings, nothing masked: the scorer must "
                   "call every face in it clear.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every row, total, command and the machine as JSON.")
@click.option("--real-dir", type=click.Path(file_okay=False, path_type=Path), default=REAL_DIR,
              show_default=True, help="Folder of the real clips and their JSON boxes.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=OUT_DIR, show_default=True,
              help="Where the redacted copies (and fresh scenes) go.")
def main(split: str, clip_names: tuple[str, ...], real: bool, fresh: int, design_scenes: bool, seed: int | None,
         redactor_args: str, no_deface: bool, control: bool, json_path: Path | None, real_dir: Path,
         out_dir: Path) -> None:
    """Score redactor and deface side by side on the real clips (and --fresh synthetic scenes): recall by face
    width, longest clear run, background changed, per clip and in total, each row labelled design or
    validation."""
    names = [n.strip() for text in clip_names for n in text.split(",") if n.strip()]
    clips = real_clips(real_dir, names, split) if real else []
    if fresh and split == "design":
        raise click.BadParameter("fresh scenes are validation material, never design", param_hint="--fresh")
    if design_scenes:
        clips += [dataclasses.replace(render_fresh(i, conditions, out_dir / "design"), split="design")
                  for i, conditions in enumerate(design_conditions())]
    if not clips and not fresh:
        raise click.ClickException(f"no clip of split {split!r}" + (f" among {', '.join(names)}" if names else ""))
    seed = int.from_bytes(os.urandom(4), "little") if seed is None else seed
    conditions = [draw_conditions(rng) for rng in [np.random.default_rng(seed)] for _ in range(fresh)]
    tools = [redactor_tool(redactor_args)] + ([] if no_deface else [DEFACE]) + ([CONTROL] if control else [])
    out_dir.mkdir(parents=True, exist_ok=True)
    info = speed.machine()
    click.echo(f"{info['cpu']}, {info['cores']} cores, {info['date']}, commit {info['commit'][:10]}"
               + (", uncommitted: " + "; ".join(info["uncommitted"]) if info["uncommitted"] else ""))
    if clips:
        click.echo(f"split: {SPLIT_REASON}\n{ATTRIBUTION}")
    if fresh:
        click.echo(f"fresh scenes: seed {seed} (--fresh {fresh} --seed {seed} draws the same {fresh} again)")
    click.echo("")
    rows = []
    with tqdm(total=(len(clips) + fresh) * len(tools) + fresh, unit="step", file=sys.stderr) as bar:
        def run(clip: Clip) -> None:
            for tool in tools:
                bar.set_postfix_str(f"{clip.name}: {tool.label}")
                rows.append(measure(clip, tool, out_dir))
                bar.update()

        for clip in clips:
            run(clip)
        for i, c in enumerate(conditions):
            bar.set_postfix_str(f"{fresh_name(i, c)}: render")
            clip = render_fresh(i, c, out_dir)
            bar.update()
            run(clip)
    summary = totals(rows)
    click.echo(table(rows + summary))
    for tool in tools:
        command = ("PyAV decode, to RGB and back, encode at redactor's encoder settings (benchmarks/speed.py's floor)"
                   if tool.kind == "floor" else shlex.join(tool.command(Path("CLIP"), Path("OUT"))))
        click.echo(f"\n{tool.label}: {command}")
    if json_path is not None:
        json_path.write_text(json.dumps({
            "machine": info, "split": split, "split_reason": SPLIT_REASON, "split_of": SPLIT,
            "attribution": ATTRIBUTION, "min_visible": MIN_VISIBLE, "fresh": fresh,
            "fresh_seed": seed if fresh else None, "fresh_min_visible": FRESH_MIN_VISIBLE,
            "redactor_args": redactor_args, "bands": [name for name, _, _ in BANDS], "rows": rows,
            "totals": summary}, indent=1))
    if any(r.get("error") for r in rows):
        raise click.exceptions.Exit(1)


if __name__ == "__main__":
    main()
