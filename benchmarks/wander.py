"""How far real faces stray from a straight line between two sightings, on design material only (TrackingPolicy.wander).

Between two finds of one face the look-ahead masks the line between them,
grown by a margin. The margin follows a random walk: a face sighted at times 0
and T sits, at the middle, a distance off the line with variance D * T / 4 per
axis (a Brownian bridge; D in face widths squared per second). This measures D
on the hand-checked tracks of the real design clips (benchmarks/recall.py's
SPLIT): for every face seen (vis >= 0.7) at three times t, t + T/2 and t + T, the
middle box centre's distance from the line between the other two, per axis, in
face widths (the mean of the two ends' widths). Each gap T gives its own
estimate 4 * mean(r^2 / T); a random walk gives the same D at every gap, and the
policy takes the largest.

Run: python -m benchmarks.wander [--real-dir ../shared/data/real]
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from benchmarks import recall

GAPS = (0.13, 0.27, 0.53, 0.8, 1.07, 1.47)
"""Gaps between the two outer sightings, in seconds (rounded to whole frames of each clip)."""


def strays(clips: list[recall.Clip], gap: float) -> tuple[np.ndarray, np.ndarray]:
    """For every middle sighting at about `gap` apart: its offset from the line per axis, in face widths, and
    the gap in seconds it was measured over (whole frames of its clip)."""
    offsets, seconds = [], []
    for clip in clips:
        half = max(1, round(gap * clip.gt.fps / 2))
        for track in clip.gt.tracks:
            seen = {int(f): np.array([(x1 + x2) / 2, (y1 + y2) / 2, width])
                    for f, x1, y1, x2, y2, vis, width in track.frames if vis >= recall.MIN_VISIBLE}
            for f, a in seen.items():
                if f + half in seen and f + 2 * half in seen:
                    b, c = seen[f + half], seen[f + 2 * half]
                    offsets.append((b[:2] - (a[:2] + c[:2]) / 2) / ((a[2] + c[2]) / 2))
                    seconds.append(2 * half / clip.gt.fps)
    return np.array(offsets).reshape(-1, 2), np.array(seconds)


@click.command()
@click.option("--real-dir", type=click.Path(file_okay=False, path_type=Path), default=recall.REAL_DIR,
              show_default=True, help="The real clips and their ground truth.")
def main(real_dir: Path) -> None:
    """Print how far faces stray from a straight line over each gap, and the random walk's D."""
    clips = recall.real_clips(real_dir, [], "design")
    click.echo(f"design clips: {', '.join(c.name for c in clips)}\n{recall.ATTRIBUTION}\n")
    click.echo("| gap | middles | offset rms, face widths | p99 | largest | D = 4 mean(r^2 / gap) |\n"
               "|---:|---:|---:|---:|---:|---:|")
    estimates = []
    for gap in GAPS:
        r, seconds = strays(clips, gap)
        if not len(r):
            continue
        estimates.append(4 * float(np.mean(r ** 2 / seconds[:, None])))
        click.echo(f"| {np.mean(seconds):.2f} s | {len(r)} | {np.sqrt(np.mean(r ** 2)):.3f} "
                   f"| {np.percentile(np.abs(r), 99):.3f} | {np.abs(r).max():.3f} | {estimates[-1]:.3f} |")
    click.echo(f"\nD: {min(estimates):.3f}-{max(estimates):.3f} face widths^2/s over these gaps (policy takes the "
               "largest, rounded up)")


if __name__ == "__main__":
    main()
