"""What each face detector finds on design material, and its scores as evidence (#19 items 2 and 3).

Every detector redactor ships or could ship from a registry package it already
depends on runs at a low reporting threshold over **design material only**:
the real design clips of benchmarks/recall.py's `SPLIT` (walking, headpose,
store_aisle; CC-BY 4.0, (c) Intel Corporation, see ../shared/data/real/README.md),
the same clips turned into grey, noisy night IR by benchmarks/synth.py's own
IR transform, and synthetic crowd and walkers scenes with the fixed design
seeds (1-12; seeds from recall.FRESH_SEED_MIN up are validation material and
are refused). Each find is matched to the ground truth and recorded with its
detector, score, condition and size, and each face-frame with the best score
every detector gave it. From the records this fits, per detector, the
likelihood ratio P(score | face) / P(score | clutter) by score bin, size bin
and condition, and the probability that the detector finds a face of a given
size at all (what the tracker subtracts for a pass that saw nothing), and
writes them to redactor_video/detect/calibration.json with the counts behind them.

Definitions:

- size: the face's width in the pixels the detector's network saw ("input
  px"): a fully convolutional network (CenterFace) finds a face by its size in
  its input, and a fixed-input one (BlazeFace, 192 px) by its share of the
  input, which is the same thing at one input size. So the calibration holds
  from 480p to 4K: a detector's `input_scale` turns frame px into input px
  (CenterFace at scale s: s; whole-frame BlazeFace: 192 / the frame's long
  side; BlazeFace on 320 px tiles: 192 / 320; OpenCV's cascades on the full
  frame: 1; dlib's HOG detector, which upsamples once: 2). A find's size is its
  own box width (what a tracker knows); a face's size in the detection table
  is its ground-truth width.
- condition: "colour", or "ir" for a grey picture (no chroma) with sensor
  noise, which a caller tells from the frame itself. Real and synthetic
  material are pooled in the fit and kept apart in the report.
- match: a find belongs to a ground-truth box when their IoU is at least 0.2
  or the find's centre lies in the box (benchmarks/detectors.py's rule), and
  its width is within a factor of 3 of the face's. A find matching a box at
  least recall.MIN_VISIBLE (0.7) visible is a face; one matching only less
  visible boxes is "don't care" (left out of the fit, as in the recall
  harness); one matching nothing is clutter.
- pose: known per real clip from its README (walking: frontal; headpose:
  rolled 45-60 degrees; store_aisle: side views and profiles from a high
  camera); the synthetic faces are frontal portraits rolled by up to 10 degrees.

The likelihood ratio of score bin b in one size bin and condition is
((faces in b + 1) / (faces + B)) / ((clutter in b + 1) / (clutter + B)) for B
score bins (add-one smoothing: an empty cell says "no evidence either way",
never infinity); a detection probability is (found + 1) / (faces + 2). A size
bin without faces or clutter has ratio 1.

Second opinion: each unsure find (score 0.15-0.7) of the pair redactor runs
today (whole-frame BlazeFace and CenterFace 1.0) on a frame every detector ran
on is also shown to each candidate exactly as redactor_video.detect.Schedule checks
a find (a crop three face widths wide, resized to 192 px), and whether the
candidate confirms it is recorded.

Cost: milliseconds per 720p frame (synthetic design frames), median of
`--cost-frames` after one warm-up, on this machine as it is (the load
averages are recorded; other work on a shared machine slows every figure).

    python -m benchmarks.calibrate [--seeds 1-12] [--synthetic-step 5] [--candidate-step 25] [--ir-step 2]
    python -m benchmarks.calibrate --refit      # fit and report again from the saved records
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import av
import click
import cv2
import dlib
import numpy as np
from tqdm import tqdm

from benchmarks import speed
from benchmarks.recall import BANDS, FRESH_SEED_MIN, MIN_VISIBLE, REAL_DIR, SPLIT, fresh_spec, load_real_truth
from benchmarks.synth import BACKGROUNDS, GroundTruth, GTBox, ir_picture, make_clip
from redactor_video.detect import Schedule, TiledDetector, create_detector
from redactor_video.detect.base import Detector, nms
from redactor_video.models import ModelSpec, cached_status, fetch_model, models_dir
from redactor_video.geometry import iou_matrix
from redactor_video.types import Detections

REPO_ROOT = Path(__file__).resolve().parent.parent
CALIBRATION = REPO_ROOT / "redactor_video" / "detect" / "calibration.json"
OUT_DIR = REPO_ROOT / "benchmarks" / "out" / "calibrate"
SCHEMA = 1

SIZE_EDGES = (0.0, 12.0, 24.0, 48.0, 96.0)
"""Lower edges of the size bins, in input px (the last bin is open): the harness's face-width bands
(recall.BANDS) with 12 for 16 as the first edge, about where whole-frame BlazeFace begins to see (90 px in a
720p frame is 13.5 px at its input)."""
CONDITIONS = ("colour", "ir")
MATCH_IOU = 0.2
MATCH_SIZE_RATIO = 3.0
UNSURE = (0.15, 0.7)
"""Finds of the pair in this score range get the second-opinion checks: under 0.25 the pipeline drops them
today (a night-IR face CenterFace scored 0.16-0.37 among them, #19), 0.5-0.7 is where Schedule already
asks the sweep detector. Under 0.15 lie four bf clutter finds in five, at ~0.2 s of checks each."""
PAIR = ("blazeface", "centerface-1.0")
PAIR_THRESHOLD = 0.25
"""The score from which the pipeline reports a find of the pair (half of --threshold's default 0.5)."""
SYNTH_PRESETS = ("crowd_720p", "walkers_720p")
SYNTH_CRF = 23
DEPENDS_ON = ("benchmarks/calibrate.py", "benchmarks/synth.py", "benchmarks/recall.py", "redactor_video/detect",
              "redactor_video/models.py")
"""The code the figures depend on; its uncommitted changes, if any, are written into the calibration."""
REAL_POSE = {"walking": "frontal", "headpose": "rolled", "store_aisle": "side"}
"""Pose of each real design clip's scored faces, from ../shared/data/real/README.md's notes."""

MMOD = ModelSpec(
    name="dlib-mmod-face",
    package="face_recognition_models",
    version="0.3.0",
    member="face_recognition_models/models/mmod_human_face_detector.dat",
    sha256="4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
    licence="CC0-1.0",
    description="dlib's CNN (MMOD) face detector, from the package the watchlist models come from",
)


# ---------------------------------------------------------------- candidate detectors


class HaarDetector(Detector):
    """An OpenCV Haar cascade on the grey frame; `mirror` also runs it on the mirrored frame, which shows a
    profile cascade (trained on faces turned one way) the faces turned the other. Score: the last stage's
    sum (OpenCV's level weight); neighbouring windows are grouped once (minNeighbors 1), so faint finds
    are reported and the score, not the grouping, decides."""

    def __init__(self, cascade: str, mirror: bool, threshold: float) -> None:
        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + cascade)
        if self._cascade.empty():
            raise FileNotFoundError(f"OpenCV's {cascade} is missing from {cv2.data.haarcascades}")
        self.name = "haar-" + cascade.split("_")[1]
        self.mirror, self.threshold = mirror, threshold

    def _run(self, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, _, weights = self._cascade.detectMultiScale3(grey, scaleFactor=1.1, minNeighbors=1,
                                                            outputRejectLevels=True)
        xywh = np.asarray(boxes, np.float32).reshape(-1, 4)
        return np.column_stack([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]]), np.asarray(weights, np.float32).ravel()

    def detect(self, image: np.ndarray) -> Detections:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        xyxy, scores = self._run(grey)
        if self.mirror:
            flipped, more = self._run(np.ascontiguousarray(grey[:, ::-1]))
            flipped[:, [0, 2]] = grey.shape[1] - flipped[:, [2, 0]]
            xyxy, scores = np.vstack([xyxy, flipped]), np.concatenate([scores, more])
        keep = scores >= self.threshold
        return nms(Detections(xyxy[keep], scores[keep], detector=self.name))


class DlibDetector(Detector):
    """dlib's HOG face detector (in dlib itself, no weights file) or its CNN (MMOD) detector, upsampling the
    image `upsample` times (HOG's window is 80 px: once finds faces from about 40 px)."""

    def __init__(self, kind: str, upsample: int, threshold: float) -> None:
        self.name, self.upsample, self.threshold = f"dlib-{kind}", upsample, threshold
        if kind == "hog":
            self._hog = dlib.get_frontal_face_detector()
        else:
            folder = models_dir()
            path = folder / MMOD.filename
            self._cnn = dlib.cnn_face_detection_model_v1(
                str(path if cached_status(MMOD, folder) == "verified" else fetch_model(MMOD, folder)))

    def detect(self, image: np.ndarray) -> Detections:
        h, w = image.shape[:2]
        if self.name == "dlib-hog":
            rects, scores, _ = self._hog.run(image, self.upsample, self.threshold)
        else:
            found = [d for d in self._cnn(image, self.upsample) if d.confidence >= self.threshold]
            rects, scores = [d.rect for d in found], [d.confidence for d in found]
        xyxy = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], np.float32)
        return Detections(np.clip(xyxy.reshape(-1, 4), 0, [w, h, w, h]), np.asarray(scores, np.float32),
                          detector=self.name)


