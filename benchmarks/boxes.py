"""How well each detector pass draws a face's box, on design material only (#19 item 4's measurement noise).

For every 3rd frame of the real design clips (benchmarks/recall.py's SPLIT) and
of 16 synthetic design scenes (crowd and walkers, seeds 1-8, 480p-1080p, 8-30
fps, colour and night IR, crf 20-30; seeds under recall.FRESH_SEED_MIN are
design material), each find of the every-frame pass (whole-frame BlazeFace) and
of the sweep (CenterFace, upsampled under 720 lines, as redactor runs them) whose
centre lies in a ground-truth face box (the face at least 70% visible) gives:

- its width over the face's (a mask drawn from it is that much too wide or narrow);
- the distance between its centre and the face's, in face widths.

Rows are split by pass, score (faint: under the start score 0.5; sure: from it)
and the face's width at whole-frame BlazeFace's 192 px input (small: under 7.2
px, the tracking policy's small_face; mid: to 14.4, its large_face; large).

Run: python -m benchmarks.boxes [--real-dir ../shared/data/real] [--out-dir benchmarks/out/boxes]
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import av
import click
import numpy as np

from benchmarks import recall
from benchmarks.synth import GroundTruth
from redactor_video.pipeline import Pipeline
from redactor_video.settings import RedactSettings
from redactor_video.track.policy import POLICY

EVERY = 3
"""Every how many frames a frame is measured."""
MIN_VISIBLE = 0.7


def design_scenes(out_dir: Path) -> list[tuple[Path, GroundTruth]]:
    """The synthetic design scenes, rendered into `out_dir` unless already there."""
    clips = [recall.render_fresh(i, conditions, out_dir) for i, conditions in enumerate(recall.design_conditions())]
    return [(clip.video, clip.gt) for clip in clips]


def measure(clips: list[tuple[Path, GroundTruth]]) -> dict[tuple[str, str, str], list[tuple[float, float]]]:
    """(pass, score band, size) -> (width ratio, centre offset in face widths) of every matched find."""
    settings = RedactSettings()
    found: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    with Pipeline(settings) as pipeline:
        schedule = pipeline.schedule
        for video, gt in clips:
            long_side = max(gt.width, gt.height)
            with av.open(str(video)) as container:
                for i, frame in enumerate(container.decode(video=0)):
                    faces = [b for b in gt.boxes_at(i) if b.visible_fraction >= MIN_VISIBLE]
                    if i % EVERY or not faces:
                        continue
                    image = frame.to_ndarray(format="rgb24")
                    cheap = schedule.every_frame.detect(image)
                    for name, finds in (("every frame", cheap), ("sweep", schedule.sweep_finds(image, cheap))):
                        for box, score in zip(finds.xyxy, finds.confidence):
                            _record(found, name, box, float(score), faces, long_side, settings.threshold)
    return found


def _record(found: dict, name: str, box: np.ndarray, score: float, faces: list, long_side: int,
            start: float) -> None:
    centre = (box[:2] + box[2:]) / 2
    for face in faces:
        x1, y1, x2, y2 = face.box
        if x1 <= centre[0] <= x2 and y1 <= centre[1] <= y2:
            width = max(x2 - x1, 1.0)
            share = width / long_side
            size = "small" if share < POLICY.small_face else "mid" if share < POLICY.large_face else "large"
            offset = float(np.hypot(centre[0] - (x1 + x2) / 2, centre[1] - (y1 + y2) / 2)) / width
            band = "faint" if score < start else "sure"
            found.setdefault((name, band, size), []).append((float(box[2] - box[0]) / width, offset))
            return


def table(found: dict[tuple[str, str, str], list[tuple[float, float]]]) -> str:
    lines = ["| pass | score | face size at BlazeFace's input | finds | width ratio: median (p10-p90) "
             "| centre offset, face widths: median, p90 |", "|---|---|---|---:|---:|---:|"]
    for key in sorted(found):
        ratio, offset = np.array(found[key]).T
        lines.append(f"| {' | '.join(key)} | {len(ratio)} | {np.median(ratio):.2f} ({np.percentile(ratio, 10):.2f}-"
                     f"{np.percentile(ratio, 90):.2f}) | {np.median(offset):.2f}, {np.percentile(offset, 90):.2f} |")
    return "\n".join(lines)


def design_options(command: Callable) -> Callable:
    """The options of a command measuring design material: where the real clips are, and where the synthetic
    design scenes are rendered."""
    command = click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path),
                           default=recall.REPO_ROOT / "benchmarks" / "out" / "boxes", show_default=True,
                           help="Where the synthetic design scenes are rendered (and reused).")(command)
    return click.option("--real-dir", type=click.Path(file_okay=False, path_type=Path), default=recall.REAL_DIR,
                        show_default=True, help="The real clips and their ground truth.")(command)


@click.command()
@design_options
def main(real_dir: Path, out_dir: Path) -> None:
    """Print how wide and how far off-centre each detector pass draws faces, on design material."""
    real = [(c.video, c.gt) for c in recall.real_clips(real_dir, [], "design")]
    click.echo(table(measure(real + design_scenes(out_dir))))


if __name__ == "__main__":
    main()
