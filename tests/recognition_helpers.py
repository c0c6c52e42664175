"""Helpers for the watchlist, audit, recognition and secrecy tests: keys, entries and a scripted embedder."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from redactor_video.recognise.embedder import Look
from redactor_video.recognise.keys import Key, generate_key, load_key
from redactor_video.recognise.watchlist import new_entry, write_entries
from redactor_video.types import Tracks

TODAY = date(2030, 6, 1)


def make_key(folder: Path, name: str = "test.key") -> tuple[Path, Key]:
    path = folder / name
    generate_key(path)
    return path, load_key(path)


def unit(seed: int) -> np.ndarray:
    """A deterministic descriptor-like vector (norm 1, like dlib's are roughly)."""
    v = np.random.default_rng(seed).normal(size=128)
    return v / np.linalg.norm(v)


def raw_entry(**overrides: Any) -> dict[str, Any]:
    """A stored entry that passes every check on TODAY; override fields to break it."""
    raw = {"id": "wl-test0001", "label": "Person A", "basis": "consent", "reference": "CR-2030-17",
           "authorised_by": "Data Protection Officer", "category": "consented",
           "expires": (TODAY + timedelta(days=30)).isoformat(), "cameras": [],
           "templates": [unit(1).tolist()], "created": "2030-05-01T00:00:00+00:00"}
    raw.update(overrides)
    return raw


def enrolled(folder: Path, photo: Path, cameras: tuple[str, ...] = ()) -> tuple[Path, Path, np.ndarray]:
    """Key file and watchlist with `photo` enrolled on basis consent; returns the template too."""
    from redactor_video.detect import create_detector
    from redactor_video.recognise.embedder import Embedder
    from redactor_video.recognise.watchlist import enrol_photo

    key_path, key = make_key(folder)
    with create_detector("centerface", threshold=0.5) as detector:
        template = enrol_photo(photo, detector, Embedder())
    watchlist = folder / "people.watchlist"
    entry = new_entry("enrolled person", [template], "consent", "CONSENT-1", "DPO", "consented", "2099-12-31",
                      cameras)
    write_entries(watchlist, key, [entry])
    return key_path, watchlist, template


class ScriptedEmbedder:
    """Returns the vector scripted for each face, and remembers every call.

    `identity(box)` maps a box to its descriptor and `appearance(box)` to a
    vector whose direction is the look's colour signature (by default the
    identity given at construction, so a different face is a different colour
    unless a test says otherwise); `quality(box)` scores the look (1 by
    default). A test may change any of them between frames: a look keeps the
    identity current when it was taken, as a real chip keeps the face. Every
    look and every described box is recorded.
    """

    def __init__(self, identity: Any, appearance: Any = None, quality: Any = None) -> None:
        self.identity = identity
        self.appearance = appearance or identity
        self.quality = quality or (lambda box: 1.0)
        self.calls: list[tuple[float, ...]] = []
        self.returned: list[np.ndarray] = []
        self.looks: list[Look] = []
        self._faces: list[Any] = []

    def look(self, image: np.ndarray, box: Any) -> Look:
        box = tuple(float(v) for v in box)
        colours = np.abs(np.asarray(self.appearance(box), np.float64))
        self._faces.append(self.identity)
        look = Look(np.array([*box, len(self._faces) - 1], np.float64), float(self.quality(box)),
                    colours / np.linalg.norm(colours))
        self.looks.append(look)
        return look

    def describe(self, look: Look) -> np.ndarray:
        box = tuple(float(v) for v in look.chip[:4])
        self.calls.append(box)
        vector = np.array(self._faces[int(look.chip[4])](box), dtype=np.float64)
        self.returned.append(vector)
        return vector


def tracked(boxes: list[tuple[float, float, float, float]], ids: list[int],
            predicted: list[bool] | None = None) -> Tracks:
    """Tracker output as the pipeline hands it to a recogniser."""
    n = len(boxes)
    return Tracks(np.array(boxes, np.float32).reshape(-1, 4), np.array(ids), np.array(predicted or [False] * n),
                  np.full(n, 3))
