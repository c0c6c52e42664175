"""The disclosure package: clips and stills, a readable index.html, and manifest.json with every checksum.

The package is built in a hidden folder beside EXPORT_DIR and renamed onto it
only when complete, so a failed or interrupted run never leaves a package that
looks finished. index.html is rendered with Jinja2 (autoescaped) from
`template/index.html.j2`; the Art. 15 information comes from
`template/art15.html`, which the operator edits (or a copy of it given with
--art15-template). manifest.json lists the SHA-256 of every other file in the
package and the settings used, so the package can be checked after hand-over.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jinja2
from markupsafe import Markup

from redactor_video import __version__
from redactor_video.errors import InputError, OutputError
from redactor_video.pipeline import RedactSettings
from redactor_video.recognise.matcher import MatchPolicy
from redactor_video.sar.archive import Recording
from redactor_video.sar.export import ExportedClip
from redactor_video.sar.request import SubjectRequest
from redactor_video.sar.search import ScanResult, ScanSettings
from redactor_video.models import sha256_file as sha256

FORMAT = "redactor-sar-1"
ART15_TEMPLATE = "art15.html"
TEMPLATES = Path(__file__).with_name("template")


def check_target(target: Path, overwrite: bool) -> None:
    """Refuse early, before any search, if the package cannot be put at `target`."""
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target}: exists and is not a folder")
    if target.exists() and not overwrite:
        raise OutputError(f"{target}: already exists (use --overwrite to replace it)")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{parent}: no such folder")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{parent}: not writable")


@contextmanager
def building(target: Path, overwrite: bool) -> Iterator[Path]:
    """A hidden folder beside `target` to build in; it replaces `target` only if the block completes."""
    check_target(target, overwrite)
    work = target.parent / f".{target.name}.{secrets.token_hex(4)}.part"
    try:
        work.mkdir()
    except OSError as exc:
        raise OutputError(f"{target.parent}: cannot create the package there ({exc.strerror})") from None
    try:
        yield work
        if target.exists():
            old = target.parent / f".{target.name}.{secrets.token_hex(4)}.old"
            os.replace(target, old)
            os.replace(work, target)
            shutil.rmtree(old)
        else:
            os.replace(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


class Renderer:
    """Loads both templates up front, so a broken Art. 15 template fails before the search, not after it."""

    def __init__(self, art15: Path | None = None) -> None:
        self._env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                       undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        source = art15 if art15 is not None else TEMPLATES / ART15_TEMPLATE
        self.art15_source = str(art15) if art15 is not None else f"packaged default ({ART15_TEMPLATE})"
        try:
            text = source.read_bytes()
            self._art15 = self._env.from_string(text.decode("utf-8"))
            self._page = self._env.get_template("index.html.j2")
        except OSError as exc:
            raise InputError(f"{source}: cannot read the template ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise InputError(f"{source}: the Art. 15 template is not UTF-8 text") from None
        except jinja2.TemplateSyntaxError as exc:
            raise InputError(f"{exc.filename or source}: template error on line {exc.lineno}: {exc.message}") from None
        self.art15_sha256 = hashlib.sha256(text).hexdigest()

    def render(self, context: dict) -> str:
        try:
            # The Art. 15 text is the operator's own trusted HTML; everything else is escaped.
            art15 = Markup(self._art15.render(request=context["request"]))
            return self._page.render(**context, art15=art15)
        except jinja2.TemplateError as exc:
            raise InputError(f"{self.art15_source}: template error: {exc}") from None


def _when(moment: datetime | None) -> str:
    return moment.isoformat(sep=" ", timespec="seconds") if moment is not None else "unknown"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds") if moment is not None else None


def _length(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def _recorded(rec: Recording, start: float, end: float) -> str:
    if rec.start is None:
        return f"start of recording unknown; {_length(start)} to {_length(end)} into the file"
    return f"{_when(rec.at(start))} to {_when(rec.at(end))}"


@dataclass(frozen=True)
class PackageSettings:
    """Everything that decided what was searched and disclosed; written into the manifest."""

    scan: ScanSettings
    redact: RedactSettings
    policy: MatchPolicy
    blur_subject_context: bool

    def to_dict(self) -> dict:
        return {"scan": self.scan.to_dict(), "redact": self.redact.to_dict(), "match_policy": asdict(self.policy),
                "blur_subject_context": self.blur_subject_context}


def write_package(root: Path, request: SubjectRequest, searched: list[ScanResult], clips: list[ExportedClip],
                  settings: PackageSettings, renderer: Renderer) -> Path:
    """Write index.html and manifest.json into `root` (which already holds the clips); returns the manifest."""
    generated = datetime.now(timezone.utc).astimezone()
    rows = []
    for number, clip in enumerate(clips, start=1):
        rec = clip.segment.recording
        rows.append({
            "number": number, "file": clip.clip.as_posix(), "sha256": sha256(root / clip.clip),
            "thumbnails": [t.as_posix() for t in clip.thumbnails], "source": rec.path.name, "camera": rec.camera,
            "time_source": rec.time_source,
            "source_start_seconds": round(clip.first_offset, 3), "source_end_seconds": round(clip.last_offset, 3),
            "recording_start": _iso(rec.at(clip.first_offset)), "recording_end": _iso(rec.at(clip.last_offset)),
            "requester_seen_from_seconds": round(clip.segment.seen_from, 3),
            "requester_seen_to_seconds": round(clip.segment.seen_to, 3),
            "frames": clip.frames, "requester_frames": clip.requester_frames,
            "recorded": _recorded(rec, clip.first_offset, clip.last_offset),
            "seen": _recorded(rec, clip.segment.seen_from, clip.segment.seen_to),
            "length": _length(clip.last_offset - clip.first_offset),
        })
    if request.start and request.end:
        window = f"{_when(request.start)} to {_when(request.end)}"
    else:
        window = f"from {_when(request.start)}" if request.start else (
            f"until {_when(request.end)}" if request.end else "all recorded footage")
    page = renderer.render({
        "request": request, "generated": _when(generated), "window": window,
        "cameras": ", ".join(request.cameras) or "all", "clips": rows,
        "searched": [{"file": r.recording.path.name, "camera": r.recording.camera or "unknown",
                      "start": _when(r.recording.start), "length": _length(r.recording.duration)} for r in searched],
        "searched_duration": _length(sum(r.span[1] - r.span[0] for r in searched)),
    })
    (root / "index.html").write_text(page, encoding="utf-8")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    manifest = {
        "format": FORMAT, "redactor": __version__, "generated": generated.isoformat(timespec="seconds"),
        "request": request.to_dict(),
        "settings": {**settings.to_dict(), "art15_template": {"source": renderer.art15_source,
                                                              "sha256": renderer.art15_sha256}},
        "searched": [{**r.recording.to_dict(), "searched_from_seconds": round(r.span[0], 3),
                      "searched_to_seconds": round(r.span[1], 3), "frames_examined": r.samples}
                     for r in searched],
        "clips": [{k: v for k, v in row.items() if k not in ("recorded", "seen", "length")} for row in rows],
        "files": {p.relative_to(root).as_posix(): sha256(p) for p in files},
    }
    path = root / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
