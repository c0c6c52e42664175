"""The CCTV archive: which recordings a request covers and when each was recorded (FileSource.span reads them by time).

A recording's start time comes from the container's `creation_time` tag (UTC,
written by the recorder) when there is one, else from the file name, which
must then begin `<camera>_<YYYYmmdd>_<HHMMSS>` (e.g. `CAM1_20261120_101500.mp4`,
anything may follow), read as the local time of the machine running redactor.
The camera id is the `<camera>` part of such a name, else the name of the
folder holding the file. A recording whose start is unknown is still searched
(it may hold the requester) and reported with offsets into the file only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from redactor_video.errors import InputError
from redactor_video.media.formats import VIDEO_EXTENSIONS
from redactor_video.media.source import FileSource, open_video
from redactor_video.sar.request import SubjectRequest

FILE_NAME_PATTERN = re.compile(r"(?P<camera>[^_]+)_(?P<day>\d{8})_(?P<time>\d{6})(?!\d)")


@dataclass(frozen=True)
class Recording:
    """One archive file: where it is, which camera, when it started (if known) and how long it runs."""

    path: Path
    camera: str | None
    start: datetime | None
    time_source: str
    duration: float
    fps: float

    def at(self, offset: float) -> datetime | None:
        """The wall-clock time `offset` seconds into the file, when its start is known."""
        return None if self.start is None else self.start + timedelta(seconds=offset)

    def span(self, request: SubjectRequest) -> tuple[float, float] | None:
        """The offsets [from, to] of this file inside the request's window, or None if it lies outside."""
        lo, hi = 0.0, self.duration
        if self.start is not None:
            if request.start is not None:
                lo = max(lo, (request.start - self.start).total_seconds())
            if request.end is not None:
                hi = min(hi, (request.end - self.start).total_seconds())
        return (lo, hi) if hi > lo else None

    def to_dict(self) -> dict:
        return {"file": self.path.name, "camera": self.camera,
                "recording_start": self.start.isoformat() if self.start else None,
                "time_source": self.time_source, "duration_seconds": round(self.duration, 3)}


def _metadata_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _name_time(path: Path) -> tuple[str, datetime] | None:
    found = FILE_NAME_PATTERN.match(path.stem)
    if found is None:
        return None
    try:
        local = datetime.strptime(found["day"] + found["time"], "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return found["camera"], local.astimezone()


def probe(path: Path) -> Recording:
    """Open a file as a video and read where it sits in time; unreadable files are an InputError."""
    with FileSource(path) as source:
        info = source.info
    if info.is_image:
        raise InputError(f"{path}: is a still image, not a recording")
    container, stream = open_video(path)
    with container:
        tags = {**stream.metadata, **container.metadata}
    named = _name_time(path)
    start, where = _metadata_time(tags.get("creation_time")), "metadata"
    if start is None and named is not None:
        start, where = named[1], "file name"
    camera = named[0] if named is not None else (path.resolve().parent.name or None)
    fps = float(info.rate) if info.rate else 25.0
    duration = info.duration or (info.frames or 0) / fps
    if duration <= 0:
        raise InputError(f"{path}: the recording's length is unknown (a bare stream?); remux it into a container "
                         "(.mp4, .mkv) so it can be placed in time")
    return Recording(path, camera, start, where if start is not None else "unknown", float(duration), fps)


def find_recordings(inputs: list[Path]) -> list[Path]:
    """Every video file named or found (recursively, hidden files skipped) under the given folders."""
    found: list[Path] = []
    for item in inputs:
        if not item.exists():
            raise InputError(f"{item}: no such file or folder")
        if item.is_dir():
            found += [p for p in sorted(item.rglob("*")) if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
                      and not any(part.startswith(".") for part in p.relative_to(item).parts)]
        else:
            found.append(item)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise InputError("no video files found in the archive")
    return unique


def in_scope(recordings: list[Recording], request: SubjectRequest) -> list[tuple[Recording, tuple[float, float]]]:
    """The recordings from the requested cameras that overlap the window, each with the offsets to search
    (a recording whose start is unknown is searched whole)."""
    chosen = [r for r in recordings if not request.cameras or r.camera in request.cameras]
    spans = [(r, r.span(request)) for r in chosen]
    return [(r, span) for r, span in spans if span is not None]