@dataclass(frozen=True)
class Candidate:
    """A detector as measured: how to build it at a threshold; how frame px become input px (and that rule in
    words); the threshold it reports from here; the one it would run at (`operating`: recall tables, second
    opinions); its score bins' lower edges; and whether it runs on every measured frame or, for its cost,
    only on every `--candidate-step`-th."""

    name: str
    description: str
    build: Callable[[float], Detector]
    input_scale: Callable[[int, int], float]
    scale_text: str
    report: float
    operating: float
    score_edges: tuple[float, ...]
    every_frame: bool


PROBABILITY_EDGES = (0.1, 0.25, 0.5, 0.75)
FRONTAL_EDGES = (-2.0, 2.0, 4.0, 6.0)
PROFILE_EDGES = (-2.0, 1.0, 2.0, 3.0)
"""Haar level weights: on a pilot of design frames (store_aisle and crowd/walkers seeds 1-2) faces scored
1.2-10 on the frontal cascade and 0.5-4.3 on the profile one, clutter 0-7 and 0-2.4, none under -0.5."""
CANDIDATES: tuple[Candidate, ...] = (
    Candidate("blazeface", "BlazeFace full range on the whole frame, letterboxed to 192 px (runs every frame)",
              lambda t: create_detector("blazeface", threshold=t), lambda w, h: 192 / max(w, h),
              "192 / the frame's long side", 0.1, PAIR_THRESHOLD, PROBABILITY_EDGES, True),
    Candidate("blazeface-tiles320", "BlazeFace full range on 320 px tiles overlapping 25%, tiles only "
              "(`--detector blazeface` adds the whole frame)",
              lambda t: TiledDetector(create_detector("blazeface", threshold=t), 320, whole=False),
              lambda w, h: 192 / 320, "192 / 320", 0.1, PAIR_THRESHOLD, PROBABILITY_EDGES, True),
    Candidate("centerface-1.0", "CenterFace at scale 1.0 (the default sweep)",
              lambda t: create_detector("centerface", threshold=t, scale=1.0), lambda w, h: 1.0, "1",
              0.1, PAIR_THRESHOLD, PROBABILITY_EDGES, True),
    Candidate("centerface-1.5", "CenterFace at scale 1.5 (the `--thorough` sweep)",
              lambda t: create_detector("centerface", threshold=t, scale=1.5), lambda w, h: 1.5, "1.5",
              0.1, PAIR_THRESHOLD, PROBABILITY_EDGES, False),
    Candidate("haar-frontal", "OpenCV's Haar frontal face cascade (haarcascade_frontalface_default), whole frame",
              lambda t: HaarDetector("haarcascade_frontalface_default.xml", False, t), lambda w, h: 1.0, "1",
              FRONTAL_EDGES[0], FRONTAL_EDGES[1], FRONTAL_EDGES, False),
    Candidate("haar-profile", "OpenCV's Haar profile cascade (haarcascade_profileface), frame and mirrored frame",
              lambda t: HaarDetector("haarcascade_profileface.xml", True, t), lambda w, h: 1.0, "1",
              PROFILE_EDGES[0], PROFILE_EDGES[1], PROFILE_EDGES, False),
    Candidate("dlib-hog", "dlib's HOG frontal face detector, image upsampled once",
              lambda t: DlibDetector("hog", 1, t), lambda w, h: 2.0, "2", -0.5, 0.0, (-0.5, 0.0, 0.5, 1.0), False),
)
CNN = Candidate("dlib-cnn", "dlib's CNN (MMOD) face detector, not upsampled (faces from about 80 px); timed only",
                lambda t: DlibDetector("cnn", 0, t), lambda w, h: 1.0, "1", 0.0, 0.0, (0.0,), False)
