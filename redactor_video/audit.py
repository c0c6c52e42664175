"""Append-only, hash-chained, keyed audit log (JSON lines) of every watchlist action, bound to its watchlist.

Each line carries the SHA-256 of the line before it, so editing, reordering or
deleting a line breaks the chain, and an HMAC of its hash under a subkey of the
deployment key, so nobody without the key can rebuild a consistent chain. Each
line names the key it was written with (the key's public id), so a wrong key is
told apart from a forged line.

A chain cut short, or deleted whole, is still a valid chain, so something
outside the log has to remember how long it is. A watchlist's log is bound to
it: every line carries the watchlist's id (also in its MAC), its version and the
log's name, and the sealed watchlist keeps each of its logs' line count, length
and last line, rewritten atomically under the watchlist's lock with every line.
Deleting, truncating, swapping or restoring an older copy of a log, or restoring
an older copy of the watchlist alone, leaves the two disagreeing, and the next
run refuses to start. Each line is sealed into the watchlist before it is
written to the log, and marked written after: a run that dies between the first
two leaves its log one line short of a line not marked written, and the next run
writes that very line from the watchlist, so a crash never leaves a state that
is refused for ever, while a line deleted once written is found (a log longer
than its sealed head is never genuine).

A log no watchlist uses (a subject access request's, or one written before a
watchlist could vouch for it) keeps its head in a sidecar file `FILE.head`; a
watchlist that first uses such a log adopts it whole, checked against that file.

Someone with the key who restores older copies of a watchlist and its logs
together leaves them agreeing; a witness, a second append-only copy of every
line on another volume (named in the watchlist), still shows the lines they lost.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from redactor_video.errors import AuditError, KeyFileError, OutputError

if TYPE_CHECKING:  # a runtime import would cycle through redactor_video.recognise
    from redactor_video.recognise.keys import Key

GENESIS = "0" * 64
_TAIL_BYTES = 1 << 16


@dataclass(frozen=True)
class AuditSummary:
    """What a successful verification establishes: this many lines, ending in this hash; for a bound log, that
    its watchlist sealed exactly these lines (`pending`: all but the last, which a stopped run sealed and the
    next run writes); with a witness, how many of its lines the witness holds."""

    lines: int
    head: str
    bound: bool = False
    pending: bool = False
    witnessed: int | None = None


class Sealed(Protocol):
    """What an audit log needs of its sealed watchlist: identity, version, its logs' heads and the witness."""

    id: str
    version: int
    format: int
    logs: dict[str, dict[str, Any]]
    witness: str | None


class Binding(Protocol):
    """A watchlist as its audit logs see it: a lock, its sealed state, and where its logs lie."""

    path: Path

    def locked(self) -> AbstractContextManager[None]: ...

    def read(self) -> Sealed: ...

    def write(self, state: Sealed) -> None: ...

    def name_of(self, log: Path) -> str: ...

    def path_of(self, name: str) -> Path: ...


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


