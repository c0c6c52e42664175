"""Synthetic clips with exact face ground truth, independent of any face detector.

Real public-domain faces (official US government portraits from /work/shared/data
and NASA's astronaut portrait bundled with scikit-image) are cut out as head crops
with a feathered elliptical alpha and pasted, moving, scaling, rotating and
changing brightness, over a slow pan/zoom across real photographs. Because we
place every face ourselves, the ground-truth box of every face in every frame is
known exactly; no detector, and in particular none of redactor's, is involved.

The face box of each portrait was found once with the LBP frontal-face cascade
that ships with scikit-image (`skimage.data.lbp_frontal_face_cascade_filename()`),
checked by eye on an annotated image, and is hard-coded in `PORTRAITS`. The head
crops derived from it are stored in `benchmarks/assets/faces/` (see PROVENANCE.md
there; `python -m benchmarks.assets.make_faces` rebuilds them).

Coordinates are continuous pixels: pixel (i, j) covers [i, i+1) x [j, j+1), so a
box [x1, y1, x2, y2] covers exactly the pixels it says it does.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import click
import cv2
import numpy as np
import skimage.data

ASSET_DIR = Path(__file__).resolve().parent / "assets" / "faces"
ASSET_FACE_WIDTH = 256
"""Head crops are stored with the face box at most this wide (the largest face a preset asks for is 250 px)."""

OCCLUDERS = (None, "pole", "face")
BACKGROUNDS = ("mosaic", "coffee", "rocket", "chelsea", "motorcycle")
_ALPHA_FEATHER = 0.15
_AUDIO_RATE = 48000


@dataclass(frozen=True)
class Portrait:
    """A source photo, its face box and how much head and hair to cut around it.

    `face_box` is [x1, y1, x2, y2] in the source photo's pixels, found with the LBP
    cascade named in the module docstring and checked by eye. `margins` (left, top,
    right, bottom) are in face widths; obama2's right margin is small because
    another person's face starts just right of his ear.
    """

    name: str
    source: str
    face_box: tuple[int, int, int, int]
    margins: tuple[float, float, float, float]

    def crop_rect(self) -> tuple[int, int, int, int]:
        """The head crop [x0, y0, x1, y1] in source pixels."""
        x1, y1, x2, y2 = self.face_box
        w = x2 - x1
        left, top, right, bottom = self.margins
        return (round(x1 - left * w), round(y1 - top * w), round(x2 + right * w), round(y2 + bottom * w))


PORTRAITS: dict[str, Portrait] = {
    p.name: p
    for p in (
        Portrait("obama", "obama.jpg", (352, 102, 638, 388), (0.25, 0.35, 0.25, 0.3)),
        Portrait("obama2", "obama2.jpg", (132, 237, 484, 589), (0.25, 0.35, 0.12, 0.3)),
        Portrait("obama3", "obama3.jpg", (643, 265, 955, 577), (0.3, 0.35, 0.2, 0.3)),
        Portrait("biden", "biden.jpg", (418, 202, 766, 550), (0.25, 0.35, 0.25, 0.3)),
        Portrait("astronaut", "skimage:astronaut", (173, 65, 274, 166), (0.25, 0.4, 0.25, 0.3)),
    )
}


@dataclass(frozen=True)
class FaceAsset:
    """A head crop ready to paste: RGBA float32 and the face box inside it."""

    rgba: np.ndarray
    face_box: tuple[float, float, float, float]


@functools.cache
def load_face(photo: str) -> FaceAsset:
    """Load a stored head crop and give it a feathered elliptical alpha."""
    if photo not in PORTRAITS:
        raise ValueError(f"unknown photo {photo!r}; choose from {sorted(PORTRAITS)}")
    portrait = PORTRAITS[photo]
    path = ASSET_DIR / f"{photo}.jpg"
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"{path}: face asset missing; run python -m benchmarks.assets.make_faces")
    h, w = bgr.shape[:2]
    cx0, cy0, cx1, cy1 = portrait.crop_rect()
    sx, sy = w / (cx1 - cx0), h / (cy1 - cy0)
    fx1, fy1, fx2, fy2 = portrait.face_box
    box = ((fx1 - cx0) * sx, (fy1 - cy0) * sy, (fx2 - cx0) * sx, (fy2 - cy0) * sy)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot((xx + 0.5) / w * 2 - 1, (yy + 0.5) / h * 2 - 1)
    alpha = np.clip((1.0 - r) / _ALPHA_FEATHER, 0.0, 1.0)
    rgba = np.dstack([cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32), alpha * 255.0])
    rgba.flags.writeable = False
    return FaceAsset(rgba=rgba, face_box=box)


Pair = tuple[float, float]


def _pair(value: float | Pair) -> Pair:
    if isinstance(value, (int, float)):
        return (float(value), float(value))
    a, b = value
    return (float(a), float(b))


@dataclass(frozen=True)
class FaceSpec:
    """One face moving in a straight line while it is on screen.

    It exists in frames start_frame <= t < end_frame. `path` is the face-box
    centre at the first and the last of those frames; width, rotation (degrees,
    counter-clockwise) and brightness (a gain on the face's pixels) go linearly
    from their start to their end value, and a single number means constant.
    `occluder="pole"` stands a vertical pole in front of the face where it is
    half-way through its life; `occluder="face"` sends another, slightly larger
    face across its lower half in front of it (that face is a track of its own).
    """

    photo: str
    width_px_start: float
    width_px_end: float
    path: tuple[Pair, Pair]
    start_frame: int
    end_frame: int
    rotation_deg: float | Pair = 0.0
    brightness: float | Pair = 1.0
    occluder: str | None = None

    def __post_init__(self) -> None:
        if self.photo not in PORTRAITS:
            raise ValueError(f"unknown photo {self.photo!r}; choose from {sorted(PORTRAITS)}")
        if self.width_px_start <= 0 or self.width_px_end <= 0:
            raise ValueError("face widths must be > 0")
        if not 0 <= self.start_frame < self.end_frame:
            raise ValueError("need 0 <= start_frame < end_frame")
        if self.occluder not in OCCLUDERS:
            raise ValueError(f"occluder must be one of {OCCLUDERS}")
        (ax, ay), (bx, by) = self.path
        object.__setattr__(self, "path", ((float(ax), float(ay)), (float(bx), float(by))))
        object.__setattr__(self, "rotation_deg", _pair(self.rotation_deg))
        object.__setattr__(self, "brightness", _pair(self.brightness))
        if min(self.brightness) <= 0:
            raise ValueError("brightness must be > 0")

    def state(self, t: int) -> tuple[float, float, float, float, float] | None:
        """(centre x, centre y, width, rotation, brightness) in frame t, or None when off stage."""
        if not self.start_frame <= t < self.end_frame:
            return None
        u = (t - self.start_frame) / max(1, self.end_frame - 1 - self.start_frame)
        (ax, ay), (bx, by) = self.path
        w = self.width_px_start + u * (self.width_px_end - self.width_px_start)
        r0, r1 = self.rotation_deg
        b0, b1 = self.brightness
        return (ax + u * (bx - ax), ay + u * (by - ay), w, r0 + u * (r1 - r0), b0 + u * (b1 - b0))


@dataclass(frozen=True)
class ClipSpec:
    """A whole clip: size, rate, length, the faces in back-to-front order, and the look."""

    width: int
    height: int
    fps: int
    n_frames: int
    faces: tuple[FaceSpec, ...]
    seed: int = 0
    night_ir: bool = False
    background: str = "mosaic"

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16 or self.width % 2 or self.height % 2:
            raise ValueError("width and height must be even and >= 16 (yuv420p)")
        if self.fps <= 0 or self.n_frames <= 0:
            raise ValueError("fps and n_frames must be > 0")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background must be one of {BACKGROUNDS}")
        object.__setattr__(self, "faces", tuple(self.faces))


@dataclass(frozen=True)
class GTBox:
    """One face in one frame: its visible box, its size and how much of it can be seen."""

    track_id: int
    photo: str
    frame: int
    box: tuple[float, float, float, float]
    visible_fraction: float
    face_width: float


@dataclass(frozen=True)
class GTTrack:
    """Rows are (frame, x1, y1, x2, y2, visible_fraction, face_width), one per frame on stage."""

    id: int
    photo: str
    frames: tuple[tuple[int, float, float, float, float, float, float], ...]


@dataclass(frozen=True)
class GroundTruth:
    """Every face in every frame of a synthetic clip; saved next to it as `<clip>.gt.json`."""

    width: int
    height: int
    fps: int
    n_frames: int
    tracks: tuple[GTTrack, ...]
    _by_frame: dict[int, list[GTBox]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tracks", tuple(self.tracks))
        for track in self.tracks:
            for f, x1, y1, x2, y2, vis, fw in track.frames:
                box = GTBox(track.id, track.photo, f, (x1, y1, x2, y2), vis, fw)
                self._by_frame.setdefault(f, []).append(box)

    def boxes_at(self, frame_index: int) -> list[GTBox]:
        """All faces on stage in a frame, visible or not."""
        return list(self._by_frame.get(frame_index, []))

    def to_dict(self) -> dict:
        return {
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "n_frames": self.n_frames,
            "tracks": [
                {"id": t.id, "photo": t.photo, "frames": [[r[0], *(round(v, 3) for v in r[1:])] for r in t.frames]}
                for t in self.tracks
            ],
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), separators=(",", ":")))

    @classmethod
    def load(cls, path: str | Path) -> GroundTruth:
        d = json.loads(Path(path).read_text())
        tracks = []
        for t in d["tracks"]:
            rows = []
            for row in t["frames"]:
                if len(row) != 7:
                    raise ValueError(f"{path}: track {t['id']}: rows must be [frame,x1,y1,x2,y2,visible,width]")
                rows.append((int(row[0]), *(float(v) for v in row[1:])))
            tracks.append(GTTrack(int(t["id"]), str(t["photo"]), tuple(rows)))
        return cls(int(d["width"]), int(d["height"]), int(d["fps"]), int(d["n_frames"]), tuple(tracks))


# ---------------------------------------------------------------- scene layout


@dataclass(frozen=True)
class _Pole:
    x1: float
    x2: float


def _companion(face: FaceSpec, photo: str) -> FaceSpec:
    """A face that crosses the lower half of `face`, in front of it, in the middle of its life."""
    life = face.end_frame - face.start_frame
    s = face.start_frame + life // 5
    e = max(s + 2, face.start_frame + (4 * life) // 5)
    w = 1.1 * 0.5 * (face.width_px_start + face.width_px_end)
    (ax, ay), (bx, by) = face.path
    ds, de = _fraction_of_life(face, s), _fraction_of_life(face, e - 1)
    cs = (ax + ds * (bx - ax) - 1.4 * w, ay + ds * (by - ay) + 0.75 * w)
    ce = (ax + de * (bx - ax) + 1.4 * w, ay + de * (by - ay) + 0.75 * w)
    return FaceSpec(photo, w, w, (cs, ce), s, e, face.rotation_deg[::-1], 1.0)


def _fraction_of_life(face: FaceSpec, t: int) -> float:
    return (t - face.start_frame) / max(1, face.end_frame - 1 - face.start_frame)


def _layout(spec: ClipSpec) -> tuple[list[FaceSpec], list[_Pole]]:
    """Faces in back-to-front order (spec faces, then companions) and the poles in front of them all."""
    layers = list(spec.faces)
    poles = []
    names = sorted(PORTRAITS)
    for i, face in enumerate(spec.faces):
        if face.occluder == "face":
            other = [n for n in names if n != face.photo]
            layers.append(_companion(face, other[(spec.seed + i) % len(other)]))
        elif face.occluder == "pole":
            mid = (face.start_frame + face.end_frame - 1) // 2
            cx, _, w, _, _ = face.state(mid)
            poles.append(_Pole(cx - 0.15 * w, cx + 0.15 * w))
    return layers, poles


def _face_transform(asset: FaceAsset, state: tuple[float, float, float, float, float]) -> np.ndarray:
    """2x3 affine from continuous asset coordinates to continuous frame coordinates."""
    cx, cy, w, rot, _ = state
    x1, y1, x2, y2 = asset.face_box
    s = w / (x2 - x1)
    a = math.radians(rot)
    # Image y points down, so a counter-clockwise turn on screen is this matrix.
    rs = s * np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
    return np.hstack([rs, (np.array([cx, cy]) - rs @ centre)[:, None]])


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


@functools.cache
def _ellipse_samples(photo: str) -> np.ndarray:
    """Points spread evenly over the ellipse inscribed in a portrait's face box (asset coordinates)."""
    x1, y1, x2, y2 = load_face(photo).face_box
    g = (np.arange(24) + 0.5) / 24 * 2 - 1
    u, v = np.meshgrid(g, g)
    keep = u**2 + v**2 <= 1
    return np.stack([(x1 + x2) / 2 + u[keep] * (x2 - x1) / 2, (y1 + y2) / 2 + v[keep] * (y2 - y1) / 2], axis=1)


def _covered_by(asset: FaceAsset, m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Which frame points fall where a pasted face is more than half opaque."""
    inv = cv2.invertAffineTransform(m)
    q = np.floor(_apply(inv, pts)).astype(int)
    h, w = asset.rgba.shape[:2]
    inside = (q[:, 0] >= 0) & (q[:, 0] < w) & (q[:, 1] >= 0) & (q[:, 1] < h)
    out = np.zeros(len(pts), dtype=bool)
    out[inside] = asset.rgba[q[inside, 1], q[inside, 0], 3] > 127.5
    return out


def _frame_boxes(spec: ClipSpec, layers: list[FaceSpec], poles: list[_Pole], t: int) -> list[GTBox]:
    on_stage = [(i, f, f.state(t)) for i, f in enumerate(layers)]
    on_stage = [(i, f, s, _face_transform(load_face(f.photo), s)) for i, f, s in on_stage if s is not None]
    boxes = []
    for k, (i, face, state, m) in enumerate(on_stage):
        asset = load_face(face.photo)
        x1, y1, x2, y2 = asset.face_box
        corners = _apply(m, np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]]))
        bx1, by1 = np.clip(corners.min(axis=0), 0, [spec.width, spec.height])
        bx2, by2 = np.clip(corners.max(axis=0), 0, [spec.width, spec.height])
        pts = _apply(m, _ellipse_samples(face.photo))
        seen = (pts[:, 0] >= 0) & (pts[:, 0] < spec.width) & (pts[:, 1] >= 0) & (pts[:, 1] < spec.height)
        for pole in poles:
            seen &= ~((pts[:, 0] >= pole.x1) & (pts[:, 0] < pole.x2))
        for _, front, _, fm in on_stage[k + 1 :]:
            seen &= ~_covered_by(load_face(front.photo), fm, pts)
        boxes.append(
            GTBox(i, face.photo, t, (float(bx1), float(by1), float(bx2), float(by2)), float(seen.mean()), state[2])
        )
    return boxes


# ---------------------------------------------------------------- pixels


@functools.cache
def _canvas(name: str) -> np.ndarray:
    """The photograph the camera pans over; the mosaic tiles four at about their native size."""
    images = {
        "coffee": skimage.data.coffee,
        "rocket": skimage.data.rocket,
        "chelsea": skimage.data.chelsea,
        "motorcycle": lambda: skimage.data.stereo_motorcycle()[0],
    }
    if name != "mosaic":
        return images[name]()
    rows = []
    for pair in (("coffee", "rocket"), ("motorcycle", "chelsea")):
        tiles = [images[n]() for n in pair]
        rows.append(np.hstack([cv2.resize(t, (round(t.shape[1] * 420 / t.shape[0]), 420)) for t in tiles]))
    w = min(r.shape[1] for r in rows)
    return np.vstack([r[:, :w] for r in rows])


def _camera(spec: ClipSpec) -> tuple[np.ndarray, Callable[[int], np.ndarray]]:
    """The canvas scaled for this clip and, per frame, the affine from canvas to frame (a slow pan and zoom)."""
    canvas = _canvas(spec.background)
    ch, cw = canvas.shape[:2]
    fit = min(cw / spec.width, ch / spec.height)
    if fit > 1.25:
        # Shrink once with area averaging so warpAffine never has to minify (it would alias).
        k = 1.25 / fit
        canvas = cv2.resize(canvas, (round(cw * k), round(ch * k)), interpolation=cv2.INTER_AREA)
        ch, cw = canvas.shape[:2]
        fit = min(cw / spec.width, ch / spec.height)
    rng = np.random.default_rng([spec.seed, 1])
    zooms = rng.uniform(0.78, 0.95, size=2) * fit
    ends = []
    for z in zooms:
        ww, wh = spec.width * z, spec.height * z
        ends.append((rng.uniform(0, cw - ww), rng.uniform(0, ch - wh), z))

    def matrix(t: int) -> np.ndarray:
        u = t / max(1, spec.n_frames - 1)
        x0, y0, z = (a + u * (b - a) for a, b in zip(*ends))
        # Continuous canvas point (x0 + z*X, y0 + z*Y) lands on continuous frame point (X, Y).
        m = np.array([[1 / z, 0, -x0 / z], [0, 1 / z, -y0 / z]])
        return _to_pixel_centres(m)

    return canvas, matrix


def _to_pixel_centres(m: np.ndarray) -> np.ndarray:
    """Turn an affine on continuous coordinates into the pixel-centre form cv2.warpAffine uses."""
    out = m.copy()
    out[:, 2] = m[:, :2] @ np.array([0.5, 0.5]) + m[:, 2] - 0.5
    return out


def _paste(frame: np.ndarray, face: FaceSpec, state: tuple[float, float, float, float, float]) -> None:
    """Composite one face into a float32 RGB frame, resampling only the region it covers."""
    asset = load_face(face.photo)
    m = _face_transform(asset, state)
    src = asset.rgba
    scale = state[2] / (asset.face_box[2] - asset.face_box[0])
    if scale < 1:
        # Area-average down to size first; a bilinear warp alone would alias a 256 px face into 12 px.
        h, w = src.shape[:2]
        nw, nh = max(2, round(w * scale)), max(2, round(h * scale))
        src = cv2.resize(src, (nw, nh), interpolation=cv2.INTER_AREA)
        m = m @ np.array([[w / nw, 0, 0], [0, h / nh, 0], [0, 0, 1]])
    h, w = src.shape[:2]
    corners = _apply(m, np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=float))
    fh, fw = frame.shape[:2]
    x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(corners.max(axis=0)).astype(int), [fw, fh])
    if x1 <= x0 or y1 <= y0:
        return
    local = m.copy()
    local[:, 2] -= [x0, y0]
    patch = cv2.warpAffine(
        src, _to_pixel_centres(local), (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    a = patch[..., 3:4] / 255.0
    roi = frame[y0:y1, x0:x1]
    roi *= 1 - a
    roi += a * np.clip(patch[..., :3] * state[4], 0, 255)


@functools.cache
def _pole_texture(height: int, width: int) -> np.ndarray:
    """A lit metal cylinder: bright down the middle, dark at the edges, faint vertical grain."""
    x = (np.arange(width) + 0.5) / width * 2 - 1
    shade = 70 + 150 * np.sqrt(np.clip(1 - x**2, 0, 1)) ** 1.5
    grain = np.random.default_rng(width).normal(0, 6, size=(height, 1))
    grey = np.clip(shade[None, :] + grain, 0, 255)
    return np.dstack([grey, grey * 0.97, grey * 0.92]).astype(np.float32)


def _draw_pole(frame: np.ndarray, pole: _Pole) -> None:
    h, w = frame.shape[:2]
    x0, x1 = max(0, math.floor(pole.x1)), min(w, math.ceil(pole.x2))
    if x1 > x0:
        frame[:, x0:x1] = _pole_texture(h, x1 - x0)


def ir_picture(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a cheap camera sees under IR light: grey, washed out, flat and grainy."""
    grey = frame @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    grey = 55 + 0.45 * grey + rng.normal(0, 6, size=grey.shape).astype(np.float32)
    return np.repeat(grey[..., None], 3, axis=2)


def render_frames(spec: ClipSpec) -> Iterator[tuple[np.ndarray, list[GTBox]]]:
    """Yield (RGB uint8 frame, ground-truth boxes of every face on stage) for each frame."""
    layers, poles = _layout(spec)
    canvas, camera = _camera(spec)
    for t in range(spec.n_frames):
        frame = cv2.warpAffine(
            canvas, camera(t), (spec.width, spec.height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        ).astype(np.float32)
        for face in layers:
            state = face.state(t)
            if state is not None:
                _paste(frame, face, state)
        for pole in poles:
            _draw_pole(frame, pole)
        if spec.night_ir:
            frame = ir_picture(frame, np.random.default_rng([spec.seed, 2, t]))
        yield np.clip(frame + 0.5, 0, 255).astype(np.uint8), _frame_boxes(spec, layers, poles, t)


def make_clip(spec: ClipSpec, path: str | Path, *, audio: bool = False, crf: int = 18) -> GroundTruth:
    """Render and encode a clip and write its ground truth to `<path>.gt.json`.

    H.264 (libx264, yuv420p) at constant frame rate with pts = frame index; in MP4
    the time base is exactly 1/fps, in MKV it is Matroska's fixed 1/1000. With
    `audio`, a 440 Hz AAC tone runs alongside so audio passthrough can be checked.
    """
    path = Path(path)
    rows: dict[int, list] = {}
    photos: dict[int, str] = {}
    tb = Fraction(1, spec.fps)
    # MP4 would otherwise round the track time base up to 1/12800; Matroska always counts milliseconds.
    options = {"video_track_timescale": str(spec.fps)} if path.suffix.lower() in {".mp4", ".mov", ".m4v"} else {}
    with av.open(str(path), mode="w", options=options) as out:
        video = out.add_stream("libx264", rate=spec.fps)
        video.width, video.height, video.pix_fmt = spec.width, spec.height, "yuv420p"
        video.time_base = video.codec_context.time_base = tb
        video.options = {"crf": str(crf), "preset": "medium"}
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=_AUDIO_RATE)
            sound.layout = "mono"
        samples_done = 0
        for t, (rgb, boxes) in enumerate(render_frames(spec)):
            for b in boxes:
                photos[b.track_id] = b.photo
                rows.setdefault(b.track_id, []).append((t, *b.box, b.visible_fraction, b.face_width))
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = t, tb
            out.mux(video.encode(frame))
            if sound is not None:
                samples_done = mux_tone(out, sound, samples_done, (t + 1) * _AUDIO_RATE // spec.fps)
        out.mux(video.encode(None))
        if sound is not None:
            out.mux(sound.encode(None))
    tracks = tuple(GTTrack(i, photos[i], tuple(rows[i])) for i in sorted(rows))
    GroundTruth(spec.width, spec.height, spec.fps, spec.n_frames, tracks).save(f"{path}.gt.json")
    # Hand back exactly what is on disk (rounded to 1/1000 px), so in-memory and CLI scoring agree.
    return GroundTruth.load(f"{path}.gt.json")


def mux_tone(out: av.container.OutputContainer, stream: av.AudioStream, done: int, until: int) -> int:
    """Encode a 440 Hz tone up to sample `until`, in AAC-sized 1024-sample frames."""
    while done + 1024 <= until:
        n = np.arange(done, done + 1024)
        wave = (0.2 * np.sin(2 * np.pi * 440 * n / _AUDIO_RATE)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = _AUDIO_RATE, done, Fraction(1, _AUDIO_RATE)
        out.mux(stream.encode(frame))
        done += 1024
    return done


# ---------------------------------------------------------------- presets


def tiny_test_clip(seed: int = 0) -> ClipSpec:
    """320x240, 12 fps, 24 frames, three faces 40-120 px: enough for fast unit and integration tests."""
    faces = (
        FaceSpec("obama", 60, 80, ((70, 90), (120, 110)), 0, 24, (0, 8), (1.0, 0.85)),
        FaceSpec("biden", 110, 100, ((240, 140), (210, 125)), 0, 24, (-5, 0)),
        FaceSpec("astronaut", 40, 45, ((150, 200), (60, 190)), 4, 24, 0, (0.8, 1.1)),
    )
    return ClipSpec(320, 240, 12, 24, faces, seed=seed)


def crowd_720p(seed: int = 0) -> ClipSpec:
    """1280x720, 25 fps, 100 frames, 10 faces (plus one companion) from 12 to 250 px wide.

    Far (small) faces walk across the top, near ones across the bottom, laid out
    so that only the intended occlusions happen: one face passes behind a pole
    and walks off the right edge, one is crossed by another face, one enters from
    the left edge, and some appear or vanish mid-clip. The seed jitters positions,
    speeds, rotations and brightness, not the mix of sizes, so every seed
    exercises every width bin.
    """
    rng = np.random.default_rng([seed, 0])
    photos = sorted(PORTRAITS)
    # (width start, width end), start centre, velocity px/frame, first frame, end frame
    plan = [
        ((12, 14), (200, 90), (1.0, 0.1), 0, 100),
        ((14, 18), (520, 70), (-0.8, 0.2), 10, 100),
        ((18, 24), (900, 110), (0.9, 0.0), 0, 100),
        ((24, 30), (1150, 170), (-1.2, 0.3), 0, 80),
        ((32, 44), (-10, 230), (1.5, 0.4), 0, 100),
        ((48, 60), (420, 250), (1.2, 0.1), 0, 100),
        ((70, 90), (1040, 250), (2.9, 0.2), 0, 100),
        ((110, 96), (760, 240), (-0.6, 0.4), 20, 100),
        ((160, 180), (250, 520), (1.5, -0.5), 0, 100),
        ((250, 220), (860, 560), (-1.2, 0.0), 0, 100),
    ]
    faces = []
    for i, ((w0, w1), (x, y), (vx, vy), first, last) in enumerate(plan):
        if i not in (4, 6):
            x, y = x + rng.uniform(-25, 25), y + rng.uniform(-15, 15)
        vx, vy = vx * rng.uniform(0.8, 1.2), vy * rng.uniform(0.8, 1.2)
        end = (x + vx * (last - 1 - first), y + vy * (last - 1 - first))
        rot = (float(rng.uniform(-10, 10)), float(rng.uniform(-10, 10)))
        bright = (float(rng.uniform(0.7, 1.2)), float(rng.uniform(0.7, 1.2)))
        occluder = {5: "face", 6: "pole"}.get(i)
        faces.append(FaceSpec(photos[i % len(photos)], w0, w1, ((x, y), end), first, last, rot, bright, occluder))
    return ClipSpec(1280, 720, 25, 100, tuple(faces), seed=seed)


def walkers_720p(seed: int = 11) -> ClipSpec:
    """1280x720, 25 fps, 150 frames: six faces 24-140 px crossing the frame at 4-9 px per frame.

    crowd_720p's faces drift slowly; these move like people walking past a
    camera, which is what sparse detection and tracking have to keep up with.
    """
    faces = (
        FaceSpec("obama", 30, 34, ((40, 120), (1240, 160)), 0, 150, (-5, 5)),
        FaceSpec("biden", 26, 28, ((1240, 260), (140, 240)), 10, 150, (3, -3)),
        FaceSpec("astronaut", 40, 44, ((100, 400), (1200, 380)), 0, 150),
        FaceSpec("obama2", 60, 70, ((1200, 560), (60, 520)), 20, 150),
        FaceSpec("obama3", 120, 140, ((200, 600), (1100, 560)), 30, 150),
        FaceSpec("biden", 24, 26, ((640, 40), (660, 700)), 0, 150),
    )
    return ClipSpec(1280, 720, 25, 150, faces, seed=seed)


def night_ir(spec: ClipSpec) -> ClipSpec:
    """The same scene as a grey, noisy, low-contrast night-time IR camera would record it."""
    return dataclasses.replace(spec, night_ir=True)


PRESETS: dict[str, Callable[[int], ClipSpec]] = {"tiny": tiny_test_clip, "crowd_720p": crowd_720p,
                                                  "walkers_720p": walkers_720p}


@click.command()
@click.argument("preset", type=click.Choice(sorted(PRESETS)))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--night-ir", "night", is_flag=True, help="Grey, noisy, low-contrast variant.")
@click.option("--audio", is_flag=True, help="Add a 440 Hz AAC tone to test audio passthrough.")
def main(preset: str, out: Path, seed: int, night: bool, audio: bool) -> None:
    """Render PRESET into OUT (.mp4 or .mkv) and its ground truth into OUT.gt.json."""
    spec = PRESETS[preset](seed)
    if night:
        spec = night_ir(spec)
    gt = make_clip(spec, out, audio=audio)
    n = sum(len(t.frames) for t in gt.tracks)
    click.echo(f"{out}: {gt.n_frames} frames, {len(gt.tracks)} tracks, {n} face-frames; ground truth in {out}.gt.json")


if __name__ == "__main__":
    main()