CHECKERS = ("blazeface", "centerface-1.0", "haar-frontal", "haar-profile", "dlib-hog")
"""Detectors asked for a second opinion (CenterFace at 1.5 would see the same 192 px crop as at 1.0)."""


def candidate(name: str) -> Candidate:
    return next(c for c in (*CANDIDATES, CNN) if c.name == name)


# ---------------------------------------------------------------- design material


@dataclass(frozen=True)
class Material:
    """One clip as measured: source (real or synthetic), condition, pose of its scored faces, which frames
    every detector sees (`step`) and which the every-frame tier sees besides (`every_step`), and for a real
    clip made night IR here the seed of its noise."""

    source: str
    clip: str
    condition: str
    pose: str
    video: Path
    truth: GroundTruth
    step: int
    every_step: int
    ir_seed: int | None = None

    def frames(self) -> Iterator[tuple[int, np.ndarray, bool]]:
        """(frame index, RGB frame, whether every detector runs on it) for the frames measured."""
        with av.open(str(self.video)) as container:
            for index, vf in enumerate(container.decode(video=0)):
                if index % self.every_step:
                    continue
                image = vf.to_ndarray(format="rgb24")
                if self.ir_seed is not None:
                    grey = ir_picture(image.astype(np.float32), np.random.default_rng([self.ir_seed, 2, index]))
                    image = np.clip(grey + 0.5, 0, 255).astype(np.uint8)
                yield index, image, index % self.step == 0


