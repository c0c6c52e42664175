"""Face detectors by name, and the compositions (tiles, ensembles) the CLI offers."""

from __future__ import annotations

from pathlib import Path

from redactor_video.detect.base import Detector, create_detector, detector_names, nms, register
from redactor_video.detect.schedule import SWEEP_MIN_LINES, Schedule
from redactor_video.detect.tiling import EnsembleDetector, TiledDetector

# Importing the backends registers them.
from redactor_video.detect import blazeface, centerface  # noqa: E402,F401

DETECTOR_CHOICES = ("centerface", "blazeface", "ensemble")


def build_detector(name: str, threshold: float = 0.5, models_dir: str | Path | None = None,
                   tile: int = 320, centerface_scale: float = 1.0, threads: int = 0) -> Detector:
    """The sweep detector by CLI name: BlazeFace is tiled (its input is 192 px); CenterFace scales instead
    and runs on `threads` inference threads (0: one per core)."""
    def blaze() -> Detector:
        base = create_detector("blazeface", threshold=threshold, models_dir=models_dir)
        return TiledDetector(base, tile) if tile else base

    def center() -> Detector:
        return create_detector("centerface", threshold=threshold, models_dir=models_dir, scale=centerface_scale,
                               threads=threads)

    if name == "blazeface":
        return blaze()
    if name == "centerface":
        return center()
    if name == "ensemble":
        return EnsembleDetector([blaze(), center()])
    raise ValueError(f"unknown detector {name!r}; choose from {', '.join(DETECTOR_CHOICES)}")


def build_schedule(name: str, threshold: float = 0.25, models_dir: str | Path | None = None,
                   tile: int = 320, centerface_scale: float = 1.0, threads: int = 0,
                   start: float = 0.5, sweep_min_lines: int = SWEEP_MIN_LINES) -> Schedule:
    """BlazeFace on the whole frame every frame, plus the named sweep detector when asked; both report finds
    from `threshold`, tracks start from `start`, and smaller frames are swept upsampled to `sweep_min_lines`."""
    cheap = create_detector("blazeface", threshold=threshold, models_dir=models_dir)
    try:
        sweep = build_detector(name, threshold, models_dir, tile, centerface_scale, threads)
    except BaseException:
        cheap.close()
        raise
    return Schedule(cheap, sweep, start, sweep_min_lines)


__all__ = ["Detector", "DETECTOR_CHOICES", "SWEEP_MIN_LINES", "EnsembleDetector", "TiledDetector", "Schedule", "build_detector", "build_schedule", "create_detector", "detector_names", "nms", "register"]
