"""The batch manifest: one SQLite row per file in DST, the single source of truth for what is done.

A file counts as done only once its output has been renamed into place and its
row committed as `done`. Between the two steps the row says `finishing` and
names the staged output and its SHA-256, so a run killed at any instant can be
finished by the next one without redoing a file or losing one:

- `running` rows left by a dead run are queued again (their partial work lived
  only in the staging folder, which is cleared);
- a `finishing` row whose output is in place with the recorded hash is marked
  done; one whose staged file is still there is renamed and marked done.

A file's input is known by its SHA-256; a quick key of its size, mtime, ctime
and inode says when hashing it again can be skipped (see `InputKey`). Each
failed file keeps its exit code, so a later run that leaves it failed exits
with that code.

Only the driver process writes, and only while it holds an exclusive lock on
DST, so two batches can never work on one DST at once; the kernel drops the
lock when the process dies, even by `kill -9`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Iterator

from redactor_video.batch.walk import BATCH_PREFIX
from redactor_video.errors import OutputError
from redactor_video.pipeline import RedactSettings
from redactor_video.models import sha256_file as file_sha256

MANIFEST_NAME = f"{BATCH_PREFIX}.sqlite"
LOCK_NAME = f"{BATCH_PREFIX}.lock"
STAGING_NAME = f"{BATCH_PREFIX}.tmp"
_SCHEMA_VERSION = "2"
_ADDED_IN_2 = ("input_ctime_ns INTEGER", "input_ino INTEGER", "exit_code INTEGER")
"""Schema 1 lacked these columns; a schema 1 manifest gets them (empty) when opened, so its batch can be resumed:
its finished files are hashed once to fill in their quick keys; a failed file is tried again unless its recorded
hash shows it unchanged, and then counts with exit code 6 (no code was kept)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    rel TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    reason TEXT,
    input_sha256 TEXT,
    input_size INTEGER,
    input_mtime_ns INTEGER,
    input_ctime_ns INTEGER,
    input_ino INTEGER,
    output_sha256 TEXT,
    settings_hash TEXT,
    frames INTEGER,
    media_seconds REAL,
    work_seconds REAL,
    chunks INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER,
    staged TEXT,
    run_id TEXT,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    finished_at REAL,
    engine TEXT NOT NULL,
    workers INTEGER NOT NULL,
    settings_hash TEXT NOT NULL,
    settings TEXT NOT NULL,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    rel TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT,
    at REAL NOT NULL
);
"""


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHING = "finishing"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class InputKey:
    """What a stat of a source file says about it, to tell without hashing that it is the file recorded.

    Size and mtime alone are not enough: a different file of the same size can be
    given the old mtime (`touch -d`, `os.utime`, `cp -p`). The ctime cannot be set
    that way: the kernel moves it to now on every write, rename onto the path,
    chmod or utime. A file renamed over the source also has another inode. Equal
    keys therefore mean the file was not replaced or written since; any difference
    is settled by the SHA-256.
    """

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int

    @classmethod
    def of(cls, stat: os.stat_result) -> InputKey:
        return cls(stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


@dataclass(frozen=True)
class Row:
    """One file's record; `staged` is relative to DST and set only while `finishing`; `exit_code` only if failed."""

    rel: str
    status: Status
    reason: str | None
    input_sha256: str | None
    input_size: int | None
    input_mtime_ns: int | None
    input_ctime_ns: int | None
    input_ino: int | None
    output_sha256: str | None
    settings_hash: str | None
    frames: int | None
    media_seconds: float | None
    work_seconds: float | None
    chunks: int | None
    attempts: int
    exit_code: int | None
    staged: str | None
    run_id: str | None
    updated_at: float

    @property
    def input_key(self) -> InputKey | None:
        """The key of the input as last claimed or hashed; None where the manifest does not hold all of it."""
        parts = (self.input_size, self.input_mtime_ns, self.input_ctime_ns, self.input_ino)
        return None if None in parts else InputKey(*parts)


@dataclass(frozen=True)
class Outcome:
    """What a finished file's row records."""

    input_sha256: str
    output_sha256: str
    frames: int
    media_seconds: float | None
    work_seconds: float
    chunks: int


