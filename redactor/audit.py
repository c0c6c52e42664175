"""Append-only, hash-chained, keyed audit log (JSON lines) of every watchlist action.

Each line carries the SHA-256 of the line before it, so editing, reordering or
deleting a line breaks the chain; each line's hash is also authenticated with
an HMAC under a subkey of the deployment key, so someone without the key cannot
rebuild a consistent chain after editing it. Deleting lines from the end leaves
a shorter valid chain, so a sidecar head file (`FILE.head`, equally
authenticated) records how long the log is and what its last hash is.
Appends take an exclusive lock, so several processes can share one log.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redactor.errors import OutputError, RedactorError

if TYPE_CHECKING:  # a runtime import would cycle through redactor.recognise
    from redactor.recognise.keys import Key

GENESIS = "0" * 64
_TAIL_BYTES = 1 << 16


class AuditError(RedactorError):
    """The audit log fails verification: a line was edited, deleted or forged, or the key is wrong."""

    exit_code = 9


@dataclass(frozen=True)
class AuditSummary:
    """What a successful verification establishes: this many lines, ending in this hash."""

    lines: int
    head: str


def head_path(path: Path) -> Path:
    return path.with_name(path.name + ".head")


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical(body)).hexdigest()


def _mac(key: bytes, *parts: str) -> str:
    return hmac.new(key, "|".join(parts).encode(), hashlib.sha256).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditLog:
    """Appends events to one log file; open it once per run and close it when done."""

    def __init__(self, path: Path, key: Key) -> None:
        self.path = Path(path)
        self._key = key.derive("audit log")
        self._lock = threading.Lock()
        try:
            self._fh = open(self.path, "a+b")
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot open audit log ({exc.strerror})") from None
        try:
            with self._locked():
                self._tail()
        except BaseException:
            self._fh.close()
            raise

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event (time, event name, fields) and return the line as written."""
        with self._lock, self._locked():
            seq, prev = self._tail()
            body = {"seq": seq + 1, "time": _now(), "event": event, **fields, "prev": prev}
            line_hash = _digest(body)
            line = {**body, "hash": line_hash, "mac": _mac(self._key, "line", line_hash)}
            self._fh.seek(0, os.SEEK_END)
            self._fh.write(_canonical(line) + b"\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._write_head(seq + 1, line_hash)
        return line

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _locked(self) -> _FileLock:
        return _FileLock(self._fh.fileno())

    def _tail(self) -> tuple[int, str]:
        """(sequence number, hash) of the last line; refuse to extend a log whose end was tampered with."""
        size = self._fh.seek(0, os.SEEK_END)
        head = _read_head(self.path, self._key)
        if size == 0:
            if head is not None and head[0] != 0:
                raise AuditError(f"{self.path}: log is empty but its head file says {head[0]} lines; "
                                 "refusing to append to a truncated audit log")
            return 0, GENESIS
        self._fh.seek(max(0, size - _TAIL_BYTES))
        chunk = self._fh.read()
        lines = chunk.rstrip(b"\n").split(b"\n")
        if not chunk.endswith(b"\n"):
            raise AuditError(f"{self.path}: last line is incomplete; run `redactor audit verify`")
        last = _parse_line(lines[-1], self._key, self.path, None)
        seq, line_hash = int(last["seq"]), str(last["hash"])
        if head is None or head != (seq, line_hash):
            raise AuditError(f"{self.path}: log end does not match its head file; "
                             "refusing to append (run `redactor audit verify`)")
        return seq, line_hash

    def _write_head(self, seq: int, line_hash: str) -> None:
        target = head_path(self.path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
        data = {"lines": seq, "hash": line_hash, "mac": _mac(self._key, "head", str(seq), line_hash)}
        tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
        os.replace(tmp, target)


class _FileLock:
    """An exclusive advisory lock on an open file, so processes sharing a log append in turn."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)


def _read_head(path: Path, key: bytes) -> tuple[int, str] | None:
    target = head_path(path)
    if not target.exists():
        return None
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
        seq, line_hash, mac = int(data["lines"]), str(data["hash"]), str(data["mac"])
    except (OSError, ValueError, KeyError, TypeError):
        raise AuditError(f"{target}: head file is corrupt") from None
    if not hmac.compare_digest(mac, _mac(key, "head", str(seq), line_hash)):
        raise AuditError(f"{target}: head file fails its authentication (edited, or the wrong key)")
    return seq, line_hash


def _parse_line(raw: bytes, key: bytes, path: Path, number: int | None) -> dict[str, Any]:
    """One line, checked against its own hash and MAC (not yet against its neighbours)."""
    where = f"{path}: line {number}" if number is not None else f"{path}: last line"
    try:
        line = json.loads(raw)
        line_hash, mac = line.pop("hash"), line.pop("mac")
    except (ValueError, KeyError, TypeError, AttributeError):
        line = None
    if line is None or not isinstance(line.get("seq"), int) or not isinstance(line.get("prev"), str):
        raise AuditError(f"{where}: not a valid audit record (edited or corrupt)")
    if _digest(line) != line_hash:
        raise AuditError(f"{where}: content does not match its hash (line edited)")
    if not hmac.compare_digest(str(mac), _mac(key, "line", str(line_hash))):
        raise AuditError(f"{where}: authentication failed (forged line, or the wrong key)")
    line["hash"] = line_hash
    return line


def verify(path: Path, key: Key) -> AuditSummary:
    """Check every line, the chain between them and the head file; raise AuditError at the first fault."""
    path = Path(path)
    subkey = key.derive("audit log")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AuditError(f"{path}: audit log not found") from None
    except OSError as exc:
        raise AuditError(f"{path}: cannot read audit log ({exc.strerror})") from None
    if raw and not raw.endswith(b"\n"):
        raise AuditError(f"{path}: last line is incomplete (truncated or edited)")
    prev, seq = GENESIS, 0
    for number, text in enumerate(raw.splitlines(), start=1):
        line = _parse_line(text, subkey, path, number)
        if int(line["seq"]) != seq + 1:
            raise AuditError(f"{path}: line {number}: sequence jumps from {seq} to {line['seq']} (lines deleted or reordered)")
        if line["prev"] != prev:
            raise AuditError(f"{path}: line {number}: does not chain to the line before it (lines deleted or reordered)")
        prev, seq = line["hash"], seq + 1
    head = _read_head(path, subkey)
    if head is None:
        if seq:
            raise AuditError(f"{head_path(path)}: head file missing; cannot tell whether lines were deleted from the end")
    elif head != (seq, prev):
        raise AuditError(f"{path}: log has {seq} lines but its head file says {head[0]} (lines deleted from the end)")
    return AuditSummary(seq, prev)