def design_material(real_dir: Path, clips: tuple[str, ...], seeds: tuple[int, ...], out_dir: Path,
                    synthetic_step: int, candidate_step: int, ir_step: int) -> list[Material]:
    """The real design clips, colour (every frame) and made night IR (every `ir_step`-th), and the crowd and
    walkers scenes of each design seed at 720p, 25 fps, crf 23 (odd seeds colour, even night IR; backgrounds
    in turn), every `synthetic_step`-th frame for the every-frame tier and every `candidate_step`-th for all.
    Validation clips and fresh seeds are refused: nothing may be chosen on them."""
    for name in clips:
        if SPLIT.get(name) != "design":
            raise click.BadParameter(f"{name!r} is not a real design clip (design: "
                                     f"{', '.join(n for n, s in SPLIT.items() if s == 'design')})")
    if any(not 0 < s < FRESH_SEED_MIN for s in seeds):
        raise click.BadParameter(f"design seeds lie in 1-{FRESH_SEED_MIN - 1}; from {FRESH_SEED_MIN} up they "
                                 "are fresh validation seeds")
    if candidate_step % synthetic_step:
        raise click.BadParameter("--candidate-step must be a multiple of --synthetic-step")
    out = []
    for name in clips:
        video, truth = real_dir / f"{name}.mp4", load_real_truth(real_dir / f"{name}.json")
        out.append(Material("real", name, "colour", REAL_POSE[name], video, truth, 1, 1))
        out.append(Material("real", name, "ir", REAL_POSE[name], video, truth, ir_step, ir_step,
                            zlib.crc32(name.encode())))
    for preset in SYNTH_PRESETS:
        for seed in seeds:
            night = seed % 2 == 0
            conditions = {"preset": preset, "scene_seed": seed, "width": 1280, "height": 720, "fps": 25,
                          "night_ir": night, "background": BACKGROUNDS[seed % len(BACKGROUNDS)], "crf": SYNTH_CRF}
            name = f"{preset.removesuffix('_720p')}_s{seed}_{'ir' if night else 'colour'}_{conditions['background']}"
            video = out_dir / "synth" / f"{name}.mp4"
            if video.is_file() and Path(f"{video}.gt.json").is_file():
                truth = GroundTruth.load(f"{video}.gt.json")
            else:
                video.parent.mkdir(parents=True, exist_ok=True)
                truth = make_clip(fresh_spec(conditions), video, crf=SYNTH_CRF)
            out.append(Material("synthetic", name, "ir" if night else "colour", "frontal", video, truth,
                                candidate_step, synthetic_step))
    return out


# ---------------------------------------------------------------- measuring


def match(found: Detections, truth: list[GTBox]) -> np.ndarray:
    """finds x boxes: which find belongs to which ground-truth box (the module docstring's rule)."""
    if not len(found) or not truth:
        return np.zeros((len(found), len(truth)), bool)
    boxes = np.array([b.box for b in truth], np.float32)
    centres = (found.xyxy[:, :2] + found.xyxy[:, 2:]) / 2
    inside = ((centres[:, None, :] >= boxes[None, :, :2]) & (centres[:, None, :] <= boxes[None, :, 2:])).all(axis=2)
    ratio = found.widths[:, None] / np.array([max(b.face_width, 1e-3) for b in truth])[None, :]
    near = (iou_matrix(found.xyxy, boxes) >= MATCH_IOU) | inside
    return near & (ratio >= 1 / MATCH_SIZE_RATIO) & (ratio <= MATCH_SIZE_RATIO)


def _label(hits: np.ndarray, truth: list[GTBox]) -> str:
    """face, dontcare or clutter for one find, from its row of `match`."""
    if any(hit and box.visible_fraction >= MIN_VISIBLE for hit, box in zip(hits, truth)):
        return "face"
    return "dontcare" if hits.any() else "clutter"


def measure(materials: list[Material], candidates: tuple[Candidate, ...], checkers: tuple[str, ...],
            progress: bool = True) -> dict:
    """Run every candidate over the material; return the finds, the face-frames (with each detector's best
    score on them), the second-opinion checks, how many frames each detector saw per source and condition,
    and the median cost of a check."""
    finds, faces, checks = [], [], []
    frames: dict[str, dict[str, int]] = {c.name: {} for c in candidates}
    check_ms: dict[str, list[float]] = {name: [] for name in checkers}
    with ExitStack() as stack:
        detectors = {c.name: stack.enter_context(c.build(c.report)) for c in candidates}
        second = {name: Schedule(None, stack.enter_context(candidate(name).build(candidate(name).operating)))
                  for name in checkers}
        total = sum(len(range(0, m.truth.n_frames, m.every_step)) for m in materials)
        with tqdm(total=total, unit="frame", file=sys.stderr, disable=not progress) as bar:
            for m in materials:
                bar.set_postfix_str(f"{m.clip} {m.condition}")
                group = f"{m.source} {m.condition}"
                for index, image, every in m.frames():
                    h, w = image.shape[:2]
                    truth = m.truth.boxes_at(index)
                    where = {"source": m.source, "clip": m.clip, "condition": m.condition, "frame": index}
                    best: dict[str, list[float | None]] = {}
                    scales: dict[str, float] = {}
                    for c in (c for c in candidates if every or c.every_frame):
                        frames[c.name][group] = frames[c.name].get(group, 0) + 1
                        found = detectors[c.name].detect(image)
                        hits = match(found, truth)
                        scales[c.name] = c.input_scale(w, h)
                        best[c.name] = [max((float(s) for s, hit in zip(found.confidence, hits[:, j]) if hit),
                                            default=None) for j in range(len(truth))]
                        for i in range(len(found)):
                            find = where | {"detector": c.name, "score": round(float(found.confidence[i]), 4),
                                            "width": round(float(found.widths[i]), 1),
                                            "input_px": round(float(found.widths[i]) * scales[c.name], 1),
                                            "label": _label(hits[i], truth)}
                            finds.append(find)
                            if (every and c.name in PAIR and find["label"] != "dontcare"
                                    and UNSURE[0] <= find["score"] < UNSURE[1]):
                                confirmed = {}
                                for name, schedule in second.items():
                                    t0 = time.perf_counter()
                                    confirmed[name] = schedule._confirmed(image, found.xyxy[i])
                                    check_ms[name].append(1000 * (time.perf_counter() - t0))
                                checks.append(find | {"confirmed": confirmed})
                    for j, box in enumerate(truth):
                        if box.visible_fraction >= MIN_VISIBLE:
                            faces.append(where | {"actor": box.track_id, "width": round(box.face_width, 1),
                                                  "pose": m.pose, "every": every, "input_scale": scales,
                                                  "best": {c: None if v[j] is None else round(v[j], 4)
                                                           for c, v in best.items()}})
                    bar.update()
    return {"finds": finds, "faces": faces, "checks": checks, "frames": frames,
            "check_ms": {k: round(float(np.median(v)), 2) if v else None for k, v in check_ms.items()}}


