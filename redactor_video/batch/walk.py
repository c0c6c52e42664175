"""Which files under SRC a batch redacts, and where each one goes under DST (the same relative path)."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from redactor_video.errors import InputError, OutputError
from redactor_video.media.formats import is_media_path

BATCH_PREFIX = ".redactor-batch"
"""Everything the batch keeps in DST (manifest, lock, staging) starts with this, so the walk never picks it up."""


@dataclass(frozen=True)
class BatchItem:
    """One input file, its output, and the relative path (POSIX form) that names it in the manifest."""

    rel: str
    src: Path
    dst: Path


def _matches(rel: str, patterns: tuple[str, ...]) -> bool:
    name = PurePosixPath(rel).name
    return any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def _unreadable(exc: OSError) -> None:
    """A folder the walk cannot read would silently drop its recordings from the batch: stop instead."""
    raise InputError(f"{exc.filename}: cannot read this folder ({exc.strerror})")


def walk(src: Path, dst: Path, include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> list[BatchItem]:
    """Every video or image under `src` that passes the globs, mirrored under `dst`, in a stable order.

    A glob matches the path relative to SRC (`*` crosses folders, so `cam1/*` is all
    of cam1) or just the file name (`*.mp4`). With no `include`, every media file is
    taken; `exclude` wins over `include`. Hidden files and folders are skipped, and so
    is DST itself when it lies inside SRC.
    """
    if not src.is_dir():
        raise InputError(f"{src}: not a folder (batch takes a folder of recordings)")
    src_real, dst_real = src.resolve(), dst.resolve()
    if dst_real == src_real:
        raise OutputError(f"{dst}: output folder is the input folder; choose another")
    if src_real.is_relative_to(dst_real):
        raise OutputError(f"{dst}: output folder contains the input folder; choose another")
    items = []
    for folder, dirs, files in os.walk(src_real, onerror=_unreadable):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() != dst_real)
        for name in sorted(files):
            path = here / name
            if not is_media_path(path):
                continue
            rel = path.relative_to(src_real).as_posix()
            if include and not _matches(rel, include):
                continue
            if exclude and _matches(rel, exclude):
                continue
            items.append(BatchItem(rel, src / rel, dst / rel))
    return sorted(items, key=lambda item: item.rel)
