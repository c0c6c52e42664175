"""Helpers shared by the test modules: real-face media, PyAV writers and readers, and detail measures.

Everything here builds real inputs (real portraits, real codecs); nothing stands
in for the detector or the codec.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from benchmarks.score import compare_face
from benchmarks.synth import PORTRAITS, GTBox

REPO = Path(__file__).resolve().parents[1]
DATA_ENV = "REDACTOR_TEST_DATA"


class DoesNotRaise:
    """The no-exception case in `(input, expected, raises)` tables (supervision's idiom)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def data_dir() -> Path:
    """The shared public-domain portraits: $REDACTOR_TEST_DATA, else `<repo>/../shared/data`."""
    return Path(os.environ.get(DATA_ENV) or REPO.parent / "shared" / "data")


def portrait(name: str, width: int) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A portrait from the shared data scaled to `width` px, and its face box (from benchmarks.synth) scaled with it."""
    spec = PORTRAITS[name]
    bgr = cv2.imread(str(data_dir() / spec.source), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"{data_dir() / spec.source}: portrait missing; set {DATA_ENV}")
    scale = width / bgr.shape[1]
    height = round(bgr.shape[0] * scale)
    rgb = cv2.cvtColor(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    x1, y1, x2, y2 = spec.face_box
    return rgb, (x1 * scale, y1 * scale, x2 * scale, y2 * scale)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def encode_video(path: Path, frames: Sequence[np.ndarray], fps: int = 12, pts: Sequence[int] | None = None,
                 time_base: Fraction | None = None, rotation: int = 0, audio: bool = False,
                 options: dict[str, str] | None = None) -> None:
    """Encode RGB frames with libx264 the way a camera file would look: given pts, display rotation, AAC audio.

    Odd sizes are encoded yuv444p (x264 refuses odd 4:2:0).
    """
    tb = time_base or Fraction(1, fps)
    pts = list(pts) if pts is not None else list(range(len(frames)))
    h, w = frames[0].shape[:2]
    with av.open(str(path), mode="w", options=options or {}) as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height = w, h
        video.pix_fmt = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"
        video.time_base = video.codec_context.time_base = tb
        video.options = {"crf": "16", "preset": "veryfast"}
        if rotation:
            video.set_display_rotation(rotation)
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=48000)
            sound.layout = "mono"
        for image, p in zip(frames, pts):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            vf.pts, vf.time_base = p, tb
            out.mux(video.encode(vf))
        out.mux(video.encode(None))
        if sound is not None:
            seconds = float((pts[-1] + 1) * tb) if len(pts) else 0.0
            for start in range(0, int(seconds * 48000) - 1024, 1024):
                n = np.arange(start, start + 1024)
                wave = (0.2 * np.sin(2 * np.pi * 440 * n / 48000)).astype(np.float32)[None, :]
                af = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = 48000, start, Fraction(1, 48000)
                out.mux(sound.encode(af))
            out.mux(sound.encode(None))


@dataclass(frozen=True)
class Decoded:
    """What a file holds, as a player would see it (before any rotation is applied)."""

    frames: list[np.ndarray]
    seconds: list[float]
    rotation: int
    audio_packets: int
    streams: tuple[str, ...]


def read_video(path: Path) -> Decoded:
    """Decode every video frame (RGB) with its presentation time, and count the audio packets."""
    with av.open(str(path)) as container:
        streams = tuple(s.type for s in container.streams)
        frames, seconds, rotation = [], [], 0
        for vf in container.decode(video=0):
            frames.append(vf.to_ndarray(format="rgb24"))
            seconds.append(float(vf.pts * vf.time_base))
            rotation = int(vf.rotation or 0)
    audio = 0
    if "audio" in streams:
        with av.open(str(path)) as container:
            audio = sum(1 for p in container.demux(audio=0) if p.size)
    return Decoded(frames, seconds, rotation, audio, streams)


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def clear_faces(original: Iterable[np.ndarray], redacted: Iterable[np.ndarray], boxes: Sequence[list[GTBox]],
                min_visible: float = 0.5) -> list[tuple[int, int]]:
    """(frame, track) of every ground-truth face whose detail survived, by benchmarks.score's rule."""
    clear = []
    for t, (o, r) in enumerate(zip(original, redacted, strict=True)):
        for b in boxes[t]:
            if b.visible_fraction >= min_visible and not compare_face(grey(o), grey(r), b.box, b.face_width).protected:
                clear.append((t, b.track_id))
    return clear


def highpass(image: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    x = image.astype(np.float32)
    return x - cv2.GaussianBlur(x, (0, 0), sigma)


def detail_left(original: np.ndarray, redacted: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Share of the original's fine detail still present, in place, after redaction (1 = untouched, 0 = gone)."""
    ho, hr = highpass(original), highpass(redacted)
    if mask is not None:
        ho, hr = ho[mask], hr[mask]
    energy = float((ho * ho).sum())
    return float((ho * hr).sum()) / energy if energy else 0.0


def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    """Poll a condition a real process will make true (a file appears, a pid exits), failing after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)
