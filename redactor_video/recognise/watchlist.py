"""The watchlist: who may be recognised, on what lawful basis, until when, on which cameras.

Every entry names a person, the lawful basis for recognising them (consent with
a consent record, or a warrant with its reference and the person who authorised
it), a category from a closed list that must fit that basis, an expiry date and
optionally the cameras it applies to. Entries that lack any of these, have
expired, or do not apply to the camera are refused when the watchlist is loaded,
so no discretion is left to whoever runs the software.

The file holds templates (128-d descriptors) and metadata only, never photos,
and is sealed with AES-256-GCM: without the key it reveals nothing, and any
change to it, or the wrong key, is detected before a single entry is used. Its
header carries the sealing key's id (8 bytes derived from it, revealing nothing
of it), so a key that cannot open the file is told apart from a file that was
edited: the first is a key error (exit 8), the second an integrity error (9).

Sealed with the entries are the watchlist's random id, its version (bumped by
every change) and the head of every audit log it has used (redactor_video.audit), so
the watchlist and its logs vouch for each other. A file of the first format (no
id, no heads) is read as version 0 and upgraded by the first run that writes to
its log.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import cv2
import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from redactor_video.detect.base import Detector
from redactor_video.errors import (EnrolmentRefused, EntryRefused, KeyFileError, OutputError, WatchlistError,
                             WatchlistTampered)
from redactor_video.recognise.embedder import DIMENSIONS, Embedder
from redactor_video.recognise.keys import Key

BASES = ("consent", "warrant")
CATEGORIES: dict[str, str] = {
    "wanted": "warrant",
    "suspect": "warrant",
    "missing": "warrant",
    "vulnerable": "warrant",
    "risk-of-harm": "warrant",
    "consented": "consent",
    "sar-requester": "consent",
}
REQUIRED = ("id", "label", "basis", "reference", "authorised_by", "category", "expires", "templates")
FIELD_MEANING = {
    "id": "entry id",
    "label": "person label",
    "basis": "lawful basis (consent or warrant)",
    "reference": "reference (the consent record or warrant/authorisation)",
    "authorised_by": "authorising person",
    "category": "category",
    "expires": "expiry date",
    "templates": "face templates (enrolment photos)",
}
MIN_ENROL_FACE_PX = 80
"""Smaller enrolment faces give templates too unreliable to recognise anyone by."""
ENROL_DETECT_SIDE = 1280

_MAGIC = b"REDACTOR-WATCHLIST-1\n"
_NONCE_BYTES = 12


@dataclass(frozen=True)
class Entry:
    """One validated watchlist entry; `templates` is (n, 128), read-only."""

    id: str
    label: str
    basis: str
    reference: str
    authorised_by: str
    category: str
    expires: date
    cameras: tuple[str, ...]
    templates: np.ndarray
    created: str = ""

    def applies_to(self, camera: str | None) -> str | None:
        """None if the entry may be used on `camera`, else the reason it may not."""
        if not self.cameras or camera in self.cameras:
            return None
        allowed = ", ".join(self.cameras)
        if camera is None:
            return f"applies only to camera(s) {allowed}, and no camera was named for this run"
        return f"applies only to camera(s) {allowed}, not {camera}"



@dataclass(frozen=True)
class Refusal:
    """An entry refused at load time and why; never carries templates."""

    entry_id: str
    reason: str


@dataclass(frozen=True)
class Loaded:
    """The entries usable for this run and those refused."""

    entries: tuple[Entry, ...]
    refused: tuple[Refusal, ...]


@dataclass
class Sealed:
    """Everything a watchlist file holds: its entries, and what binds it to its audit logs."""

    entries: list[dict[str, Any]]
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    version: int = 0
    format: int = 2
    logs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each audit log's head, by its path relative to the watchlist's folder (see redactor_video.audit)."""
    witness: str | None = None


def today_utc() -> date:
    return datetime.now(timezone.utc).date()


