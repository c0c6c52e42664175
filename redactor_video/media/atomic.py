"""Atomic output: write beside the target under a temporary name, rename only on success.

A crash, Ctrl-C or fail-closed abort therefore never leaves a partial file, and
never replaces a file the user already had with something half-written.

A job killed outright (kill -9, the OOM killer, power loss) cannot remove its
temporary file, so each one is held under an exclusive flock(2) for as long as
its job runs: the kernel drops that lock when the process dies, however it dies.
The next run into the folder removes files of exactly our temporary naming
pattern whose lock it can take, and so never one that a running job still holds.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from redactor_video import interrupts
from redactor_video.errors import OutputError

_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{8}\.part\.[^.]+")
"""`.{stem}.{8 hex}.part{suffix}`, as `_create_temp` names them. Every output has a suffix (it picks the
format), so one is required: other writers' hidden `....part` files (the watchlist's mkstemp, the audit
log, model downloads) end in `.part` and hold no lock that would show they are in use."""


def check_writable(target: Path, overwrite: bool) -> None:
    """Refuse early, before any work, if the output cannot be produced.

    Any directory entry at `target` counts as existing, a symlink too, even one
    whose target is gone (`Path.exists()` follows links and would call a
    dangling one free). With `overwrite`, a symlink is what gets replaced: the
    finished output is renamed over the link itself, never written through it,
    so the file it points to (perhaps one the user keeps elsewhere) is untouched.
    """
    if target.is_dir() and not target.is_symlink():
        raise OutputError(f"{target}: is a folder, expected a file name")
    if os.path.lexists(target) and not overwrite:
        raise OutputError(f"{target}: already exists (use --overwrite to replace it)")
    # Batch jobs mirror input folders, so missing folders are made; the nearest existing one decides.
    folder = target.parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"{folder}: is not a folder, cannot write under it")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{folder}: output folder is not writable")


def _names_file(fd: int, path: Path) -> bool:
    """Whether `path` still names the file open as `fd` (a sweep or a job may have removed or renamed it)."""
    try:
        here, there = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _remove_if_abandoned(path: Path) -> None:
    """Remove `path` if it is a regular file whose lock nobody holds, i.e. its job is gone."""
    try:
        # No following links, and no blocking on a FIFO that happens to match the name.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _names_file(fd, path):
            os.unlink(path)
    except OSError:
        return  # held by a running job, or not ours to remove
    finally:
        os.close(fd)


def remove_stale_temps(folder: Path) -> None:
    """Remove the temporary files that jobs killed outright left in `folder`.

    Best effort: an entry that cannot be examined or removed stays, and the run
    goes on, because a stale temporary holds only frames that were already
    masked (or a report's boxes), and its hidden `.part` name is never mistaken
    for an output.
    """
    try:
        names = [entry.name for entry in os.scandir(folder)]
    except OSError:
        return
    for name in names:
        if _TEMP_NAME.fullmatch(name):
            _remove_if_abandoned(folder / name)


def _create_temp(target: Path) -> tuple[Path, int]:
    """An empty new file beside `target`, and the descriptor holding its lock for the job's lifetime.

    Created 0666 & ~umask like any output (mkstemp would make it 0600). Writers
    open the path themselves (PyAV, the report); the lock lives on this
    descriptor, so it lasts until the job closes it or dies.
    """
    folder = target.parent
    while True:
        path = folder / f".{target.stem}.{secrets.token_hex(4)}.part{target.suffix}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(f"{folder}: cannot create a file there ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # another run's sweep took it between our create and lock; it is removing it
            continue
        except OSError:
            pass  # no flock on this filesystem: sweeps cannot lock here either, so they leave it alone
        if _names_file(fd, path):
            return path, fd
        os.close(fd)  # a sweep removed it before we locked it


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder (same extension); rename it over `target` on success.

    Stale temporaries of killed jobs in that folder are removed first. The
    rename replaces whatever entry `target` is, a symlink included, and never
    writes through a link.
    """
    remove_stale_temps(target.parent)
    tmp_path, lock = _create_temp(target)
    try:
        yield tmp_path
        interrupts.check()  # a run asked to stop never puts its output in place
        try:
            os.replace(tmp_path, target)
        except OSError as exc:
            raise OutputError(f"{target}: cannot put the finished file in place ({exc.strerror})") from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    finally:
        os.close(lock)