def cost(candidates: tuple[Candidate, ...], images: list[np.ndarray]) -> dict:
    """Milliseconds per frame for each candidate at its operating threshold: median and fastest of the
    frames after one warm-up, with the load averages before and after (a shared machine slows all)."""
    out = {"frames": len(images), "size": f"{images[0].shape[1]}x{images[0].shape[0]}",
           "load_before": [round(x, 2) for x in os.getloadavg()], "detectors": {}}
    for c in candidates:
        with c.build(c.operating) as det:
            det.detect(images[0])
            times = []
            for image in images:
                t0 = time.perf_counter()
                det.detect(image)
                times.append(1000 * (time.perf_counter() - t0))
        out["detectors"][c.name] = {"median_ms": round(float(np.median(times)), 1), "min_ms": round(min(times), 1)}
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


# ---------------------------------------------------------------- fitting


def _bin(value: float, edges: tuple[float, ...]) -> int:
    """Index of the bin [edges[k], edges[k+1]) holding value (the last bin is open; below the first: 0)."""
    return max(0, int(np.searchsorted(edges, value, side="right")) - 1)


def fit(records: dict, candidates: tuple[Candidate, ...], built: dict) -> dict:
    """The calibration: per detector and condition, face and clutter counts by size bin x score bin with their
    likelihood ratios, and face counts by size bin with how many the detector found from each score edge."""
    detectors = {}
    for c in candidates:
        edges = c.score_edges
        cells, detection = {}, {}
        for cond in CONDITIONS:
            counts = {label: np.zeros((len(SIZE_EDGES), len(edges)), int) for label in ("face", "clutter")}
            for f in records["finds"]:
                if f["detector"] == c.name and f["condition"] == cond and f["label"] in counts:
                    counts[f["label"]][_bin(f["input_px"], SIZE_EDGES), _bin(f["score"], edges)] += 1
            face, clutter = counts["face"], counts["clutter"]
            p_face = (face + 1) / (face.sum(axis=1, keepdims=True) + len(edges))
            p_clutter = (clutter + 1) / (clutter.sum(axis=1, keepdims=True) + len(edges))
            cells[cond] = {"face": face.tolist(), "clutter": clutter.tolist(),
                           "likelihood_ratio": np.round(p_face / p_clutter, 4).tolist()}
            n = np.zeros(len(SIZE_EDGES), int)
            hit = np.zeros((len(SIZE_EDGES), len(edges)), int)
            for f in records["faces"]:
                if f["condition"] != cond or c.name not in f["best"]:
                    continue
                k = _bin(f["width"] * f["input_scale"][c.name], SIZE_EDGES)
                n[k] += 1
                if f["best"][c.name] is not None:
                    hit[k] += np.array([f["best"][c.name] >= e for e in edges])
            detection[cond] = {"faces": n.tolist(), "found": hit.tolist(),
                               "probability": np.round((hit + 1) / (n[:, None] + 2), 4).tolist()}
        detectors[c.name] = {"description": c.description, "input_scale": c.scale_text,
                             "report_threshold": c.report, "operating_threshold": c.operating,
                             "score_edges": list(edges), "cells": cells, "detection": detection}
    return {"schema": SCHEMA, "built": built,
            "what": "Per detector and condition: finds on design material by size bin (rows, lower edges in the "
                    "pixels the network saw) x score bin (columns, lower edges): faces, clutter and the likelihood "
                    "ratio P(score bin | face, size) / P(score bin | clutter, size), add-one smoothed; and per size "
                    "bin of ground-truth faces (vis >= 0.7) how many the detector found from each score edge, and "
                    "the smoothed probability (found + 1) / (faces + 2). Rebuild with the command in `built`.",
            "match": f"IoU >= {MATCH_IOU} or the find's centre in the box, width within {MATCH_SIZE_RATIO:g}x",
            "min_visible": MIN_VISIBLE, "size_edges": list(SIZE_EDGES), "conditions": list(CONDITIONS),
            "detectors": detectors}