def validate(raw: Any, today: date | None = None) -> Entry:
    """Turn one stored entry into an Entry, or raise EntryRefused saying what is wrong with it."""
    today = today or today_utc()
    entry_id = str(raw.get("id") or "(no id)") if isinstance(raw, dict) else "(not an entry)"
    if not isinstance(raw, dict):
        raise EntryRefused(entry_id, "is not a watchlist entry")
    missing = [FIELD_MEANING[k] for k in REQUIRED if raw.get(k) in (None, "", [])]
    if missing:
        raise EntryRefused(entry_id, "missing " + ", ".join(missing))
    text = {k: raw[k] for k in ("label", "basis", "reference", "authorised_by", "category", "expires")}
    if not all(isinstance(v, str) and v.strip() for v in text.values()):
        raise EntryRefused(entry_id, "label, basis, reference, authorising person, category and expiry must be text")
    basis, category = text["basis"], text["category"]
    expires = check_terms(entry_id, basis, category, text["expires"], today)
    cameras = raw.get("cameras") or []
    if not isinstance(cameras, list) or not all(isinstance(c, str) and c for c in cameras):
        raise EntryRefused(entry_id, "cameras must be a list of camera ids")
    templates = _templates(raw["templates"], entry_id)
    return Entry(entry_id, text["label"], basis, text["reference"], text["authorised_by"], category, expires,
                 tuple(cameras), templates, str(raw.get("created", "")))


def check_terms(entry_id: str, basis: str, category: str, expires: str, today: date | None = None) -> date:
    """The expiry date, if the basis is known, the category fits it and the entry has not expired."""
    if basis not in BASES:
        raise EntryRefused(entry_id, f"lawful basis {basis!r} is not one of {', '.join(BASES)}")
    if category not in CATEGORIES:
        raise EntryRefused(entry_id, f"category {category!r} is not one of {', '.join(CATEGORIES)}")
    if CATEGORIES[category] != basis:
        fitting = ", ".join(c for c, b in CATEGORIES.items() if b == basis)
        raise EntryRefused(entry_id, f"category {category!r} needs basis {CATEGORIES[category]}, "
                                     f"not {basis} (basis {basis} allows: {fitting})")
    try:
        day = date.fromisoformat(expires)
    except ValueError:
        raise EntryRefused(entry_id, f"expiry {expires!r} is not a date (YYYY-MM-DD)") from None
    if day < (today or today_utc()):
        raise EntryRefused(entry_id, f"expired on {day.isoformat()}")
    return day


