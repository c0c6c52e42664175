"""The audit log: append-only, hash-chained and keyed; any edited, forged, reordered or deleted line is found,
and a watchlist's log is bound to it: deleting, truncating, swapping or rolling back the log, or rolling back the
watchlist, is found by `audit verify` and refused by the next run; a witness finds both rolled back together."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from redactor_video.errors import AuditError, KeyFileError
from redactor_video.audit import AuditLog, head_path, verify
from redactor_video.cli import main
from redactor_video.recognise import default_audit_path
from redactor_video.recognise.keys import Key, generate_key, load_key
from redactor_video.recognise.watchlist import Binding, read_state, write_entries
from tests.recognition_helpers import make_key, raw_entry

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def log(tmp_path: Path) -> tuple[Path, Path]:
    """A key file and a five-line audit log written with it."""
    key_path, key = make_key(tmp_path)
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, key) as audit:
        for i in range(5):
            audit.record("match", entry_id=f"wl-{i}", score=0.3 + i / 100, camera="gate-1")
    return key_path, path


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def edit_value(ls: list[str]) -> list[str]:
    record = json.loads(ls[2])
    record["entry_id"] = "wl-someone-else"
    return ls[:2] + [json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"] + ls[3:]


def edit_and_rehash(ls: list[str]) -> list[str]:
    """What a careful forger without the key does: edit, then fix the hash (the MAC cannot be fixed)."""
    record = json.loads(ls[2])
    record["score"] = 0.01
    body = {k: v for k, v in record.items() if k not in ("hash", "mac")}
    record["hash"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return ls[:2] + [json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"] + ls[3:]


TAMPERING: list[tuple[str, Callable[[list[str]], list[str]], str]] = [
    ("edited line", edit_value, "line 3: content does not match its hash"),
    ("edited and re-hashed line", edit_and_rehash, "line 3: authentication failed"),
    ("deleted middle line", lambda ls: ls[:2] + ls[3:], "line 3: sequence jumps from 2 to 4"),
    ("deleted first line", lambda ls: ls[1:], "line 1: sequence jumps from 0 to 2"),
    ("deleted last line", lambda ls: ls[:-1], "log has 4 lines but its head file says 5"),
    ("swapped lines", lambda ls: ls[:1] + [ls[2], ls[1]] + ls[3:], "line 2: sequence jumps"),
    ("emptied log", lambda ls: [], "log has 0 lines but its head file says 5"),
    ("cut mid-line", lambda ls: ls[:-1] + [ls[-1][:40]], "last line is incomplete"),
]


def test_intact_log_verifies(log: tuple[Path, Path]) -> None:
    key_path, path = log
    summary = verify(path, load_key(key_path))
    assert summary.lines == 5
    assert summary.head == json.loads(lines(path)[-1])["hash"]
    first = json.loads(lines(path)[0])
    assert first["prev"] == "0" * 64 and first["event"] == "match" and first["time"].endswith("Z")


@pytest.mark.parametrize("name,tamper,message", TAMPERING, ids=[t[0] for t in TAMPERING])
def test_tampering_is_detected(log: tuple[Path, Path], name: str, tamper: Callable[[list[str]], list[str]],
                               message: str) -> None:
    key_path, path = log
    path.write_text("".join(tamper(lines(path))))
    with pytest.raises(AuditError, match=message):
        verify(path, load_key(key_path))


def test_deleted_head_file_is_detected(log: tuple[Path, Path]) -> None:
    key_path, path = log
    head_path(path).unlink()
    with pytest.raises(AuditError, match="head file missing"):
        verify(path, load_key(key_path))


def test_wrong_key_is_a_key_error(log: tuple[Path, Path], tmp_path: Path) -> None:
    """Each line names its key's public id: a key that verifies none of them is the wrong key (8), not an edit."""
    _, path = log
    _, other = make_key(tmp_path, "other.key")
    with pytest.raises(KeyFileError, match="written with a different key than") as caught:
        verify(path, other)
    assert caught.value.exit_code == 8