def load(path: Path = CALIBRATION) -> dict:
    return json.loads(Path(path).read_text())


def likelihood_ratio(calibration: dict, detector: str, score: float, input_px: float, condition: str) -> float:
    """How much more likely a face than clutter makes a find of this score and size (input px)."""
    d = calibration["detectors"][detector]
    cell = d["cells"][condition]["likelihood_ratio"]
    return cell[_bin(input_px, tuple(calibration["size_edges"]))][_bin(score, tuple(d["score_edges"]))]


def detection_probability(calibration: dict, detector: str, input_px: float, condition: str,
                          threshold: float) -> float:
    """The measured chance that `detector` reports a face of this size (input px) at `threshold` or more
    (a threshold between score edges counts from the edge below it)."""
    d = calibration["detectors"][detector]
    row = d["detection"][condition]["probability"][_bin(input_px, tuple(calibration["size_edges"]))]
    return row[_bin(threshold, tuple(d["score_edges"]))]


# ---------------------------------------------------------------- report


GROUPS = (("real", "colour"), ("real", "ir"), ("synthetic", "colour"), ("synthetic", "ir"))


def _group_name(source: str, condition: str) -> str:
    return {"real colour": "real", "real ir": "real, made night IR", "synthetic colour": "synthetic colour",
            "synthetic ir": "synthetic night IR"}[f"{source} {condition}"]


def _band(width: float) -> str:
    return next(name for name, lo, hi in BANDS if lo <= width < hi)


def _pct(k: int, n: int) -> str:
    return "-" if n == 0 else f"{100 * k / n:.0f}% ({k}/{n})"


def _found(face: dict, name: str, threshold: float) -> bool:
    score = face["best"].get(name)
    return score is not None and score >= threshold


def _pair_found(face: dict) -> bool:
    return any(_found(face, name, PAIR_THRESHOLD) for name in PAIR)


def _q(values: list[float], qs: tuple[float, ...]) -> str:
    return "-" if not values else " / ".join(f"{v:.2f}" for v in np.quantile(values, qs))


def _smoothed_ratio(face: list[bool], clutter: list[bool]) -> float:
    """P(event | face) / P(event | clutter), each (k + 1) / (n + 2)."""
    return ((sum(face) + 1) / (len(face) + 2)) / ((sum(clutter) + 1) / (len(clutter) + 2))


def _material_text(records: dict) -> list[str]:
    faces = records["faces"]
    return ["Material (design only): " + "; ".join(
        f"{_group_name(s, c)}: {records['frames']['blazeface'].get(f'{s} {c}', 0)} frames, "
        f"{sum(1 for f in faces if (f['source'], f['condition']) == (s, c))} face-frames, of which "
        f"{sum(1 for f in faces if (f['source'], f['condition']) == (s, c) and f['every'])} seen by every detector"
        for s, c in GROUPS), ""]


def _cost_table(records: dict) -> list[str]:
    timing = records["cost"]
    lines = [f"Cost on {timing['size']} frames ({timing['frames']} design frames after a warm-up; load average "
             f"{timing['load_before'][0]:.1f} before, {timing['load_after'][0]:.1f} after):", "",
             "| detector | what | input px per frame px | ms per frame, median (fastest) "
             "| ms per second-opinion check |", "|---|---|---|---:|---:|"]
    for name, t in timing["detectors"].items():
        c, check = candidate(name), records["check_ms"].get(name)
        lines.append(f"| {name} | {c.description} | {c.scale_text} | {t['median_ms']:.0f} ({t['min_ms']:.0f}) "
                     f"| {'-' if check is None else f'{check:.1f}'} |")
    return lines + [""]


def _recall_tables(faces: list[dict], cands: list[Candidate]) -> list[str]:
    lines = ["Recall per face-frame (vis >= 0.7) by face width in frame px, at each detector's operating threshold:",
             "", "| material | detector (from score) | " + " | ".join(f"{b} px" for b, _, _ in BANDS) + " | all |",
             "|---|---|" + "---:|" * (len(BANDS) + 1)]
    for source, cond in GROUPS:
        for c in cands:
            mine = [f for f in faces if (f["source"], f["condition"]) == (source, cond) and c.name in f["best"]]
            cells = [_pct(sum(_found(f, c.name, c.operating) for f in mine if _band(f["width"]) == b),
                          sum(1 for f in mine if _band(f["width"]) == b)) for b, _, _ in BANDS]
            lines.append(f"| {_group_name(source, cond)} | {c.name} ({c.operating:g}) | " + " | ".join(cells)
                         + f" | {_pct(sum(_found(f, c.name, c.operating) for f in mine), len(mine))} |")
    poses = sorted({f["pose"] for f in faces if f["source"] == "real"})
    lines += ["", "Real clips by pose (walking frontal, headpose rolled, store_aisle side/profile), colour and made "
              "night IR:", "", "| detector | " + " | ".join(f"{p}, {c}" for p in poses for c in CONDITIONS) + " |",
              "|---|" + "---:|" * (2 * len(poses))]
    for c in cands:
        cells = []
        for pose in poses:
            for cond in CONDITIONS:
                mine = [f for f in faces if f["source"] == "real" and f["pose"] == pose and f["condition"] == cond]
                cells.append(_pct(sum(_found(f, c.name, c.operating) for f in mine), len(mine)))
        lines.append(f"| {c.name} | " + " | ".join(cells) + " |")
    return lines + [""]


