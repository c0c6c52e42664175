"""How long after a face shows the default detection schedule first finds it, by size, on design material only.

The look-ahead paints a new track's first box back over the frames before it,
for as long as a face of that size may have gone unfound. This measures how
long that is: on the real design clips (benchmarks/recall.py's SPLIT; a face
"shows" once its box is at least 70% visible) and the 16 synthetic design scenes
of benchmarks/boxes.py (at least 50% visible, as score.py counts them), every
frame goes through the detection schedule as `redactor redact` runs it (the
sweep every `sweep_period` frames), and a face counts as found on the first frame
a find from the start score has its centre in the face's box. Rows are the
face's width at whole-frame BlazeFace's 192 px input (the tracking policy's
small_face is 7.2 px, large_face 14.4 px), split into colour and night IR.

Run: python -m benchmarks.delay [--real-dir ../shared/data/real] [--out-dir benchmarks/out/boxes]
"""

from __future__ import annotations

from pathlib import Path

import av
import click
import numpy as np

from benchmarks import boxes, recall
from benchmarks.synth import GroundTruth
from redactor_video.pipeline import Pipeline
from redactor_video.settings import RedactSettings
from redactor_video.types import Frame

BANDS = ((0.0, 7.2), (7.2, 10.0), (10.0, 14.4), (14.4, float("inf")))
"""Face widths at whole-frame BlazeFace's input, px."""
INPUT = 192
"""Whole-frame BlazeFace's input, px across the frame's long side."""


def delays(video: Path, gt: GroundTruth, min_visible: float, pipeline: Pipeline) -> list[tuple[float, float | None]]:
    """(width at BlazeFace's input, seconds from showing to the first find or None if never) per face."""
    settings = pipeline.settings
    period, scale = settings.sweep_period(gt.fps), INPUT / max(gt.width, gt.height)
    shown: dict[int, tuple[int, float]] = {}
    found: dict[int, int] = {}
    with av.open(str(video)) as container:
        for i, picture in enumerate(container.decode(video=0)):
            finds, _ = pipeline.detect(Frame(i, picture.to_ndarray(format="rgb24")), i % period == 0)
            sure = finds.xyxy[finds.confidence >= settings.threshold]
            centres = (sure[:, :2] + sure[:, 2:]) / 2
            for face in gt.boxes_at(i):
                if face.visible_fraction < min_visible or face.track_id in found:
                    continue
                shown.setdefault(face.track_id, (i, face.face_width * scale))
                x1, y1, x2, y2 = face.box
                if np.any((centres[:, 0] >= x1) & (centres[:, 0] <= x2) & (centres[:, 1] >= y1) & (centres[:, 1] <= y2)):
                    found[face.track_id] = i
    return [(width, (found[t] - first) / gt.fps if t in found else None) for t, (first, width) in shown.items()]


@click.command()
@boxes.design_options
def main(real_dir: Path, out_dir: Path) -> None:
    """Print how long faces of each size go unfound after they show, on design material."""
    clips = [(c.video, c.gt, recall.MIN_VISIBLE, False) for c in recall.real_clips(real_dir, [], "design")]
    clips += [(video, gt, recall.FRESH_MIN_VISIBLE, "_ir_" in video.name) for video, gt in boxes.design_scenes(out_dir)]
    rows: list[tuple[bool, float, float | None]] = []
    with Pipeline(RedactSettings()) as pipeline:
        for video, gt, min_visible, ir in clips:
            rows += [(ir, width, delay) for width, delay in delays(video, gt, min_visible, pipeline)]
    click.echo("| light | face width at BlazeFace's input | faces | never found | found later than shown: "
               "median, largest (s) |\n|---|---|---:|---:|---|")
    for ir in (False, True):
        for lo, hi in BANDS:
            band = [d for i, w, d in rows if i == ir and lo <= w < hi]
            late = sorted(d for d in band if d)
            spread = f"{len(late)}: {np.median(late):.2f}, {late[-1]:.2f}" if late else "none"
            click.echo(f"| {'night IR' if ir else 'colour'} | {lo:g}-{hi:g} px | {len(band)} "
                       f"| {sum(d is None for d in band)} | {spread} |")


if __name__ == "__main__":
    main()