def test_edited_line_after_a_genuine_one_is_forged_not_a_wrong_key(log: tuple[Path, Path]) -> None:
    """Once one line verified under the key, a later line that names another key id is an edit (9)."""
    key_path, path = log
    ls = lines(path)
    record = json.loads(ls[3])
    record["key"] = "0" * 16
    body = {k: v for k, v in record.items() if k not in ("hash", "mac")}
    record["hash"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    path.write_text("".join(ls[:3] + [json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"] + ls[4:]))
    with pytest.raises(AuditError, match="line 4: authentication failed \\(forged line\\)$"):
        verify(path, load_key(key_path))


def test_refuses_to_append_to_a_truncated_log(log: tuple[Path, Path]) -> None:
    key_path, path = log
    path.write_text("".join(lines(path)[:-1]))
    with pytest.raises(AuditError, match="does not match its head"):
        AuditLog(path, load_key(key_path))


def test_two_writers_share_one_chain(log: tuple[Path, Path]) -> None:
    key_path, path = log
    key = load_key(key_path)
    with AuditLog(path, key) as a, AuditLog(path, key) as b:
        for i in range(3):
            a.record("watchlist-load", n=i)
            b.record("match", n=i)
    assert verify(path, key).lines == 11


def test_cli_verify_exit_codes(log: tuple[Path, Path]) -> None:
    key_path, path = log
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", "verify", str(path)], env={"REDACTOR_KEY_FILE": str(key_path)})
    assert ok.exit_code == 0, ok.output
    assert "5 lines, chain intact" in ok.output
    path.write_text("".join(lines(path)[:-1]))
    bad = runner.invoke(main, ["audit", "verify", str(path), "--key-file", str(key_path)])
    assert bad.exit_code == 9
    assert "deleted from the end" in bad.output
    no_key = runner.invoke(main, ["audit", "verify", str(path)], env={"REDACTOR_KEY_FILE": ""})
    assert no_key.exit_code == 8
    assert "no key" in no_key.output


def test_cli_wrong_key_exits_8(log: tuple[Path, Path], tmp_path: Path) -> None:
    _, path = log
    other, _ = make_key(tmp_path, "other.key")
    wrong = CliRunner().invoke(main, ["audit", "verify", str(path), "--key-file", str(other)])
    assert wrong.exit_code == 8, wrong.output
    assert wrong.stderr.splitlines() == [f"Error: {path}: written with a different key than {other}"]


# ---------------------------------------------------------------- a watchlist's log, bound to it
#
# Real sealed watchlists, real keys, real `redactor` commands (CliRunner): a run is `redact` of a small picture
# with --alert-only, a change is `watchlist remove`, the check is `audit verify`.


@dataclass
class Deployment:
    """A key, a watchlist of two people, its default audit log, and a picture to redact."""

    folder: Path
    key_path: Path
    key: Key
    watchlist: Path
    log: Path
    picture: Path
    runs: int = 0

    def redact(self, *extra: str) -> Result:
        self.runs += 1
        out = self.folder / f"{self.watchlist.stem}.out{self.runs}.png"
        result = CliRunner().invoke(main, ["redact", str(self.picture), "-o", str(out), "-q", "--alert-only",
                                           "--watchlist", str(self.watchlist), "--key-file", str(self.key_path),
                                           *extra])
        assert out.exists() == (result.exit_code == 0), result.output
        return result

    def command(self, *args: str) -> Result:
        return CliRunner().invoke(main, [*args, "--key-file", str(self.key_path)])

    def verify(self, *extra: str) -> Result:
        return self.command("audit", "verify", str(self.log), *extra)

    def snapshot(self) -> dict[Path, bytes]:
        return {p: p.read_bytes() for p in (self.watchlist, self.log)}


def restore(snapshot: dict[Path, bytes], *paths: Path) -> None:
    for path in paths:
        path.write_bytes(snapshot[path])


def grey_picture(path: Path) -> Path:
    cv2.imwrite(str(path), np.full((96, 128, 3), 90, np.uint8))
    return path


def new_deployment(folder: Path, name: str = "people.watchlist") -> Deployment:
    folder.mkdir(exist_ok=True)
    key_path = folder / "site.key"
    if not key_path.exists():
        generate_key(key_path)
    key = load_key(key_path)
    watchlist = folder / name
    write_entries(watchlist, key, [raw_entry(id="wl-keep", expires="2099-12-31"),
                                   raw_entry(id="wl-gone", expires="2099-12-31")])
    return Deployment(folder, key_path, key, watchlist, default_audit_path(watchlist),
                      grey_picture(folder / "gate.png"))


@pytest.fixture
def used(tmp_path: Path) -> tuple[Deployment, dict[Path, bytes]]:
    """A deployment after a run, a change (wl-gone removed: version 2) and another run; and the watchlist and
    log as they were after the first run (what a backup holds)."""
    d = new_deployment(tmp_path)
    assert d.redact().exit_code == 0
    early = d.snapshot()
    removed = d.command("watchlist", "remove", str(d.watchlist), "wl-gone")
    assert removed.exit_code == 0, removed.output
    assert d.redact().exit_code == 0
    assert d.verify().exit_code == 0
    return d, early


def _other_watchlists_log(d: Deployment, early: dict[Path, bytes]) -> None:
    other = new_deployment(d.folder, "other.watchlist")
    assert other.redact().exit_code == 0 and other.redact().exit_code == 0
    d.log.write_bytes(other.log.read_bytes())


def _same_watchlists_other_log(d: Deployment, early: dict[Path, bytes]) -> None:
    camera_log = d.folder / "gate.audit.jsonl"
    assert d.redact("--audit-log", str(camera_log)).exit_code == 0
    d.log.write_bytes(camera_log.read_bytes())


BOUND_TAMPERING: list[tuple[str, Callable[[Deployment, dict[Path, bytes]], None], str]] = [
    ("log deleted", lambda d, early: d.log.unlink(), "audit log deleted (its watchlist has sealed 3 lines of it)"),
    ("log emptied", lambda d, early: d.log.write_bytes(b""), "log has 0 lines but its watchlist {w} has sealed 3"),
    ("last line deleted", lambda d, early: d.log.write_text("".join(lines(d.log)[:-1])),
     "log has 2 lines but its watchlist {w} has sealed 3: lines deleted from the end"),
    ("older copy of the log restored", lambda d, early: restore(early, d.log),
     "log has 1 lines but its watchlist {w} has sealed 3: lines deleted from the end, or an older copy"),
    ("another watchlist's log swapped in", _other_watchlists_log, "line 1: from the audit log of another watchlist"),
    ("another log of this watchlist swapped in", _same_watchlists_other_log, "logs swapped"),
    ("older copy of the watchlist restored", lambda d, early: restore(early, d.watchlist),
     "{w}: watchlist version 1 is older than version 2, which its audit log {log} has seen: an older copy of the "
     "watchlist was restored"),
]


@pytest.mark.parametrize("name,tamper,message", BOUND_TAMPERING, ids=[t[0] for t in BOUND_TAMPERING])
def test_log_or_watchlist_tampering_is_found_by_verify_and_refused_by_the_next_run(
        used: tuple[Deployment, dict[Path, bytes]], name: str,
        tamper: Callable[[Deployment, dict[Path, bytes]], None], message: str) -> None:
    """Each of these left `audit verify` saying "chain intact" and the next run going ahead (a removed entry
    back in use, for the watchlist rolled back). Now both find it (exit 9, one line) and the refused run
    writes nothing, not even to the log."""
    d, early = used
    tamper(d, early)
    expected = message.format(w=d.watchlist, log=d.log)
    checked = d.verify()
    assert checked.exit_code == 9, checked.output
    assert expected in checked.stderr and len(checked.stderr.splitlines()) == 1, checked.stderr
    files = {p: p.read_bytes() for p in d.folder.iterdir() if p.is_file()}
    refused = d.redact()
    assert refused.exit_code == 9, refused.output
    assert len(refused.stderr.splitlines()) == 1 and refused.stderr.startswith("Error: "), refused.stderr
    assert str(d.log) in refused.stderr or str(d.watchlist) in refused.stderr, refused.stderr
    assert {p: p.read_bytes() for p in d.folder.iterdir() if p.is_file()} == files


def test_a_change_is_recorded_in_every_log_so_any_log_finds_the_watchlist_rolled_back(tmp_path: Path) -> None:
    """Two cameras, two logs: the removal is recorded in both, and a run with either refuses the older copy."""
    d = new_deployment(tmp_path)
    gate = tmp_path / "gate.audit.jsonl"
    assert d.redact().exit_code == 0 and d.redact("--audit-log", str(gate)).exit_code == 0
    early = d.snapshot()
    assert d.command("watchlist", "remove", str(d.watchlist), "wl-gone").exit_code == 0
    for path in (d.log, gate):
        last = json.loads(lines(path)[-1])
        assert (last["event"], last["entry_id"], last["watchlist_version"]) == ("entry-removed", "wl-gone", 2)
    restore(early, d.watchlist)
    refused = d.redact("--audit-log", str(gate))
    assert refused.exit_code == 9 and "older than version 2" in refused.stderr, refused.output


def test_wrong_key_at_verify_of_a_bound_log_exits_8(used: tuple[Deployment, dict[Path, bytes]]) -> None:
    d, _ = used
    other, _ = make_key(d.folder, "other.key")
    wrong = CliRunner().invoke(main, ["audit", "verify", str(d.log), "--key-file", str(other)])
    assert wrong.exit_code == 8, wrong.output
    assert wrong.stderr.splitlines() == [f"Error: {d.watchlist}: sealed with a different key than {other}"]


def test_a_bound_log_takes_lines_only_through_its_watchlist(used: tuple[Deployment, dict[Path, bytes]]) -> None:
    """A line written without the watchlist (a tool that opens the log alone, or the refusal of a watchlist
    that fails to open) could not be sealed, and would itself look like tampering: none is written."""
    d, _ = used
    before = d.log.read_bytes()
    with pytest.raises(AuditError, match="bound to watchlist [0-9a-f]{16}; only runs with that watchlist may add"):
        AuditLog(d.log, d.key)
    sealed = d.watchlist.read_bytes()
    d.watchlist.write_bytes(sealed[:-1] + bytes([sealed[-1] ^ 1]))
    refused = d.redact()
    assert refused.exit_code == 9 and "fails its integrity check" in refused.stderr, refused.output
    assert d.log.read_bytes() == before


def test_every_line_is_bound_and_the_watchlist_holds_the_head(used: tuple[Deployment, dict[Path, bytes]]) -> None:
    d, _ = used
    state = read_state(d.watchlist, d.key)
    records = [json.loads(line) for line in lines(d.log)]
    assert [r["event"] for r in records] == ["watchlist-load", "entry-removed", "watchlist-load"]
    assert {r["watchlist_id"] for r in records} == {state.id}
    assert {r["log"] for r in records} == {d.log.name}
    assert {r["key"] for r in records} == {d.key.key_id.hex()}
    assert [r["watchlist_version"] for r in records if r["event"] == "watchlist-load"] == [1, 2]
    head = state.logs[d.log.name]
    assert (head["lines"], head["bytes"], head["last"], head["written"]) == \
        (len(records), d.log.stat().st_size, lines(d.log)[-1], True)
    assert not head_path(d.log).exists(), "a bound log's head is in its watchlist, not in a file beside it"
    assert state.version == 2 and [e["id"] for e in state.entries] == ["wl-keep"]


def test_witness_finds_the_watchlist_and_log_rolled_back_together(tmp_path: Path) -> None:
    """Someone with the key who restores older copies of both leaves a pair that agrees, so that alone is
    not found (the README says so, and this shows it); the witness, elsewhere, still holds the lost lines."""
    d = new_deployment(tmp_path / "site")
    assert d.redact().exit_code == 0
    before_witness = d.snapshot()
    witness = tmp_path / "elsewhere" / "witness.jsonl"
    witness.parent.mkdir()
    itself = d.command("watchlist", "witness", str(d.watchlist), str(d.log))
    assert itself.exit_code == 2 and "is the watchlist or one of its audit logs" in itself.stderr, itself.output
    named = d.command("watchlist", "witness", str(d.watchlist), str(witness))
    assert named.exit_code == 0, named.output
    assert "same volume" in named.stderr, "a witness beside the watchlist is worth a warning"
    assert d.command("watchlist", "remove", str(d.watchlist), "wl-gone").exit_code == 0
    assert d.redact().exit_code == 0
    after_witness = d.snapshot()
    assert d.redact().exit_code == 0
    intact = d.verify()
    assert intact.exit_code == 0 and "5 lines, chain intact" in intact.stdout
    assert "the witness holds 4 of its lines" in intact.stdout, "every line from witness-set on"

    restore(after_witness, d.watchlist, d.log)  # the restored watchlist still names the witness
    found = d.verify()
    assert found.exit_code == 9, found.output
    assert found.stderr.splitlines() == [f"Error: {d.log}: ends at line 4, but the witness {witness} holds its "
                                         "line 5: the log was cut short or rolled back (with its watchlist, if "
                                         "they agree)"]

    restore(before_witness, d.watchlist, d.log)  # from before the witness was named: nothing here can tell
    assert d.verify().exit_code == 0
    assert d.redact().exit_code == 0, "wl-gone is back in use; only the witness shows it"
    found = d.verify("--witness", str(witness))
    assert found.exit_code == 9, found.output
    assert f"{d.log}: line 2 differs from its copy in the witness {witness}" in found.stderr


CRASH = """
import os, sys
from pathlib import Path
import redactor_video.audit as audit
from redactor_video.recognise.keys import load_key
from redactor_video.recognise.watchlist import Binding

append = audit._append

def killed(path, data, what):
    if sys.argv[4] == "after writing":
        append(path, data, what)
    os._exit(3)

audit._append = killed
key = load_key(Path(sys.argv[1]))
audit.WatchlistLog(Path(sys.argv[3]), key, Binding(Path(sys.argv[2]), key)).record("match", entry_id="wl-keep")
"""


@pytest.mark.parametrize("when", ["before writing", "after writing"])
def test_a_run_killed_between_sealing_a_line_and_marking_it_written_is_not_refused(tmp_path: Path, when: str) -> None:
    """A real process dies (no clean-up of any kind) after sealing a line into the watchlist, before or after
    writing it to the log. The next run goes ahead; a missing line is written then, from the watchlist."""
    d = new_deployment(tmp_path)
    assert d.redact().exit_code == 0
    killed = subprocess.run([sys.executable, "-c", CRASH, str(d.key_path), str(d.watchlist), str(d.log), when],
                            env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60)
    assert killed.returncode == 3, killed.stderr
    checked = d.verify()
    assert checked.exit_code == 0, checked.output
    if when == "before writing":
        assert len(lines(d.log)) == 1
        assert "but line 2, which a stopped run sealed and did not write" in checked.stdout
    assert d.redact().exit_code == 0
    assert [json.loads(line)["event"] for line in lines(d.log)] == ["watchlist-load", "match", "watchlist-load"]
    after = d.verify()
    assert after.exit_code == 0 and "3 lines, chain intact" in after.stdout and "stopped" not in after.stdout


WRITER = """
import sys
import time
from pathlib import Path
from redactor_video.audit import WatchlistLog
from redactor_video.recognise.keys import load_key
from redactor_video.recognise.watchlist import Binding

key = load_key(Path(sys.argv[1]))
with WatchlistLog(Path(sys.argv[3]), key, Binding(Path(sys.argv[2]), key)) as log:
    ready = Path(sys.argv[5])
    (ready / sys.argv[4]).touch()
    while len(list(ready.iterdir())) < 3:  # all three write at once, not one after another
        time.sleep(0.01)
    for n in range(20):
        log.record("match", writer=sys.argv[4], n=n)
"""


def test_concurrent_runs_on_one_watchlist_take_turns(tmp_path: Path) -> None:
    """Three real processes at once, two on one log and one on a second log of the same watchlist: every
    line lands, in each writer's order, and both logs are all their watchlist sealed."""
    d = new_deployment(tmp_path)
    gate = tmp_path / "gate.audit.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ready = tmp_path / "ready"
    ready.mkdir()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(d.key_path), str(d.watchlist), str(log), name,
                                 str(ready)], env=env, stderr=subprocess.PIPE, text=True)
               for log, name in ((d.log, "a"), (d.log, "b"), (gate, "c"))]
    for writer in writers:
        _, stderr = writer.communicate(timeout=240)
        assert writer.returncode == 0, stderr
    binding = Binding(d.watchlist, d.key)
    assert verify(d.log, d.key, binding).lines == 40 and verify(gate, d.key, binding).lines == 20
    records = [json.loads(line) for line in lines(d.log)]
    for name in ("a", "b"):
        assert [r["n"] for r in records if r["writer"] == name] == list(range(20))


FIRST_FORMAT_MAGIC = b"REDACTOR-WATCHLIST-1\n"


def first_format_watchlist(path: Path, key: Key, entries: list[dict]) -> None:
    """A watchlist as the first format wrote it: the entries alone, sealed."""
    nonce = secrets.token_bytes(12)
    header = FIRST_FORMAT_MAGIC + key.key_id
    sealed = AESGCM(key.derive("watchlist")).encrypt(nonce, json.dumps({"format": 1, "entries": entries}).encode(),
                                                     header)
    path.write_bytes(header + nonce + sealed)


def first_format_log(path: Path, key: Key, events: list[str]) -> None:
    """A log as the first format wrote it: no key id, no binding, the head in a file beside it."""
    subkey, prev, text = key.derive("audit log"), "0" * 64, ""
    for seq, event in enumerate(events, start=1):
        body = {"seq": seq, "time": "2025-01-01T00:00:00.000Z", "event": event, "prev": prev}
        prev = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        mac = hmac.new(subkey, f"line|{prev}".encode(), hashlib.sha256).hexdigest()
        text += json.dumps({**body, "hash": prev, "mac": mac}, sort_keys=True, separators=(",", ":")) + "\n"
    path.write_text(text)
    head_mac = hmac.new(subkey, f"head|{len(events)}|{prev}".encode(), hashlib.sha256).hexdigest()
    head_path(path).write_text(json.dumps({"lines": len(events), "hash": prev, "mac": head_mac}) + "\n")


def first_format_deployment(folder: Path) -> Deployment:
    key_path, key = make_key(folder)
    watchlist = folder / "people.watchlist"
    first_format_watchlist(watchlist, key, [raw_entry(id="wl-keep", expires="2099-12-31")])
    first_format_log(default_audit_path(watchlist), key, ["entry-added", "watchlist-load"])
    return Deployment(folder, key_path, key, watchlist, default_audit_path(watchlist), grey_picture(folder / "g.png"))


def test_first_format_watchlist_and_log_are_upgraded_by_the_first_run(tmp_path: Path) -> None:
    """Migration: the first run with the key checks the old log whole against its head file, binds it (a
    watchlist-upgraded line, version 1) and drops the head file; the old copy of the watchlist is then
    refused."""
    d = first_format_deployment(tmp_path)
    old_watchlist = d.watchlist.read_bytes()
    before = d.verify()
    assert before.exit_code == 0 and "2 lines, chain intact" in before.stdout and "sealed" not in before.stdout
    assert d.redact().exit_code == 0
    records = [json.loads(line) for line in lines(d.log)]
    assert [r["event"] for r in records] == ["entry-added", "watchlist-load", "watchlist-upgraded", "watchlist-load"]
    assert "key" not in records[1] and records[2]["watchlist_version"] == 1 and records[2]["from_format"] == 1
    assert not head_path(d.log).exists()
    state = read_state(d.watchlist, d.key)
    assert (state.format, state.version, [e["id"] for e in state.entries]) == (2, 1, ["wl-keep"])
    after = d.verify()
    assert after.exit_code == 0 and f"4 lines, chain intact, head {records[-1]['hash']}; all that" in after.stdout
    d.watchlist.write_bytes(old_watchlist)
    refused = d.redact()
    assert refused.exit_code == 9, refused.output
    assert refused.stderr.splitlines() == [f"Error: {d.watchlist}: in the first format, but its audit log {d.log} "
                                           "has lines from an upgraded watchlist: an older copy of the watchlist "
                                           "was restored"]


def test_first_format_log_that_fails_its_check_is_never_upgraded(tmp_path: Path) -> None:
    d = first_format_deployment(tmp_path)
    d.log.write_text("".join(lines(d.log)[:-1]))  # the old head file still says 2 lines
    refused = d.redact()
    assert refused.exit_code == 9, refused.output
    assert refused.stderr.splitlines() == [f"Error: {d.log}: log has 1 lines but its head file says 2 (lines "
                                           "deleted from the end)"]
    assert read_state(d.watchlist, d.key).format == 1 and len(lines(d.log)) == 1