def _score_table(records: dict, cands: list[Candidate]) -> list[str]:
    lines = ["Scores of finds on faces and on clutter (quantiles 10 / 50 / 90%; clutter 50 / 90 / 99%), and "
             "clutter finds per frame from the reporting and from the operating threshold:", "",
             "| detector | condition | face finds | face scores | clutter finds | clutter scores "
             "| clutter per frame | from operating |", "|---|---|---:|---|---:|---|---:|---:|"]
    for c in cands:
        for cond in CONDITIONS:
            mine = [f for f in records["finds"] if f["detector"] == c.name and f["condition"] == cond]
            face = [f["score"] for f in mine if f["label"] == "face"]
            clutter = [f["score"] for f in mine if f["label"] == "clutter"]
            n = max(1, sum(v for k, v in records["frames"][c.name].items() if k.endswith(cond)))
            lines.append(f"| {c.name} | {cond} | {len(face)} | {_q(face, (0.1, 0.5, 0.9))} | {len(clutter)} "
                         f"| {_q(clutter, (0.5, 0.9, 0.99))} | {len(clutter) / n:.2f} "
                         f"| {sum(s >= c.operating for s in clutter) / n:.2f} |")
    return lines + [""]


def _payoff_table(records: dict, cands: list[Candidate]) -> list[str]:
    others = [c for c in cands if c.name not in PAIR]
    lines = [f"What each detector adds to the pair redactor runs today ({' or '.join(PAIR)} from {PAIR_THRESHOLD}), "
             "on the frames every detector saw: face-frames the pair misses that it finds at its operating threshold; "
             "its clutter finds per frame there, and its cost:", "",
             "| material | pair's recall | " + " | ".join(c.name for c in others) + " |",
             "|---|---:|" + "---:|" * len(others)]
    subsets = [(_group_name(s, c), lambda f, s=s, c=c: (f["source"], f["condition"]) == (s, c)) for s, c in GROUPS]
    subsets.append(("real side/profile (store_aisle), both conditions",
                    lambda f: f["source"] == "real" and f["pose"] == "side"))
    for title, keep in subsets:
        mine = [f for f in records["faces"] if f["every"] and keep(f)]
        missed = [f for f in mine if not _pair_found(f)]
        lines.append(f"| {title} | {_pct(len(mine) - len(missed), len(mine))} | " + " | ".join(
            f"+{sum(_found(f, c.name, c.operating) for f in missed)} of {len(missed)}" for c in others) + " |")
    clutter = []
    for c in others:
        n = sum(1 for f in records["finds"]
                if f["detector"] == c.name and f["label"] == "clutter" and f["score"] >= c.operating)
        clutter.append(f"{n / max(1, sum(records['frames'][c.name].values())):.2f}")
    ms = {k: v["median_ms"] for k, v in records["cost"]["detectors"].items()}
    return lines + ["| clutter finds per frame | - | " + " | ".join(clutter) + " |",
                    "| ms per 720p frame | - | " + " | ".join(f"{ms[c.name]:.0f}" for c in others) + " |", ""]


