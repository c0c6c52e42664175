"""Atomic output: write beside the target under a temporary name, rename only on success.

A crash, Ctrl-C or fail-closed abort therefore never leaves a partial file, and
never replaces a file the user already had with something half-written.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from redactor.errors import OutputError


def check_writable(target: Path, overwrite: bool) -> None:
    """Refuse early, before any work, if the output cannot be produced."""
    folder = target.parent if str(target.parent) else Path(".")
    if target.exists() and target.is_dir():
        raise OutputError(f"{target}: is a folder, expected a file name")
    if target.exists() and not overwrite:
        raise OutputError(f"{target}: already exists (use --overwrite to replace it)")
    if not folder.is_dir():
        raise OutputError(f"{folder}: output folder does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{folder}: output folder is not writable")


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder (same extension); rename it over `target` on success."""
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{target.suffix}", dir=folder)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create a file there ({exc.strerror})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
