"""Independent verification: look for faces still clear in a redacted video.

A second detector, different from the one that drove the redaction (BlazeFace
on small overlapping tiles, i.e. at higher effective resolution than the
CenterFace sweep), runs over every redacted frame. A detection alone is not a
leak — detectors also fire on blurred faces — so each one is compared with the
original at the same place: if most of the original's fine detail is still
there, the face was left clear, and that frame is reported.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from redactor_video.detect import TiledDetector, create_detector
from redactor_video.detect.base import Detector
from redactor_video.errors import InputError
from redactor_video.media.source import FileSource

DETAIL_CLEAR = 0.5


@dataclass(frozen=True)
class Residual:
    """A face the verifier found with its detail intact: a frame that must not be released as is."""

    frame: int
    box: tuple[int, int, int, int]
    detail: float


@dataclass
class VerifyReport:
    frames: int = 0
    detector: str = ""
    residuals: list[Residual] = field(default_factory=list)

    @property
    def residual_frames(self) -> list[int]:
        return sorted({r.frame for r in self.residuals})

    @property
    def longest_run(self) -> int:
        best = run = 0
        previous = None
        for f in self.residual_frames:
            run = run + 1 if previous is not None and f == previous + 1 else 1
            best, previous = max(best, run), f
        return best

    def boxes_by_frame(self, spread: int = 0) -> dict[int, list[tuple[int, int, int, int]]]:
        """Residual boxes per frame; `spread` also puts each on that many frames either side, where the
        same face is almost surely clear too even if the verifier's detector happened to miss it."""
        out: dict[int, list] = {}
        for r in self.residuals:
            for f in range(max(0, r.frame - spread), r.frame + spread + 1):
                out.setdefault(f, []).append(r.box)
        return out

    def to_dict(self) -> dict:
        return {"frames": self.frames, "detector": self.detector, "residual_faces": len(self.residuals),
                "residual_frames": len(self.residual_frames), "longest_residual_run": self.longest_run,
                "residual_risk": len(self.residual_frames) / self.frames if self.frames else 0.0,
                "residuals": [asdict(r) for r in self.residuals]}


def detail_left(original: np.ndarray, redacted: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Share of the original's fine (high-pass) luma detail inside `box` still present, in place, in the redacted frame."""
    x0, y0, x1, y1 = box
    size = max(x1 - x0, y1 - y0)
    sigma = max(1.0, size / 16)
    highs = []
    for image in (original, redacted):
        grey = cv2.cvtColor(np.ascontiguousarray(image[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY).astype(np.float32)
        highs.append(grey - cv2.GaussianBlur(grey, (0, 0), sigma, borderType=cv2.BORDER_REFLECT))
    energy = float((highs[0] * highs[0]).sum())
    if energy <= 1e-6 * highs[0].size:
        return 0.0
    return float((highs[0] * highs[1]).sum()) / energy


def verifier(threshold: float = 0.5, models_dir: str | Path | None = None, tile: int = 256) -> Detector:
    """The second detector: BlazeFace on the whole frame and on tiles, independent of the CenterFace sweep."""
    return TiledDetector(create_detector("blazeface", threshold=threshold, models_dir=models_dir), tile)


def verify(original: Path, redacted: Path, detector: Detector,
           on_progress: Callable[[int], None] | None = None) -> VerifyReport:
    """Check every frame of `redacted` against `original`; both must have the same frames."""
    report = VerifyReport(detector=detector.name)
    with FileSource(original) as src, FileSource(redacted) as red:
        a, b = iter(src), iter(red)
        while True:
            fa, fb = next(a, None), next(b, None)
            if fa is None or fb is None:
                if fa is not fb:
                    raise InputError(f"{redacted}: frame count differs from {original} (at frame {report.frames})")
                break
            if fa.image.shape != fb.image.shape:
                raise InputError(f"{redacted}: frame size differs from {original}")
            h, w = fb.height, fb.width
            for x0, y0, x1, y1 in detector.detect(fb.image).xyxy:
                box = (max(0, math.floor(x0)), max(0, math.floor(y0)), min(w, math.ceil(x1)), min(h, math.ceil(y1)))
                if box[2] - box[0] < 4 or box[3] - box[1] < 4:
                    continue
                detail = detail_left(fa.image, fb.image, box)
                if detail > DETAIL_CLEAR:
                    report.residuals.append(Residual(fb.index, box, round(detail, 3)))
            report.frames += 1
            if on_progress is not None:
                on_progress(1)
    return report
