"""Recall and changed background on scenes the defaults were not tuned on, colour and night IR.

speed.py times one scene (crowd_720p, seed 0), the one defaults were chosen on.
This renders the other seeds of the crowd scene and of the walkers scene
(faces crossing the frame at 4-9 px per frame), each in colour and as a grey,
noisy night-IR camera would record it, runs `redactor redact -q` on each with
the given flags (none: the defaults) and scores the output with
benchmarks.score. The criterion columns: recall of faces >= 24 px, the longest
run of consecutive frames any such face stayed clear, and the share of
background changed.

Run: python -m benchmarks.untuned [--flags '--thorough'] [--json out.json]
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import subprocess
import sys
from pathlib import Path

import click

from benchmarks.score import WIDTH_BINS, score
from benchmarks.speed import OUT_DIR, ensure_clip, machine
from benchmarks.synth import ClipSpec, GroundTruth, crowd_720p, night_ir, walkers_720p

SCENES: tuple[tuple[str, int], ...] = (
    ("crowd_720p", 1), ("crowd_720p", 2), ("crowd_720p", 3),
    ("walkers_720p", 0), ("walkers_720p", 1), ("walkers_720p", 2), ("walkers_720p", 3),
)
PRESETS = {"crowd_720p": crowd_720p, "walkers_720p": walkers_720p}
MIN_WIDTH = 24.0
"""Faces at least this wide (and half visible) fall under the default settings' criteria."""


def longest_clear_run(clear: list[tuple[int, int]], gt: GroundTruth, min_width: float = MIN_WIDTH) -> int:
    """The longest run of consecutive frames one face at least `min_width` px wide stayed clear."""
    width = {(f, t.id): row_width for t in gt.tracks for f, *_, row_width in t.frames}
    frames: dict[int, list[int]] = {}
    for f, tid in clear:
        if width[(f, tid)] >= min_width:
            frames.setdefault(tid, []).append(f)
    best = 0
    for seen in frames.values():
        seen.sort()
        run = 1
        for before, f in zip([None, *seen], seen):
            run = run + 1 if before == f - 1 else 1
            best = max(best, run)
    return best


def measure(spec: ClipSpec, name: str, flags: list[str]) -> dict:
    clip = OUT_DIR / f"{name}.mp4"
    gt = ensure_clip(spec, clip)
    out = OUT_DIR / f"{name}.redacted.mp4"
    command = [sys.executable, "-m", "redactor_video", "redact", str(clip), "-o", str(out), "-q", "--overwrite", *flags]
    subprocess.run(command, check=True)
    scored = score(clip, out, gt)
    if scored.error:
        raise click.ClickException(f"{name}: {scored.error}")
    big = [scored.by_width[label] for label, lo, _ in WIDTH_BINS if lo >= MIN_WIDTH]
    frames, kept = sum(b.face_frames for b in big), sum(b.protected for b in big)
    return {"clip": name, "command": shlex.join(command), "by_width": {k: dataclasses.asdict(v) for k, v in
                                                                        scored.by_width.items()},
            "recall_24_plus": kept / frames if frames else None, "face_frames_24_plus": frames,
            "longest_clear_run_24_plus": longest_clear_run(list(scored.clear_faces), gt),
            "background_changed": scored.background_changed}


def parse_scene(text: str) -> tuple[str, int]:
    preset, _, seed = text.partition(":")
    if preset not in PRESETS or not seed.isdigit():
        raise click.BadParameter(f"{text!r}: expected PRESET:SEED with PRESET one of {', '.join(PRESETS)}",
                                 param_hint="--scene")
    return preset, int(seed)


def table(rows: list[dict]) -> str:
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.1f}%"

    lines = ["| clip | 16-24 px | 24-48 px | 48-96 px | 96+ px | all >= 24 px | longest clear run >= 24 px (frames) "
             "| background changed |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        bins = [pct(r["by_width"][k]["recall"]) for k in ("16-24", "24-48", "48-96", "96+")]
        lines.append(f"| {r['clip']} | " + " | ".join(bins) + f" | {pct(r['recall_24_plus'])} "
                     f"({r['face_frames_24_plus']}) | {r['longest_clear_run_24_plus']} | "
                     f"{100 * r['background_changed']:.2f}% |")
    return "\n".join(lines)


@click.command()
@click.option("--flags", default="", help="redactor redact flags to test, e.g. '--thorough' (default: none).")
@click.option("--scene", "only", multiple=True, metavar="PRESET:SEED",
              help="Score these scenes instead, e.g. walkers_720p:1 or a held-out seed such as walkers_720p:5 "
                   "(repeatable; default: crowd seeds 1-3 and walkers seeds 0-3).")
@click.option("--variant", type=click.Choice(["both", "colour", "ir"]), default="both", show_default=True,
              help="Colour, night IR or both.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every figure and command as JSON.")
def main(flags: str, only: tuple[str, ...], variant: str, json_path: Path | None) -> None:
    """Score redactor on every untuned scene, colour and night IR; print a Markdown table."""
    rows = []
    for preset, seed in [parse_scene(text) for text in only] or SCENES:
        for ir in {"both": (False, True), "colour": (False,), "ir": (True,)}[variant]:
            spec = PRESETS[preset](seed)
            name = f"untuned_{preset}_seed{seed}{'_ir' if ir else ''}"
            rows.append(measure(night_ir(spec) if ir else spec, name, shlex.split(flags)))
            click.echo(f"{name}: done", err=True)
    click.echo(table(rows))
    if json_path is not None:
        json_path.write_text(json.dumps({"machine": machine(), "flags": flags, "scenes": list(only) or "all",
                                         "variant": variant, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
