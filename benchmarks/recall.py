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

Run: python -m benchmarks.recall [--split design|validation|all] [--clips walking,headpose]
         [--redactor-args '--thorough'] [--no-deface] [--json out.json]
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
from tqdm import tqdm

from benchmarks import peers
from benchmarks.score import WIDTH_BINS, score
from benchmarks.speed import machine
from benchmarks.synth import GroundTruth, GTTrack
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
    """A redaction tool as run on every clip: its label in tables and the file name tag of its outputs."""

    label: str
    tag: str
    args: tuple[str, ...] = ()

    def command(self, src: Path, dst: Path) -> list[str]:
        if self.tag.startswith("redactor"):
            return [sys.executable, "-m", "redactor", "redact", str(src), "-o", str(dst), "-q", "--overwrite",
                    *self.args]
        return [str(peers.ensure_deface()), str(src), "-o", str(dst), *peers.deface_args()]


def redactor_tool(args: str = "") -> Tool:
    split = tuple(shlex.split(args))
    slug = re.sub(r"[^A-Za-z0-9.]+", "_", " ".join(split)).strip("_")
    return Tool("redactor" + (f" {shlex.join(split)}" if split else ""), "redactor" + (f"_{slug}" if slug else ""),
                split)


DEFACE = Tool(f"deface {peers.DEFACE_VERSION}", "deface")


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
    """One clip to score: its name, split, video and ground truth."""

    name: str
    split: str
    video: Path
    gt: GroundTruth


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


def measure(clip: Clip, tool: Tool, out_dir: Path) -> dict:
    """Run `tool` on `clip`, score it, and return the row (split, clip, tool, command, seconds, figures)."""
    dst = out_dir / f"{clip.name}.{tool.tag}.mp4"
    command, seconds, error = run_tool(tool, clip.video, dst)
    row = {"split": clip.split, "clip": clip.name, "tool": tool.label, "command": shlex.join(command),
           "seconds": round(seconds, 2), "output": str(dst)}
    if error is not None:
        return row | {"error": error}
    return row | dataclasses.asdict(score_clip(clip.video, dst, clip.gt))


def totals(rows: list[dict]) -> list[dict]:
    """Per split (and over all splits when there are two), per tool: face-frames summed; the worst clip's
    longest clear runs and background changed."""
    out = []
    splits = sorted({r["split"] for r in rows})
    for split in splits + (["all"] if len(splits) > 1 else []):
        for tool in dict.fromkeys(r["tool"] for r in rows):
            chosen = [r for r in rows if r["tool"] == tool and split in ("all", r["split"]) and "bands" in r]
            if not chosen:
                continue
            bands = {name: tuple(sum(r["bands"][name][i] for r in chosen) for i in (0, 1)) for name, _, _ in BANDS}
            n, p = sum(r["face_frames"] for r in chosen), sum(r["protected"] for r in chosen)
            backgrounds = [r["background_changed"] for r in chosen if r["background_changed"] is not None]
            out.append({
                "split": split, "clip": f"total, {len(chosen)} clip{'s' if len(chosen) > 1 else ''}", "tool": tool,
                "bands": bands,
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
              help="Score the design clips, the validation clips or both.")
@click.option("--clips", "clip_names", multiple=True, metavar="NAMES",
              help=f"Comma-separated real clips (repeatable) [default: all of {', '.join(SPLIT)}].")
@click.option("--redactor-args", default="", metavar="ARGS",
              help="Extra `redactor redact` options, e.g. '--thorough' [default: none, the defaults].")
@click.option("--no-deface", is_flag=True, help="Score redactor only (no deface venv is built).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every row, total, command and the machine as JSON.")
@click.option("--real-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=REAL_DIR,
              show_default=True, help="Folder of the real clips and their JSON boxes.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=OUT_DIR, show_default=True,
              help="Where the redacted copies go.")
def main(split: str, clip_names: tuple[str, ...], redactor_args: str, no_deface: bool, json_path: Path | None,
         real_dir: Path, out_dir: Path) -> None:
    """Score redactor and deface side by side on the real clips: recall by face width, longest clear run,
    background changed, per clip and in total, each row labelled design or validation."""
    names = [n.strip() for text in clip_names for n in text.split(",") if n.strip()]
    clips = real_clips(real_dir, names, split)
    if not clips:
        raise click.ClickException(f"no clip of split {split!r} among {', '.join(names)}")
    tools = [redactor_tool(redactor_args)] + ([] if no_deface else [DEFACE])
    out_dir.mkdir(parents=True, exist_ok=True)
    info = machine()
    click.echo(f"{info['cpu']}, {info['cores']} cores, {info['date']}, commit {info['commit'][:10]}"
               + (", uncommitted: " + "; ".join(info["uncommitted"]) if info["uncommitted"] else ""))
    click.echo(f"split: {SPLIT_REASON}\n{ATTRIBUTION}\n")
    rows = []
    with tqdm(total=len(clips) * len(tools), unit="run", file=sys.stderr) as bar:
        for clip in clips:
            for tool in tools:
                bar.set_postfix_str(f"{clip.name}: {tool.label}")
                rows.append(measure(clip, tool, out_dir))
                bar.update()
    summary = totals(rows)
    click.echo(table(rows + summary))
    for tool in tools:
        click.echo(f"\n{tool.label}: {shlex.join(tool.command(Path('CLIP'), Path('OUT')))}")
    if json_path is not None:
        json_path.write_text(json.dumps({
            "machine": info, "split": split, "split_reason": SPLIT_REASON, "split_of": SPLIT,
            "attribution": ATTRIBUTION, "min_visible": MIN_VISIBLE, "redactor_args": redactor_args,
            "bands": [name for name, _, _ in BANDS], "rows": rows, "totals": summary}, indent=1))
    if any(r.get("error") for r in rows):
        raise click.exceptions.Exit(1)


if __name__ == "__main__":
    main()
