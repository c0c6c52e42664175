"""Single-frame detector recall by face width, and cost per frame: the evidence behind the defaults.

Tracking and look-ahead turn per-frame recall into per-track protection; this
measures the raw material: which detector configuration finds which face sizes
on one frame, and what it costs.

    python -m benchmarks.detectors CLIP.mp4 [--step 5] [--configs bf,bf-t320,cf-1.0]
"""

from __future__ import annotations

import time
from pathlib import Path

import av
import click
import numpy as np

from benchmarks.synth import GroundTruth
from redactor_video.detect import TiledDetector, create_detector
from redactor_video.detect.base import Detector
from redactor_video.detect.tiling import EnsembleDetector
from redactor_video.geometry import iou_matrix

BINS = [(12, 16), (16, 24), (24, 48), (48, 96), (96, 10_000)]


def configured(name: str, threshold: float) -> Detector:
    """bf (BlazeFace whole frame), bf-tN (plus N px tiles), cf-S (CenterFace at scale S), a+b (ensemble)."""
    if "+" in name:
        return EnsembleDetector([configured(n, threshold) for n in name.split("+")])
    if name == "bf":
        return create_detector("blazeface", threshold=threshold)
    if name.startswith("bf-t"):
        return TiledDetector(create_detector("blazeface", threshold=threshold), int(name[4:]))
    if name.startswith("cf-"):
        return create_detector("centerface", threshold=threshold, scale=float(name[3:]))
    raise click.BadParameter(f"unknown config {name}")


def found(gt_box: np.ndarray, dets: np.ndarray) -> bool:
    """A face counts as found if some detection overlaps it (IoU >= 0.2) or has its centre inside it."""
    if not len(dets):
        return False
    if iou_matrix(gt_box[None], dets).max() >= 0.2:
        return True
    centres = (dets[:, :2] + dets[:, 2:]) / 2
    inside = (centres[:, 0] >= gt_box[0]) & (centres[:, 0] <= gt_box[2]) & (centres[:, 1] >= gt_box[1]) & (centres[:, 1] <= gt_box[3])
    return bool(inside.any())


def evaluate(clip: Path, gt: GroundTruth, config: str, step: int, threshold: float) -> dict:
    hits = {b: [0, 0] for b in BINS}
    false_pos = 0
    elapsed, frames = 0.0, 0
    with configured(config, threshold) as det, av.open(str(clip)) as container:
        for index, vf in enumerate(container.decode(video=0)):
            if index % step:
                continue
            image = vf.to_ndarray(format="rgb24")
            t0 = time.perf_counter()
            dets = det.detect(image)
            elapsed += time.perf_counter() - t0
            frames += 1
            boxes = gt.boxes_at(index)
            gt_xyxy = np.array([b.box for b in boxes], np.float32).reshape(-1, 4)
            for b, row in zip(boxes, gt_xyxy):
                if b.visible_fraction < 0.5:
                    continue
                for lo, hi in BINS:
                    if lo <= b.face_width < hi:
                        hits[(lo, hi)][1] += 1
                        hits[(lo, hi)][0] += found(row, dets.xyxy)
            if len(dets) and len(gt_xyxy):
                false_pos += int((iou_matrix(dets.xyxy, gt_xyxy).max(axis=1) < 0.05).sum())
            elif len(dets):
                false_pos += len(dets)
    return {"config": config, "ms_per_frame": 1000 * elapsed / max(frames, 1), "false_pos_per_frame": false_pos / max(frames, 1),
            "recall": {f"{lo}-{hi if hi < 10_000 else ''}": (h / n if n else None) for (lo, hi), (h, n) in hits.items()}}


@click.command()
@click.argument("clip", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--step", default=5, show_default=True, help="Evaluate every N-th frame.")
@click.option("--configs", default="bf,bf-t320,bf-t256,cf-0.5,cf-1.0,cf-1.5", show_default=True)
@click.option("--threshold", default=0.5, show_default=True)
def main(clip: Path, step: int, configs: str, threshold: float) -> None:
    """Print single-frame recall by face width and ms per frame for each detector configuration."""
    gt = GroundTruth.load(f"{clip}.gt.json")
    header = None
    for config in configs.split(","):
        r = evaluate(clip, gt, config, step, threshold)
        if header is None:
            header = list(r["recall"])
            click.echo("| config | ms/frame | FP/frame | " + " | ".join(f"{k} px" for k in header) + " |")
            click.echo("|---" * (3 + len(header)) + "|")
        cells = " | ".join("-" if v is None else f"{100 * v:.0f}%" for v in r["recall"].values())
        click.echo(f"| {config} | {r['ms_per_frame']:.0f} | {r['false_pos_per_frame']:.2f} | {cells} |")


if __name__ == "__main__":
    main()
