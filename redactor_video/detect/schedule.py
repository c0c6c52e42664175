"""Detection schedule: a cheap detector on every frame, the expensive small-face sweep when the caller asks.

Large faces move many pixels per frame and need a fresh box every frame, which
BlazeFace on the whole frame gives in a few milliseconds; small, distant faces
move little, so the costly sweep (CenterFace at full resolution, or BlazeFace
on tiles) can run a few times a second while the tracker and the look-ahead buffer
carry their masks in between.

An every-frame find that scores just above the start threshold is checked at
once by the sweep detector on a crop around it. Whole-frame BlazeFace calls
large face-like things faces at 0.50-0.64 (an espresso cup in a background
photo held a mask for most of a clip: 8% of its background); CenterFace scores
those under 0.03 on the crop, and none of 48 real faces BlazeFace scored 0.50-0.59
under 0.25 (RESULTS.md). A find the check does not confirm is reported just
under the start threshold: it still extends a track, it starts none. Checking
on the same frame, instead of waiting for the next sweep, is what keeps a face
that BlazeFace is unsure of masked from its first frame in a live stream.

The sweep's own unsure finds of SWEEP_CHECK_FROM px or more get the same check
(the sweep detector again, on the crop scaled down). In night-IR noise CenterFace called
patches of noise 133-156 px faces at 0.50-0.51 on three of 42 clips, and their
coasting masks changed 1.7-3.6% of the background; on the scaled-down crop it
finds nothing there, while 221 real faces of that size it scored 0.50-0.80 all
scored 0.31 or more, all but two over 0.58 (RESULTS.md).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from redactor_video import geometry
from redactor_video.detect.base import Detector, merge_union
from redactor_video.types import Detections

UNSURE_MARGIN = 0.2
"""Finds scoring less than this above the start threshold get a second opinion. With 0.1, face-like
clutter whole-frame BlazeFace scored 0.60-0.64 (a chair back, patches of the background) held masks for
seconds: 1.4-3.2% of the background on three of 126 untuned scenes, under 1% with 0.2 (RESULTS.md)."""
CHECK_SIZE = 192
"""The second opinion's crop (three face sizes wide, the find in its middle) is resized to this square:
one input shape, so the sweep network is compiled for it once."""
SWEEP_MIN_LINES = 720
"""A frame with fewer lines than this on its short side is swept upsampled to this many lines, so that a
face's width at the sweep's input, on which its recall depends, is never less than in the 720p footage the
defaults were measured on (480p and 540p design scenes, RESULTS.md). A face the every-frame detector found
too, from the start score, keeps that detector's box: CenterFace draws a turned head up to 1.3 times wider from
the upsampled frame, and a box alternating between the two on sweep frames split a watchlist track's evidence
(real headpose clip: the enrolled woman clear in 35 of 56 frames instead of 55). A faint every-frame find's box
is no such guide: whole-frame BlazeFace draws faces of a few input pixels two to three times their width, and
taking that box for the sweep's tight one made a 36 px face at 540p a large face to the look-ahead, painted
back 0.2 s instead of 0.5 (RESULTS.md). Larger frames are swept as they are (the speed targets are for 720p
and 1080p)."""
SWEEP_MAX_PIXELS = 1920 * 1080
"""An upsampled frame never has more pixels than a 1080p one, so a frame of odd proportions (a 16000x2 strip)
cannot ask for gigabytes."""
SWEEP_CHECK_FROM = 96.0
"""Sweep finds this large or more are checked: their crop is scaled down by 1.5 or more, which averages noise
away while a face keeps its shape. Smaller ones are not: three real 84-94 px faces scored
nothing on the crop."""


class Schedule:
    """Which detectors run on frame `index`; results are merged into union boxes.

    start: the score from which a find may start a track (the tracker's); min_lines: frames with fewer lines
    are swept upsampled to this many (SWEEP_MIN_LINES; 0 sweeps every frame as it is).
    """

    def __init__(self, every_frame: Detector | None, sweep: Detector, start: float = 0.5,
                 min_lines: int = SWEEP_MIN_LINES) -> None:
        self.every_frame, self.sweep = every_frame, sweep
        self.start, self.min_lines = start, min_lines

    @property
    def name(self) -> str:
        cheap = f"{self.every_frame.name} every frame + " if self.every_frame else ""
        return f"{cheap}{self.sweep.name} sweep"

    def detect(self, image: np.ndarray, sweep: bool) -> Detections:
        """The cheap detector's finds, plus the sweep's when `sweep` (the caller keeps the cadence).

        Where the sweep finds a face from the start score, a faint every-frame find of the same face is left
        out: merged in, its box (whole-frame BlazeFace draws faces of a few input pixels two to three times
        their width) would become the face's, and the face would look larger than it is to the tracker and
        the look-ahead, and be masked over several times its area."""
        cheap = Detections.empty()
        if self.every_frame is not None:
            cheap = self.every_frame.detect(image)
        if not sweep:
            return merge_union(self._second_opinion(image, cheap))
        swept = self._second_opinion(image, self.sweep_finds(image, cheap), SWEEP_CHECK_FROM)
        sure = swept.xyxy[swept.confidence >= self.start]
        cheap = cheap[(cheap.confidence >= self.start) | ~_covers(sure, cheap.xyxy)]
        return merge_union(Detections.merge([self._second_opinion(image, cheap), swept]))

    def sweep_finds(self, image: np.ndarray, cheap: Detections) -> Detections:
        """The sweep detector's finds; on a frame smaller than `min_lines`, those of its upsampled copy, in
        the boxes of the every-frame detector (`cheap`) where it found the same face from the start score."""
        h, w = image.shape[:2]
        k = min(self.min_lines / min(h, w), math.sqrt(SWEEP_MAX_PIXELS / (h * w)))
        if k <= 1:
            return self.sweep.detect(image)
        found = self.sweep.detect(cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_LINEAR))
        return boxes_from(Detections(found.xyxy / k, found.confidence, detector=found.detector),
                          cheap[cheap.confidence >= self.start])

    def _second_opinion(self, image: np.ndarray, found: Detections, from_size: float = 0.0) -> Detections:
        """Finds in the unsure band, `from_size` px or larger, start tracks only if the sweep confirms them."""
        unsure = (found.confidence >= self.start) & (found.confidence < self.start + UNSURE_MARGIN)
        unsure &= geometry.sizes(found.xyxy) >= from_size
        if not unsure.any():
            return found
        scores = found.confidence.copy()
        for i in np.flatnonzero(unsure):
            if not self._confirmed(image, found.xyxy[i]):
                scores[i] = np.nextafter(np.float32(self.start), np.float32(0))
        return Detections(found.xyxy, scores, detector=found.detector)

    def _confirmed(self, image: np.ndarray, box: np.ndarray) -> bool:
        """Whether the sweep detector finds a face centred inside `box` on a crop around it."""
        h, w = image.shape[:2]
        side = 3.0 * max(geometry.size(box), 1.0)
        x0 = int(round((box[0] + box[2] - side) / 2))
        y0 = int(round((box[1] + box[3] - side) / 2))
        x1, y1 = x0 + int(round(side)), y0 + int(round(side))
        crop = image[max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)]
        crop = cv2.copyMakeBorder(crop, max(-y0, 0), max(y1 - h, 0), max(-x0, 0), max(x1 - w, 0),
                                  cv2.BORDER_CONSTANT, value=0)
        k = CHECK_SIZE / crop.shape[1]
        seen = self.sweep.detect(cv2.resize(crop, (CHECK_SIZE, CHECK_SIZE), interpolation=cv2.INTER_AREA))
        centres = (seen.xyxy[:, :2] + seen.xyxy[:, 2:]) / 2 / k + np.array([x0, y0], np.float32)
        inside = (centres >= box[:2]) & (centres <= box[2:])
        return bool(inside.all(axis=1).any())

    def close(self) -> None:
        if self.every_frame is not None:
            self.every_frame.close()
        self.sweep.close()


def _covers(boxes: np.ndarray, finds: np.ndarray, iou: float = 0.3) -> np.ndarray:
    """Which of `finds` overlap one of `boxes` by `iou` or more, or lie half or more inside one: merge_union's
    measure of one face."""
    if not len(boxes) or not len(finds):
        return np.zeros(len(finds), bool)
    lt = np.maximum(boxes[:, None, :2], finds[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], finds[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = np.prod(finds[:, 2:] - finds[:, :2], axis=1)[None, :]
    union = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)[:, None] + area - inter
    return ((inter > 0.5 * area) | (inter >= iou * np.maximum(union, 1e-9))).any(axis=0)


def boxes_from(found: Detections, native: Detections, iou: float = 0.3) -> Detections:
    """`found`, each find that overlaps one of `native` by `iou` or more (merge_union's measure of one face)
    taking the box of the `native` find it overlaps most."""
    if not len(found) or not len(native):
        return found
    overlap = geometry.iou_matrix(found.xyxy, native.xyxy)
    same = overlap.max(axis=1) >= iou
    boxes = found.xyxy.copy()
    boxes[same] = native.xyxy[overlap.argmax(axis=1)[same]]
    return Detections(boxes, found.confidence, detector=found.detector)
