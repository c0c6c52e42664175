"""How real faces move between sightings, on design material only (TrackingPolicy.wander and .start_speed).

For every face seen (vis >= 0.7) at t, t + T/2 and t + T on the hand-checked
tracks of the real design clips (benchmarks/recall.py's SPLIT), the middle box
centre's distance from the line between the other two, per axis, in face
widths (the mean of the two ends' widths), for gaps T from 0.13 s to 2 s.

Taken as a random walk of the place alone, the middle sits off with variance
D T / 4, so each gap gives its own estimate D = 4 mean(r^2 / T); the policy's
`wander`, which grows the look-ahead's line between two finds, is the largest
up to 1.5 s, rounded up. Adding a random walk of the velocity (sigma_a) makes it
D T / 4 + sigma_a^2 T^3 / 48 (at fraction a of the gap, D T a (1 - a) +
sigma_a^2 T^3 a^2 (1 - a)^2 / 3): the command fits both at once (least squares on
relative error, both >= 0) and prints the fit beside each gap. Then, for a face
seen twice, how far it is 0.25-1 s later from where that motion put it, against
the fitted model's standard deviation, which is what a motion model's gate and
coasting margin need; and how fast faces go (the policy's `start_speed`). The
two-parameter model was tried as the tracker's process noise and not kept
(benchmarks/RESULTS.md).

Run: python -m benchmarks.wander [--real-dir ../shared/data/real]
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
from scipy.optimize import nnls

from benchmarks import recall

GAPS = (0.13, 0.27, 0.4, 0.53, 0.67, 0.8, 1.07, 1.33, 1.47, 1.8, 2.0)
"""Gaps between the two outer sightings, in seconds (rounded to whole frames of each clip)."""


def sightings(clip: recall.Clip) -> list[dict[int, np.ndarray]]:
    """Per hand-checked track of `clip`: frame -> (centre x, centre y, face width) where it is seen (vis >= 0.7)."""
    return [{int(f): np.array([(x1 + x2) / 2, (y1 + y2) / 2, width])
             for f, x1, y1, x2, y2, vis, width in track.frames if vis >= recall.MIN_VISIBLE}
            for track in clip.gt.tracks]


def strays(clips: list[recall.Clip], gap: float) -> tuple[np.ndarray, np.ndarray]:
    """For every middle sighting at about `gap` apart: its offset from the line per axis, in face widths, and
    the gap in seconds it was measured over (whole frames of its clip)."""
    offsets, seconds = [], []
    for clip in clips:
        half = max(1, round(gap * clip.gt.fps / 2))
        for seen in sightings(clip):
            for f, a in seen.items():
                if f + half in seen and f + 2 * half in seen:
                    b, c = seen[f + half], seen[f + 2 * half]
                    offsets.append((b[:2] - (a[:2] + c[:2]) / 2) / ((a[2] + c[2]) / 2))
                    seconds.append(2 * half / clip.gt.fps)
    return np.array(offsets).reshape(-1, 2), np.array(seconds)


def speeds(clips: list[recall.Clip], gap: float) -> np.ndarray:
    """Every face's speed over `gap` seconds (whole frames of its clip), in face widths per second."""
    out = []
    for clip in clips:
        step = max(1, round(gap * clip.gt.fps))
        for seen in sightings(clip):
            out += [float(np.hypot(*(seen[f + step][:2] - a[:2]))) / ((a[2] + seen[f + step][2]) / 2)
                    / (step / clip.gt.fps) for f, a in seen.items() if f + step in seen]
    return np.array(out)


def middle_variance(gap: float, wander: float, acceleration: float) -> float:
    """The model's variance of the middle's offset from the line, per axis, in face widths squared."""
    return wander * gap / 4 + acceleration ** 2 * gap ** 3 / 48


