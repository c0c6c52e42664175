"""Atomic output: write beside the target under a temporary name, rename only on success.

A crash, Ctrl-C or fail-closed abort therefore never leaves a partial file, and
never replaces a file the user already had with something half-written.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from redactor.errors import OutputError


def check_writable(target: Path, overwrite: bool) -> None:
    """Refuse early, before any work, if the output cannot be produced."""
    if target.exists() and target.is_dir():
        raise OutputError(f"{target}: is a folder, expected a file name")
    if target.exists() and not overwrite:
        raise OutputError(f"{target}: already exists (use --overwrite to replace it)")
    # Batch jobs mirror input folders, so missing folders are made; the nearest existing one decides.
    folder = target.parent if str(target.parent) else Path(".")
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"{folder}: is not a folder, cannot write under it")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{folder}: output folder is not writable")


def _create_temp(target: Path) -> Path:
    """An empty new file beside `target`, created 0666 & ~umask like any output (mkstemp would make it 0600)."""
    folder = target.parent if str(target.parent) else Path(".")
    while True:
        path = folder / f".{target.stem}.{secrets.token_hex(4)}.part{target.suffix}"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(f"{folder}: cannot create a file there ({exc.strerror})") from None


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder (same extension); rename it over `target` on success."""
    tmp_path = _create_temp(target)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
