"""Answering one subject access request end to end: enrol, search, export, package, destroy.

Order matters for privacy: the requester's temporary entry is created only
after the archive and the templates have been checked, is destroyed (and the
destruction audited) whether the run succeeds or fails, and the package
becomes visible at EXPORT_DIR only when every clip and the index are complete.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from redactor_video.audit import AuditLog
from redactor_video.detect import create_detector
from redactor_video.errors import OutputError
from redactor_video.recognise.embedder import Embedder
from redactor_video.recognise.keys import Key
from redactor_video.sar.archive import find_recordings, in_scope, probe
from redactor_video.sar.enrol import TemporaryEnrolment
from redactor_video.sar.export import ExportedClip, Exporter
from redactor_video.sar.package import PackageSettings, Renderer, building, check_target, sha256, write_package
from redactor_video.sar.request import SubjectRequest
from redactor_video.sar.search import ScanResult, Scanner, segments


@dataclass(frozen=True)
class Outcome:
    """What the run produced: the package folder, its clips, and what was searched."""

    package: Path
    manifest: Path
    clips: list[ExportedClip]
    searched: list[ScanResult]


def default_audit_path(export_dir: Path) -> Path:
    """Beside the package, not in it: the log is the controller's record and must outlive a failed run."""
    return export_dir.with_name(export_dir.name + ".audit.jsonl")


def answer(request: SubjectRequest, photos: Sequence[Path], archive: Sequence[Path], export_dir: Path, key: Key,
           audit_path: Path, settings: PackageSettings, art15: Path | None = None, overwrite: bool = False,
           models_dir: str | Path | None = None, on_event: Callable[[str], None] = lambda message: None) -> Outcome:
    """Search `archive` for the person in `photos` and write the disclosure package to `export_dir`."""
    check_target(export_dir, overwrite)
    if audit_path.resolve().is_relative_to(export_dir.resolve()):
        raise OutputError(f"{audit_path}: the audit log cannot go inside the package folder; it must outlive a "
                          "failed run and stays with you, not with the requester")
    renderer = Renderer(art15)
    recordings = in_scope([probe(p) for p in find_recordings(list(archive))], request)
    on_event(f"{len(recordings)} recording(s) in scope")
    embedder = Embedder(models_dir)
    with AuditLog(audit_path, key) as audit:
        audit.record("sar-request", **request.to_dict(), recordings=[str(r.path) for r, _ in recordings],
                     settings=settings.to_dict())
        with create_detector("centerface", threshold=settings.redact.threshold, models_dir=models_dir) as detector:
            enrolment = TemporaryEnrolment(request, photos, detector, embedder, audit)
        with enrolment:
            searched: list[ScanResult] = []
            with Scanner(settings.scan, embedder, models_dir, settings.policy) as scanner, \
                    enrolment.entry() as entry:
                for rec, span in recordings:
                    result = scanner.scan(rec, span, entry.templates)
                    searched.append(result)
                    on_event(f"{rec.path.name}: searched {span[1] - span[0]:.0f} s in {result.seconds:.1f} s, "
                             f"{len(result.seen)} matching track(s)")
            found = [seg for result in searched for seg in segments(result, settings.scan.padding_seconds)]
            # Counts of other people's tracks are the controller's business, not the requester's: audit only.
            audit.record("sar-search", request_id=request.request_id, segments=len(found),
                         recordings=[{"file": str(r.recording.path), "frames_examined": r.samples, "tracks": r.tracks,
                                      "embeddings": r.embeddings, "seconds": round(r.seconds, 2)} for r in searched])
            with building(export_dir, overwrite) as root:
                clips: list[ExportedClip] = []
                if found:
                    with enrolment.entry() as entry, \
                            Exporter(entry, embedder, audit_path, key, settings.redact, settings.blur_subject_context,
                                     models_dir, settings.policy) as exporter:
                        for number, segment in enumerate(found, start=1):
                            clip = exporter.export(segment, root, f"clip{number:02d}")
                            clips.append(clip)
                            on_event(f"{clip.clip}: {clip.frames} frames from {segment.recording.path.name}")
                enrolment.destroy()
                manifest = write_package(root, request, searched, clips, settings, renderer)
                digest = sha256(manifest)
        audit.record("sar-package", request_id=request.request_id, package=str(export_dir), clips=len(clips),
                     manifest_sha256=digest)
    return Outcome(export_dir, export_dir / "manifest.json", clips, searched)