def _templates(value: Any, entry_id: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = np.zeros(0)
    if array.ndim != 2 or array.shape[1] != DIMENSIONS or not len(array) or not np.all(np.isfinite(array)):
        raise EntryRefused(entry_id, f"face templates are not {DIMENSIONS}-d descriptors")
    array.flags.writeable = False
    return array


def new_entry(label: str, templates: Iterable[np.ndarray], basis: str, reference: str, authorised_by: str,
              category: str, expires: str, cameras: Iterable[str] = (), today: date | None = None) -> dict[str, Any]:
    """A stored entry for a new person, checked by the same rules as at load time."""
    raw = {"id": "wl-" + secrets.token_hex(4), "label": label.strip(), "basis": basis, "reference": reference.strip(),
           "authorised_by": authorised_by.strip(), "category": category, "expires": expires,
           "cameras": list(dict.fromkeys(cameras)), "templates": [np.asarray(t, np.float64).tolist() for t in templates],
           "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    validate(raw, today)
    return raw


def load(path: Path, key: Key, camera: str | None, today: date | None = None) -> Loaded:
    """Open the watchlist and sort its entries into usable for this camera today, and refused (with reasons)."""
    raws = read_entries(path, key)
    entries, refused = [], []
    for raw in raws:
        try:
            entry = validate(raw, today)
        except EntryRefused as exc:
            refused.append(Refusal(exc.entry_id, exc.reason))
            continue
        reason = entry.applies_to(camera)
        if reason:
            refused.append(Refusal(entry.id, reason))
        else:
            entries.append(entry)
    return Loaded(tuple(entries), tuple(refused))


def read_entries(path: Path, key: Key) -> list[dict[str, Any]]:
    """The stored entries; raise on a missing file, the wrong key or any tampering."""
    return read_state(path, key).entries


def read_state(path: Path, key: Key) -> Sealed:
    """Decrypt and authenticate the whole file; raise on a missing file, the wrong key or any tampering."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise WatchlistError(f"{path}: no such watchlist (create it with `redactor watchlist add`)") from None
    except OSError as exc:
        raise WatchlistError(f"{path}: cannot read watchlist ({exc.strerror})") from None
    header_len = len(_MAGIC) + 8
    if not blob.startswith(_MAGIC) or len(blob) < header_len + _NONCE_BYTES + 16:
        raise WatchlistTampered(f"{path}: not a redactor watchlist, or its header was damaged")
    stored_id = blob[len(_MAGIC):header_len]
    nonce = blob[header_len:header_len + _NONCE_BYTES]
    try:
        # Authenticated with this key's own id in the header, so that the right key still opens a file whose
        # stored id alone was edited, and that edit is reported as one rather than as a wrong key.
        plain = AESGCM(key.derive("watchlist")).decrypt(nonce, blob[header_len + _NONCE_BYTES:],
                                                        _MAGIC + key.key_id)
    except InvalidTag:
        if stored_id != key.key_id:
            raise KeyFileError(f"{path}: sealed with a different key than {key.source}") from None
        raise WatchlistTampered(f"{path}: fails its integrity check (the file was modified or damaged); "
                                "refusing to use any of it") from None
    if stored_id != key.key_id:
        raise WatchlistTampered(f"{path}: its key id was edited (the rest opens with {key.source}); "
                                "refusing to use any of it")
    try:
        data = json.loads(plain)
        entries = data["entries"]
        if data.get("format", 1) == 1:
            return Sealed(entries, version=0, format=1)
        state = Sealed(entries, str(data["id"]), int(data["version"]), 2, dict(data["logs"]), data["witness"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise WatchlistTampered(f"{path}: authenticated but unreadable (written by an incompatible version?)") from None
    if not isinstance(entries, list):
        raise WatchlistTampered(f"{path}: authenticated but has no entry list")
    return state


def write_entries(path: Path, key: Key, entries: list[dict[str, Any]]) -> None:
    """Create a new watchlist (version 1, no audit log yet); an existing one is never written over, since
    its audit logs are bound to it (change it through `Binding` and `WatchlistLog.change`)."""
    path = Path(path)
    if path.exists():
        raise OutputError(f"{path}: already exists; a watchlist is changed with `redactor watchlist add/remove`, "
                          "never written over")
    _seal(path, key, Sealed(entries, version=1))


def _seal(path: Path, key: Key, state: Sealed) -> None:
    """Seal the state into `path` atomically (owner-only permissions); a crash leaves the old file intact."""
    header = _MAGIC + key.key_id
    nonce = secrets.token_bytes(_NONCE_BYTES)
    payload = {"format": 2, "id": state.id, "version": state.version, "entries": state.entries, "logs": state.logs,
               "witness": state.witness}
    sealed = AESGCM(key.derive("watchlist")).encrypt(nonce, json.dumps(payload).encode(), header)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise WatchlistError(f"{folder}: cannot write the watchlist there ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(header + nonce + sealed)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Binding:
    """A watchlist as its audit logs see it (redactor_video.audit.Binding): its lock, its sealed state, and where
    its logs lie, named relative to its folder so that a deployment moved whole still agrees with itself.

    With `new`, a watchlist not yet written reads as empty (version 0), so enrolling the first person and
    recording it are one step.
    """

    def __init__(self, path: Path, key: Key, new: bool = False) -> None:
        self.path = Path(path)
        self.key = key
        self.folder = self.path.resolve().parent
        self._new_id = secrets.token_hex(8) if new else None

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The watchlist's lock: a file beside it that is never replaced (the watchlist itself is, on every
        write), held by each run while it reads, checks and rewrites the watchlist and its logs."""
        lock = self.path.with_name(f".{self.path.name}.lock")
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise OutputError(f"{lock}: cannot lock the watchlist ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def read(self) -> Sealed:
        if self._new_id is not None and not self.path.exists():
            return Sealed([], self._new_id)
        return read_state(self.path, self.key)

    def write(self, state: Sealed) -> None:
        _seal(self.path, self.key, state)

    def name_of(self, log: Path) -> str:
        return os.path.relpath(Path(log).resolve(), self.folder)

    def path_of(self, name: str) -> Path:
        return self.folder / name


def enrol_photo(path: Path, detector: Detector, embedder: Embedder) -> np.ndarray:
    """The template of the one face in an enrolment photo; photos with no face or several are refused."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise EnrolmentRefused(f"{path}: cannot read this photo (missing, or not an image)")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    scale = min(1.0, ENROL_DETECT_SIDE / max(h, w))
    small = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else rgb
    faces = detector.detect(small)
    if len(faces) == 0:
        raise EnrolmentRefused(f"{path}: no face found; an enrolment photo must show the person's face")
    if len(faces) > 1:
        raise EnrolmentRefused(f"{path}: {len(faces)} faces found; an enrolment photo must show one person only")
    box = faces.xyxy[0] / scale
    width = float(box[2] - box[0])
    if width < MIN_ENROL_FACE_PX:
        raise EnrolmentRefused(f"{path}: the face is {width:.0f} px wide; enrolment needs at least "
                               f"{MIN_ENROL_FACE_PX} px for a reliable template")
    return embedder.embed(rgb, box)
