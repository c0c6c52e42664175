"""Helpers for the watchlist, audit, recognition and secrecy tests: keys, entries and a scripted embedder."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from redactor.recognise.keys import Key, generate_key, load_key
from redactor.recognise.watchlist import new_entry, write_entries
from redactor.types import Detections

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
    from redactor.detect import create_detector
    from redactor.recognise.embedder import Embedder
    from redactor.recognise.watchlist import enrol_photo

    key_path, key = make_key(folder)
    with create_detector("centerface", threshold=0.5) as detector:
        template = enrol_photo(photo, detector, Embedder())
    watchlist = folder / "people.watchlist"
    entry = new_entry("enrolled person", [template], "consent", "CONSENT-1", "DPO", "consented", "2099-12-31",
                      cameras)
    write_entries(watchlist, key, [entry])
    return key_path, watchlist, template


class ScriptedEmbedder:
    """Returns the vector scripted for each track (looked up by box position), and remembers every call.

    `identity(box)` maps a box to a vector; calls are recorded as (frame index unknown) boxes.
    """

    def __init__(self, identity: Any) -> None:
        self.identity = identity
        self.calls: list[tuple[float, ...]] = []
        self.returned: list[np.ndarray] = []

    def embed(self, image: np.ndarray, box: Any) -> np.ndarray:
        self.calls.append(tuple(float(v) for v in box))
        vector = np.array(self.identity(box), dtype=np.float64)
        self.returned.append(vector)
        return vector


def tracked(boxes: list[tuple[float, float, float, float]], ids: list[int],
            predicted: list[bool] | None = None) -> Detections:
    """Tracker output as the pipeline hands it to a recogniser."""
    n = len(boxes)
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.ones(n, np.float32), np.array(ids),
                      np.array(predicted or [False] * n), detector="tracker", data={"hits": np.full(n, 3)})