def overshoots(clips: list[recall.Clip], seen_over: float, ahead: float) -> np.ndarray:
    """How far each face, seen at -`seen_over` and 0 (seconds), is `ahead` seconds later from where that
    motion put it, per axis, in face widths (its width at 0)."""
    out = []
    for clip in clips:
        back, forward = max(1, round(seen_over * clip.gt.fps)), max(1, round(ahead * clip.gt.fps))
        for seen in sightings(clip):
            for f, a in seen.items():
                b, c = seen.get(f + back), seen.get(f + back + forward)
                if b is not None and c is not None:
                    out.append(((c[:2] - b[:2]) - forward / back * (b[:2] - a[:2])) / b[2])
    return np.array(out).reshape(-1, 2)


def ahead_variance(seen_over: float, ahead: float, wander: float, acceleration: float) -> float:
    """The model's variance of that overshoot, per axis: the two random walks, carried forward by the
    motion read off the two sightings."""
    return wander * ahead * (1 + ahead / seen_over) + acceleration ** 2 * ahead ** 2 * (ahead + seen_over) / 3


@click.command()
@click.option("--real-dir", type=click.Path(file_okay=False, path_type=Path), default=recall.REAL_DIR,
              show_default=True, help="The real clips and their ground truth.")
def main(real_dir: Path) -> None:
    """Print how far faces stray from a straight line over each gap, the fitted models, and how fast faces go."""
    clips = recall.real_clips(real_dir, [], "design")
    click.echo(f"design clips: {', '.join(c.name for c in clips)}\n{recall.ATTRIBUTION}\n")
    measured = []
    for gap in GAPS:
        r, seconds = strays(clips, gap)
        if len(r):
            measured.append((float(np.mean(seconds)), r, 4 * float(np.mean(r ** 2 / seconds[:, None]))))
    gaps = np.array([g for g, _, _ in measured])
    mean_square = np.array([float(np.mean(r ** 2)) for _, r, _ in measured])
    terms = np.stack([gaps / 4, gaps ** 3 / 48], axis=1) / mean_square[:, None]
    (wander, accel_var), _ = nnls(terms, np.ones(len(gaps)))
    acceleration = float(np.sqrt(accel_var))
    click.echo("| gap | middles | offset rms, face widths | p99 | largest | D = 4 mean(r^2 / gap) "
               "| two-walk model rms |\n|---:|---:|---:|---:|---:|---:|---:|")
    for gap, r, alone in measured:
        click.echo(f"| {gap:.2f} s | {len(r)} | {np.sqrt(np.mean(r ** 2)):.3f} "
                   f"| {np.percentile(np.abs(r), 99):.3f} | {np.abs(r).max():.3f} | {alone:.3f} "
                   f"| {np.sqrt(middle_variance(gap, wander, acceleration)):.3f} |")
    click.echo(f"\ntwo-walk fit: D = {wander:.4f} face widths^2/s, sigma_a = {acceleration:.3f} face widths/s^2")
    click.echo("\nA face seen twice, then `ahead` later: how far from where its motion put it, against the "
               "model's sigma\n\n"
               "| seen over | ahead | faces | rms, face widths | model sigma | p99 / sigma | largest / sigma |\n"
               "|---:|---:|---:|---:|---:|---:|---:|")
    for seen_over in (0.25, 0.5):
        for ahead in (0.25, 0.5, 1.0):
            r = overshoots(clips, seen_over, ahead)
            sigma = np.sqrt(ahead_variance(seen_over, ahead, wander, acceleration))
            click.echo(f"| {seen_over:.2f} s | {ahead:.2f} s | {len(r)} | {np.sqrt(np.mean(r ** 2)):.3f} | {sigma:.3f} "
                       f"| {np.percentile(np.abs(r), 99) / sigma:.1f} | {np.abs(r).max() / sigma:.1f} |")
    v = speeds(clips, 0.2)
    click.echo(f"speed over 0.2 s ({len(v)} pairs): median {np.median(v):.2f}, p90 {np.percentile(v, 90):.2f}, "
               f"p99 {np.percentile(v, 99):.2f}, largest {v.max():.2f} face widths/s")


if __name__ == "__main__":
    main()