class _Lines:
    """Makes and checks lines under one key. Lines without a key id are the first format's (MAC of the hash
    alone); they are accepted only before any line of today's format."""

    def __init__(self, key: Key, path: Path) -> None:
        self.key = key.derive("audit log")
        self.key_id = key.key_id.hex()
        self.source = key.source
        self.path = path
        self.trusted = False

    def make(self, seq: int, prev: str, event: str, fields: dict[str, Any],
             binding: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """A new line (as a dict, and as the bytes to append) following `prev`."""
        body = {"seq": seq, "time": _now(), "event": event, **fields, **binding, "key": self.key_id, "prev": prev}
        line_hash = _digest(body)
        line = {**body, "hash": line_hash,
                "mac": _mac(self.key, "line", str(binding.get("watchlist_id", "")), line_hash)}
        return line, _canonical(line) + b"\n"

    def check(self, raw: bytes | str, number: int | None) -> dict[str, Any]:
        """One line, checked against its own hash and MAC (not yet against its neighbours)."""
        where = f"{self.path}: line {number}" if number is not None else f"{self.path}: last line"
        try:
            line = json.loads(raw)
            line_hash, mac = line.pop("hash"), line.pop("mac")
        except (ValueError, KeyError, TypeError, AttributeError):
            line = None
        if line is None or not isinstance(line.get("seq"), int) or not isinstance(line.get("prev"), str):
            raise AuditError(f"{where}: not a valid audit record (edited or corrupt)")
        if _digest(line) != line_hash:
            raise AuditError(f"{where}: content does not match its hash (line edited)")
        current = "key" in line
        expected = _mac(self.key, "line", str(line.get("watchlist_id", "")), str(line_hash)) if current \
            else _mac(self.key, "line", str(line_hash))
        if not hmac.compare_digest(str(mac), expected):
            if current and not self.trusted and line["key"] != self.key_id:
                raise KeyFileError(f"{self.path}: written with a different key than {self.source}")
            raise AuditError(f"{where}: authentication failed (forged line"
                             f"{'' if self.trusted else ', or the wrong key'})")
        self.trusted = True
        line["hash"] = line_hash
        return line


def _bound_to(line: dict[str, Any]) -> str | None:
    return line.get("watchlist_id") if "key" in line else None


def _chain(raw: bytes, lines: _Lines) -> list[dict[str, Any]]:
    """Every line of a log, each checked and chained to the one before; raise at the first fault."""
    path = lines.path
    if raw and not raw.endswith(b"\n"):
        raise AuditError(f"{path}: last line is incomplete (truncated or edited)")
    out: list[dict[str, Any]] = []
    prev, first_format = GENESIS, True
    for number, text in enumerate(raw.splitlines(), start=1):
        line = lines.check(text, number)
        if line["seq"] != number:
            raise AuditError(f"{path}: line {number}: sequence jumps from {number - 1} to {line['seq']} "
                             "(lines deleted or reordered)")
        if line["prev"] != prev:
            raise AuditError(f"{path}: line {number}: does not chain to the line before it (lines deleted or reordered)")
        if "key" not in line and not first_format:
            raise AuditError(f"{path}: line {number}: a line of the first format after today's (forged)")
        first_format = "key" not in line
        prev = line["hash"]
        out.append(line)
    return out


def _last_line(path: Path, end: int) -> bytes:
    """The raw last line of the first `end` bytes of a log (empty if they are)."""
    if end == 0:
        return b""
    with open(path, "rb") as fh:
        fh.seek(max(0, end - _TAIL_BYTES))
        chunk = fh.read(end - max(0, end - _TAIL_BYTES))
    if not chunk.endswith(b"\n"):
        raise AuditError(f"{path}: last line is incomplete; run `redactor audit verify`")
    return chunk.rstrip(b"\n").rsplit(b"\n", 1)[-1]


def _append(path: Path, data: bytes, what: str) -> None:
    """Append whole lines durably, under an exclusive lock (several processes may share a witness)."""
    try:
        with open(path, "ab") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise OutputError(f"{path}: cannot append to the {what} ({exc.strerror})") from None


class AuditLog:
    """A log whose head is kept in its sidecar file; open it once per run and close it when done."""

    def __init__(self, path: Path, key: Key) -> None:
        self.path = Path(path)
        self._lines = _Lines(key, self.path)
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
            line, text = self._lines.make(seq + 1, prev, event, fields, {})
            self._fh.seek(0, os.SEEK_END)
            self._fh.write(text)
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._write_head(seq + 1, line["hash"])
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
        """(sequence number, hash) of the last line; refuse to extend a log whose end was tampered with, or
        one bound to a watchlist (only runs with that watchlist may add to it)."""
        size = self._fh.seek(0, os.SEEK_END)
        head = _read_head(self.path, self._lines.key)
        if size == 0:
            if head is not None and head[0] != 0:
                raise AuditError(f"{self.path}: log is empty but its head file says {head[0]} lines; "
                                 "refusing to append to a truncated audit log")
            return 0, GENESIS
        last = self._lines.check(_last_line(self.path, size), None)
        if _bound_to(last):
            raise AuditError(f"{self.path}: bound to watchlist {last['watchlist_id']}; only runs with that "
                             "watchlist may add to it")
        seq, line_hash = int(last["seq"]), str(last["hash"])
        if head is None or head != (seq, line_hash):
            raise AuditError(f"{self.path}: log end does not match its head file; "
                             "refusing to append (run `redactor audit verify`)")
        return seq, line_hash

    def _write_head(self, seq: int, line_hash: str) -> None:
        target = head_path(self.path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
        data = {"lines": seq, "hash": line_hash, "mac": _mac(self._lines.key, "head", str(seq), line_hash)}
        tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
        os.replace(tmp, target)


class WatchlistLog(AuditLog):
    """A watchlist's log: each line is bound to the watchlist, and its head is sealed inside the watchlist.

    Opening checks every log the watchlist has sealed (so a change recorded in
    any of them, then undone by restoring an older watchlist, is found), upgrades
    a watchlist of the first format, and adopts this log if the watchlist has not
    used it before. Changes to the watchlist (`change`) are recorded in every one
    of its logs, in the same step that seals them.
    """

    def __init__(self, path: Path, key: Key, binding: Binding) -> None:
        self.path = Path(path)
        self.binding = binding
        self.name = binding.name_of(self.path)
        self._key = key
        self._lines = _Lines(key, self.path)
        self._lock = threading.Lock()
        binding.read()  # a wrong key or an edited watchlist is refused before anything is locked or written
        with binding.locked():
            state = binding.read()
            for name in list(state.logs):
                self._current(state, name)
            self._head(state)
            self.watchlist_id = state.id
            if state.format == 1:
                state.version += 1
                self._commit(state, "watchlist-upgraded", {"watchlist": str(binding.path), "from_format": 1},
                             everywhere=True)

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        """Seal the line into the watchlist, then append it to the log (and the witness); return it."""
        with self._lock, self.binding.locked():
            state = self._reread()
            self._head(state)
            return self._commit(state, event, fields)

    def change(self, mutate: Callable[[Any], None], event: str, **fields: Any) -> dict[str, Any]:
        """Change the watchlist (`mutate` edits its sealed state), bump its version and record `event` in every
        one of its logs, all under its lock; the line that records it in this log is returned."""
        with self._lock, self.binding.locked():
            state = self._reread()
            for name in list(state.logs):
                self._current(state, name)
            self._head(state)
            mutate(state)
            state.version += 1
            return self._commit(state, event, fields, everywhere=True)

    def close(self) -> None:
        """Nothing is held open between lines: each is written under the watchlist's lock."""

    def _reread(self) -> Sealed:
        state = self.binding.read()
        if state.id != self.watchlist_id:
            raise AuditError(f"{self.binding.path}: replaced by another watchlist while in use")
        return state

    def _head(self, state: Sealed) -> None:
        """Check this log against its sealed head; adopt it if the watchlist has not used it before."""
        if self.name in state.logs:
            self._current(state, self.name)
        else:
            state.logs[self.name] = _adopt(self.path, self._lines, state, self.binding.path)

    def _current(self, state: Sealed, name: str) -> None:
        """Check that one log ends where the watchlist says; write the sealed last line a stopped run left out."""
        head, path = state.logs[name], self.binding.path_of(name)
        size, last = int(head["bytes"]), head.get("last")
        try:
            actual = path.stat().st_size
        except FileNotFoundError:
            actual = -1
        if actual == size and _ends_with(path, size, last):
            return
        if last is not None and not head["written"] and actual == size - len(last.encode()):
            before = _last_line(path, actual)
            ends = _Lines(self._key, path).check(before, None)["hash"] if before else GENESIS
            if json.loads(last)["prev"] == ends:
                _append(path, last.encode(), "audit log")
                if state.witness:
                    _append(Path(state.witness), last.encode(), "audit witness")
                return
        _against(path, _chain(_read_log(path, head), _Lines(self._key, path)), state, name, self.binding.path)
        raise AuditError(f"{path}: does not end with the line its watchlist {self.binding.path} sealed")

    def _commit(self, state: Sealed, event: str, fields: dict[str, Any], everywhere: bool = False) -> dict[str, Any]:
        """Seal the new line(s) into the watchlist, write them, then seal them as written. A head file left
        from before the log was bound goes."""
        written: dict[str, bytes] = {}
        own: dict[str, Any] = {}
        for name in list(state.logs) if everywhere else [self.name]:
            head = state.logs[name]
            prev = json.loads(head["last"])["hash"] if head.get("last") else GENESIS
            binding = {"watchlist_id": state.id, "watchlist_version": state.version, "log": name}
            line, text = self._lines.make(int(head["lines"]) + 1, prev, event, fields, binding)
            state.logs[name] = {"lines": int(head["lines"]) + 1, "bytes": int(head["bytes"]) + len(text),
                                "last": text.decode(), "written": False}
            written[name] = text
            if name == self.name:
                own = line
        self.binding.write(state)
        for name, text in written.items():
            _append(self.binding.path_of(name), text, "audit log")
            head_path(self.binding.path_of(name)).unlink(missing_ok=True)
        if state.witness:
            _append(Path(state.witness), b"".join(written.values()), "audit witness")
        for name in written:
            state.logs[name]["written"] = True
        self.binding.write(state)
        return own


def _ends_with(path: Path, end: int, last: str | None) -> bool:
    """Whether the first `end` bytes of a log end with the line `last` (None: are none at all)."""
    if last is None:
        return end == 0
    data = last.encode()
    start = end - len(data)
    if start < 0:
        return False
    with open(path, "rb") as fh:
        fh.seek(max(0, start - 1))
        before = fh.read(1) if start else b"\n"
        return before == b"\n" and fh.read(len(data)) == data


def _newer_than(state: Sealed, seen: int, path: Path, watchlist: Path) -> None:
    """Refuse a watchlist older than the newest version its log has seen."""
    if seen > state.version:
        raise AuditError(f"{watchlist}: watchlist version {state.version} is older than version {seen}, which "
                         f"its audit log {path} has seen: an older copy of the watchlist was restored")


def _refuse_bound(path: Path, chain: list[dict[str, Any]], state: Sealed, watchlist: Path) -> None:
    """A log the watchlist has not sealed may not have a line bound to any watchlist: one of its own means
    the watchlist is an older copy, anyone else's that this is another watchlist's log."""
    owner = next((_bound_to(line) for line in chain if _bound_to(line)), None)
    if owner is None:
        return
    if state.format == 1:
        raise AuditError(f"{watchlist}: in the first format, but its audit log {path} has lines from an "
                         "upgraded watchlist: an older copy of the watchlist was restored")
    if owner == state.id:
        raise AuditError(f"{watchlist}: does not know its audit log {path}, which has lines from it: an "
                         "older copy of the watchlist was restored")
    raise AuditError(f"{path}: the audit log of another watchlist (id {owner}), not of {watchlist}")


def _adopt(path: Path, lines: _Lines, state: Sealed, watchlist: Path) -> dict[str, Any]:
    """The head of a log the watchlist has not used: none (no file yet), or the whole of a log no watchlist
    has bound, checked against its head file. A log bound to any watchlist is refused."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {"lines": 0, "bytes": 0, "last": None, "written": True}
    except OSError as exc:
        raise AuditError(f"{path}: cannot read audit log ({exc.strerror})") from None
    chain = _chain(raw, lines)
    _refuse_bound(path, chain, state, watchlist)
    _check_head(path, lines, chain)
    last = raw.splitlines(keepends=True)[-1].decode() if chain else None
    return {"lines": len(chain), "bytes": len(raw), "last": last, "written": True}


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


def _check_head(path: Path, lines: _Lines, chain: list[dict[str, Any]]) -> None:
    """A log that keeps its own head: the head file must name its last line."""
    seq, prev = len(chain), chain[-1]["hash"] if chain else GENESIS
    head = _read_head(path, lines.key)
    if head is None:
        if seq:
            raise AuditError(f"{head_path(path)}: head file missing; cannot tell whether lines were deleted from the end")
    elif head != (seq, prev):
        raise AuditError(f"{path}: log has {seq} lines but its head file says {head[0]} (lines deleted from the end)")


def record_unbound(path: Path, key: Key, event: str, **fields: Any) -> None:
    """Record an event no watchlist can vouch for (there is none yet, or it cannot be opened) in a log no
    watchlist has bound; a bound log takes lines only through its watchlist, so then nothing is written."""
    path = Path(path)
    try:
        last = _last_line(path, path.stat().st_size)
        bound = bool(last) and _bound_to(json.loads(last)) is not None
    except (OSError, ValueError, TypeError, AttributeError, AuditError):
        bound = False  # no log yet, or one AuditLog refuses with its own message
    if not bound:
        with AuditLog(path, key) as log:
            log.record(event, **fields)


def verify(path: Path, key: Key, binding: Binding | None = None, witness: Path | None = None) -> AuditSummary:
    """Check every line and the chain between them, then the head: the watchlist's for a log bound to one
    (`binding`), else the head file; with a witness, check that the log holds every line the witness has."""
    path = Path(path)
    lines = _Lines(key, path)
    if binding is None:
        return _verify_alone(path, lines, _chain(_read_log(path, None), lines))
    with binding.locked():  # a run seals a line before it writes it: read both between runs' lines
        state = binding.read()
        name = binding.name_of(path)
        sealed = state.logs.get(name)
        raw = _read_log(path, sealed)
    chain = _chain(raw, lines)
    if sealed is None:
        _refuse_bound(path, chain, state, binding.path)
        return _verify_alone(path, lines, chain)  # the watchlist has not bound this log yet
    pending = _against(path, chain, state, name, binding.path)
    checked = witness or (Path(state.witness) if state.witness else None)
    witnessed = _witnessed(checked, key, path, state.id, name, chain) if checked else None
    return AuditSummary(len(chain), chain[-1]["hash"] if chain else GENESIS, True, pending, witnessed)


def _against(path: Path, chain: list[dict[str, Any]], state: Sealed, name: str, watchlist: Path) -> bool:
    """Whether a bound log's lines, each its watchlist's and this log's, are all its watchlist sealed (True:
    but for the last line, which a stopped run sealed and never wrote); otherwise say how they differ."""
    for number, line in enumerate(chain, start=1):
        if _bound_to(line) not in (None, state.id):
            raise AuditError(f"{path}: line {number}: from the audit log of another watchlist (id "
                             f"{_bound_to(line)}), not of {watchlist}")
        if _bound_to(line) and line.get("log") != name:
            raise AuditError(f"{path}: line {number}: from {watchlist}'s audit log {line.get('log')}, not "
                             f"this one ({name}): logs swapped")
    return _compare(path, watchlist, state, state.logs[name], chain)


def _read_log(path: Path, sealed: dict[str, Any] | None) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if sealed and sealed["lines"]:
            raise AuditError(f"{path}: audit log deleted (its watchlist has sealed {sealed['lines']} lines "
                             "of it)") from None
        raise AuditError(f"{path}: audit log not found") from None
    except OSError as exc:
        raise AuditError(f"{path}: cannot read audit log ({exc.strerror})") from None


def _verify_alone(path: Path, lines: _Lines, chain: list[dict[str, Any]]) -> AuditSummary:
    """A log no watchlist has bound: its head file."""
    owner = next((_bound_to(line) for line in chain if _bound_to(line)), None)
    if owner:
        raise AuditError(f"{path}: bound to watchlist {owner}; name that watchlist (--watchlist) to check "
                         "that no line was deleted from the end")
    _check_head(path, lines, chain)
    return AuditSummary(len(chain), chain[-1]["hash"] if chain else GENESIS)


def _compare(path: Path, watchlist: Path, state: Sealed, sealed: dict[str, Any], chain: list[dict[str, Any]]) -> bool:
    """The line count and last line of `_against`."""
    count, n = int(sealed["lines"]), len(chain)
    last = json.loads(sealed["last"]) if sealed.get("last") else None
    if n == count and (last is None or chain[-1]["hash"] == last["hash"]):
        return False
    if last is not None and not sealed.get("written", True) and n == count - 1 \
            and (chain[-1]["hash"] if chain else GENESIS) == last["prev"]:
        return True
    if n < count:
        raise AuditError(f"{path}: log has {n} lines but its watchlist {watchlist} has sealed {count}: lines "
                         "deleted from the end, or an older copy of the log restored")
    if last is not None and chain[count - 1]["hash"] != last["hash"]:
        raise AuditError(f"{path}: line {count} is not the one its watchlist {watchlist} sealed: replaced by "
                         "another log, or an older copy restored and written to since")
    _newer_than(state, max((int(line.get("watchlist_version", 0)) for line in chain[count:]), default=0),
                path, watchlist)
    raise AuditError(f"{path}: log has {n} lines but its watchlist {watchlist} has sealed only {count}: an older "
                     "copy of the watchlist was restored, or lines were added")


def _witnessed(witness: Path, key: Key, path: Path, watchlist_id: str, name: str, chain: list[dict[str, Any]]) -> int:
    """How many of this log's lines the witness holds, each also in the log; a line the log lacks or holds
    differently means the log was cut short or rewritten (with its watchlist, if they still agree)."""
    try:
        raw = witness.read_bytes()
    except OSError as exc:
        raise AuditError(f"{witness}: cannot read the audit witness ({exc.strerror})") from None
    lines = _Lines(key, witness)
    count = 0
    for number, text in enumerate(raw.splitlines(), start=1):
        try:
            loose = json.loads(text)
            ours = loose.get("watchlist_id") == watchlist_id and loose.get("log") == name
        except (ValueError, AttributeError):
            raise AuditError(f"{witness}: line {number}: not a valid audit record (edited or corrupt)") from None
        if not ours:
            continue  # a witness may serve several logs and watchlists
        line = lines.check(text, number)
        seq = line["seq"]
        if seq > len(chain):
            raise AuditError(f"{path}: ends at line {len(chain)}, but the witness {witness} holds its line {seq}: "
                             "the log was cut short or rolled back (with its watchlist, if they agree)")
        if chain[seq - 1]["hash"] != line["hash"]:
            raise AuditError(f"{path}: line {seq} differs from its copy in the witness {witness}: the log was "
                             "rolled back and written again")
        count += 1
    return count