def _second_opinion_table(records: dict) -> list[str]:
    current = "centerface-1.0"
    lines = [f"Second opinions on the pair's unsure finds (score {UNSURE[0]}-{UNSURE[1]}; faces and clutter, "
             "don't-care finds left out), each checker at its operating threshold on Schedule's 192 px crop: share "
             "confirmed, the likelihood ratio of a confirmation and of its absence (add-one smoothed), and what it "
             f"confirms of the finds {current} (today's checker) does not:", "",
             "| checker | condition | faces confirmed | clutter confirmed | ratio if confirmed | ratio if not "
             f"| faces {current} leaves, confirmed | clutter it leaves, confirmed | ms per check |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, ms in records["check_ms"].items():
        for cond in CONDITIONS:
            mine = [x for x in records["checks"] if x["condition"] == cond]
            face = [x["confirmed"][name] for x in mine if x["label"] == "face"]
            clutter = [x["confirmed"][name] for x in mine if x["label"] == "clutter"]
            left = {label: [x["confirmed"][name] for x in mine if x["label"] == label and not x["confirmed"][current]]
                    for label in ("face", "clutter")}
            beyond = "- | -" if name == current else " | ".join(
                _pct(sum(left[label]), len(left[label])) for label in ("face", "clutter"))
            lines.append(f"| {name} | {cond} | {_pct(sum(face), len(face))} | {_pct(sum(clutter), len(clutter))} "
                         f"| {_smoothed_ratio(face, clutter):.2f} "
                         f"| {_smoothed_ratio([not x for x in face], [not x for x in clutter]):.2f} | {beyond} "
                         f"| {'-' if ms is None else f'{ms:.1f}'} |")
    return lines


def report(records: dict, calibration: dict) -> str:
    """Markdown: the material, cost, recall by band, condition and pose, score distributions, what each detector
    adds to the pair, and second opinions."""
    cands = [candidate(name) for name in calibration["detectors"]]
    return "\n".join(_material_text(records) + _cost_table(records) + _recall_tables(records["faces"], cands)
                     + _score_table(records, cands) + _payoff_table(records, cands) + _second_opinion_table(records))


# ---------------------------------------------------------------- command line


def _seeds(text: str) -> tuple[int, ...]:
    """'1-12' or '1,3,5' as a tuple of seeds."""
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return tuple(out)


def _dumps(calibration: dict) -> str:
    """JSON with each innermost list of numbers on one line: a table reads as rows and diffs by row."""
    text = json.dumps(calibration, indent=1)
    return re.sub(r"\[[^\[\]{}\"]*\]", lambda m: "[" + ", ".join(
        v.strip() for v in m.group(0)[1:-1].split(",") if v.strip()) + "]", text) + "\n"


def built_by(records: dict) -> dict:
    """The command, commit, date and the uncommitted state of the code the figures depend on."""
    machine = records["machine"]
    return {"command": records["command"], "commit": machine["commit"], "date": machine["date"],
            "uncommitted": records["uncommitted"], "machine": f"{machine['cpu']}, {machine['cores']} cores",
            "material": records["material"]}


@click.command()
@click.option("--seeds", default="1-12", show_default=True, help="Design seeds of the crowd and walkers scenes.")
@click.option("--clips", default=",".join(REAL_POSE), show_default=True, help="Real design clips.")
@click.option("--synthetic-step", type=click.IntRange(1), default=5, show_default=True,
              help="Every N-th synthetic frame for the every-frame tier (BlazeFace, its tiles, CenterFace 1.0).")
@click.option("--candidate-step", type=click.IntRange(1), default=25, show_default=True,
              help="Every N-th synthetic frame for every detector (a multiple of --synthetic-step).")
@click.option("--ir-step", type=click.IntRange(1), default=3, show_default=True,
              help="Every N-th frame of the real clips made night IR (the colour clips: every frame).")
@click.option("--cost-frames", type=click.IntRange(1), default=5, show_default=True,
              help="720p design frames each detector is timed on.")
@click.option("--cnn/--no-cnn", default=True, show_default=True,
              help="Also time dlib's CNN detector (its weights come from face_recognition_models 0.3.0).")
@click.option("--refit", is_flag=True, help="Measure nothing: fit and report again from the saved records.")
@click.option("--records", "records_path", type=click.Path(dir_okay=False, path_type=Path),
              default=OUT_DIR / "records.json", show_default=True)
@click.option("--calibration", "calibration_path", type=click.Path(dir_okay=False, path_type=Path),
              default=CALIBRATION, show_default=True)
@click.option("--real-dir", type=click.Path(file_okay=False, path_type=Path), default=REAL_DIR, show_default=True)
def main(seeds: str, clips: str, synthetic_step: int, candidate_step: int, ir_step: int, cost_frames: int,
         cnn: bool, refit: bool, records_path: Path, calibration_path: Path, real_dir: Path) -> None:
    """Measure every detector on design material, write the calibration and print the report."""
    if refit:
        records = json.loads(records_path.read_text())
    else:
        materials = design_material(real_dir, tuple(c for c in clips.split(",") if c), _seeds(seeds), OUT_DIR,
                                    synthetic_step, candidate_step, ir_step)
        # The code that runs is the code as it is now: its commit and state are taken before measuring.
        started = {"machine": speed.machine(), "uncommitted": subprocess.run(
            ["git", "status", "--porcelain", "--", *DEPENDS_ON], cwd=REPO_ROOT, capture_output=True,
            text=True).stdout.splitlines()}
        records = measure(materials, CANDIDATES, CHECKERS) | started
        synthetic = [m for m in materials if m.source == "synthetic"]
        images = [image for m in synthetic[:1] for i, image, _ in m.frames() if i % 20 == 0][:cost_frames]
        records["cost"] = cost(CANDIDATES + ((CNN,) if cnn else ()), images)
        records["command"] = shlex.join(["python", "-m", "benchmarks.calibrate", *sys.argv[1:]])
        records["material"] = {
            "real": [f"{m.clip} ({m.condition}, {'every frame' if m.step == 1 else f'1 frame in {m.step}'})"
                     for m in materials if m.source == "real"],
            "synthetic": f"crowd_720p and walkers_720p, seeds {seeds} (odd colour, even night IR), 1280x720, "
                         f"25 fps, crf {SYNTH_CRF}; every {synthetic_step}th frame (every {candidate_step}th for "
                         "the costly detectors)"}
        records_path.parent.mkdir(parents=True, exist_ok=True)
        records_path.write_text(json.dumps(records))
    calibration = fit(records, tuple(c for c in CANDIDATES if c.name in records["frames"]), built_by(records))
    calibration_path.write_text(_dumps(calibration))
    click.echo(f"{calibration_path}: {calibration_path.stat().st_size} bytes; records in {records_path}\n")
    click.echo(report(records, calibration))


if __name__ == "__main__":
    main()