def settings_hash(settings: RedactSettings) -> str:
    """Identifies everything that changes the output; a finished file is redone when it differs."""
    return hashlib.sha256(json.dumps(settings.to_dict(), sort_keys=True).encode()).hexdigest()


def has_manifest(dst: Path) -> bool:
    return (dst / MANIFEST_NAME).is_file()


class Manifest:
    """The open manifest of one DST, locked for this process; use as a context manager."""

    def __init__(self, dst: Path) -> None:
        self.dst = dst
        self.staging = dst / STAGING_NAME
        try:
            dst.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(dst / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise OutputError(f"{dst}: cannot create the batch manifest there ({exc.strerror})") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise OutputError(f"{dst}: another batch is running on this output folder") from None
        try:
            self._db = sqlite3.connect(dst / MANIFEST_NAME, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            version = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if version is None:
                self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (_SCHEMA_VERSION,))
            elif version[0] == "1":
                with self._transaction():
                    for column in _ADDED_IN_2:
                        self._db.execute(f"ALTER TABLE files ADD COLUMN {column}")
                    self._db.execute("UPDATE meta SET value=? WHERE key='schema'", (_SCHEMA_VERSION,))
        except sqlite3.DatabaseError as exc:
            self._release()
            raise OutputError(f"{dst / MANIFEST_NAME}: not a readable batch manifest ({exc})") from None
        if version is not None and version[0] not in ("1", _SCHEMA_VERSION):
            self.close()
            raise OutputError(f"{dst / MANIFEST_NAME}: manifest schema {version[0]} is not {_SCHEMA_VERSION} "
                              "(written by another version of redactor)")

    def _release(self) -> None:
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)

    def close(self) -> None:
        self._db.close()
        self._release()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ reading

    def rows(self) -> dict[str, Row]:
        cur = self._db.execute(f"SELECT {', '.join(Row.__dataclass_fields__)} FROM files")
        return {r[0]: Row(r[0], Status(r[1]), *r[2:]) for r in cur.fetchall()}

    def row(self, rel: str) -> Row | None:
        cur = self._db.execute(f"SELECT {', '.join(Row.__dataclass_fields__)} FROM files WHERE rel=?", (rel,))
        r = cur.fetchone()
        return Row(r[0], Status(r[1]), *r[2:]) if r else None

    # ------------------------------------------------------------ runs

    def start_run(self, run_id: str, engine: str, workers: int, settings: RedactSettings) -> None:
        self._db.execute("INSERT INTO runs (run_id, started_at, engine, workers, settings_hash, settings) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (run_id, time.time(), engine, workers, settings_hash(settings),
                          json.dumps(settings.to_dict(), sort_keys=True)))

    def finish_run(self, run_id: str, summary: dict) -> None:
        self._db.execute("UPDATE runs SET finished_at=?, summary=? WHERE run_id=?",
                         (time.time(), json.dumps(summary), run_id))

    # ------------------------------------------------------------ file transitions

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One committed step: either all of it is in the manifest after a crash, or none of it."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _event(self, run_id: str, rel: str, event: str, detail: str | None = None) -> None:
        self._db.execute("INSERT INTO events (run_id, rel, event, detail, at) VALUES (?, ?, ?, ?, ?)",
                         (run_id, rel, event, detail, time.time()))

    def mark_running(self, run_id: str, rel: str, key: InputKey, settings: str) -> None:
        """Claim a file for this run; its earlier outcome (if any) is kept until a new one replaces it."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO files (rel, status, input_size, input_mtime_ns, input_ctime_ns, input_ino, "
                "settings_hash, attempts, run_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?) "
                "ON CONFLICT(rel) DO UPDATE SET status=excluded.status, reason=NULL, exit_code=NULL, "
                "attempts=attempts+1, input_size=excluded.input_size, input_mtime_ns=excluded.input_mtime_ns, "
                "input_ctime_ns=excluded.input_ctime_ns, input_ino=excluded.input_ino, "
                "settings_hash=excluded.settings_hash, run_id=excluded.run_id, updated_at=excluded.updated_at",
                (rel, Status.RUNNING, key.size, key.mtime_ns, key.ctime_ns, key.ino, settings, run_id, time.time()))
            self._event(run_id, rel, "started")

    def record_key(self, rel: str, key: InputKey) -> None:
        """The input was hashed and found unchanged: remember its new key so the next run need not hash it again."""
        with self._transaction():
            self._db.execute("UPDATE files SET input_size=?, input_mtime_ns=?, input_ctime_ns=?, input_ino=? "
                             "WHERE rel=?", (key.size, key.mtime_ns, key.ctime_ns, key.ino, rel))

    def count_attempt(self, run_id: str, rel: str, detail: str) -> None:
        """A worker took the file (or one of its chunks) up again after losing it."""
        with self._transaction():
            self._db.execute("UPDATE files SET attempts=attempts+1, updated_at=? WHERE rel=?", (time.time(), rel))
            self._event(run_id, rel, "retry", detail)

    def mark_failed(self, run_id: str, rel: str, reason: str, exit_code: int) -> None:
        with self._transaction():
            self._db.execute("UPDATE files SET status=?, reason=?, exit_code=?, staged=NULL, updated_at=? WHERE rel=?",
                             (Status.FAILED, reason, exit_code, time.time(), rel))
            self._event(run_id, rel, "failed", reason)

    def fail_unclaimed(self, run_id: str, rel: str, reason: str, exit_code: int) -> None:
        """Record a file refused before any work (e.g. its output exists and is not the batch's own)."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO files (rel, status, reason, exit_code, run_id, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(rel) DO UPDATE SET status=excluded.status, reason=excluded.reason, "
                "exit_code=excluded.exit_code, run_id=excluded.run_id, updated_at=excluded.updated_at",
                (rel, Status.FAILED, reason, exit_code, run_id, time.time()))
            self._event(run_id, rel, "failed", reason)

    def mark_finishing(self, rel: str, staged: Path, outcome: Outcome) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE files SET status=?, staged=?, input_sha256=?, output_sha256=?, frames=?, media_seconds=?, "
                "work_seconds=?, chunks=?, updated_at=? WHERE rel=?",
                (Status.FINISHING, staged.relative_to(self.dst).as_posix(), outcome.input_sha256,
                 outcome.output_sha256, outcome.frames, outcome.media_seconds, outcome.work_seconds,
                 outcome.chunks, time.time(), rel))

    def mark_done(self, run_id: str, rel: str) -> None:
        with self._transaction():
            self._db.execute("UPDATE files SET status=?, staged=NULL, reason=NULL, exit_code=NULL, updated_at=? "
                             "WHERE rel=?", (Status.DONE, time.time(), rel))
            self._event(run_id, rel, "done")

    def publish(self, run_id: str, rel: str, staged: Path, outcome: Outcome) -> None:
        """Move a finished output into place: finishing (committed), rename, done (committed)."""
        self.mark_finishing(rel, staged, outcome)
        target = self.dst / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
        except OSError as exc:
            self.mark_failed(run_id, rel, f"{target}: cannot move the output into place ({exc.strerror})",
                             OutputError.exit_code)
            return
        self.mark_done(run_id, rel)

    # ------------------------------------------------------------ recovery

    def recover(self, run_id: str) -> int:
        """Settle what a dead run left behind; returns how many files were re-queued."""
        requeued = 0
        for row in self.rows().values():
            if row.status == Status.FINISHING:
                if self._settle_finishing(run_id, row):
                    continue
            elif row.status != Status.RUNNING:
                continue
            with self._transaction():
                self._db.execute("UPDATE files SET status=?, reason=?, staged=NULL, updated_at=? WHERE rel=?",
                                 (Status.QUEUED, "interrupted", time.time(), row.rel))
                self._event(run_id, row.rel, "requeued", f"left {row.status} by run {row.run_id}")
            requeued += 1
        return requeued

    def _settle_finishing(self, run_id: str, row: Row) -> bool:
        """Complete a rename a dead run had committed to; False if its output is gone and the file must be redone."""
        target = self.dst / row.rel
        staged = self.dst / row.staged if row.staged else None
        if staged is not None and staged.is_file() and file_sha256(staged) == row.output_sha256:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
        elif not (target.is_file() and file_sha256(target) == row.output_sha256):
            return False
        self.mark_done(run_id, row.rel)
        return True
