"""The audit log: append-only, hash-chained and keyed; any edited, forged, reordered or deleted line is found."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from redactor.audit import AuditError, AuditLog, head_path, verify
from redactor.cli import main
from redactor.recognise.keys import load_key
from tests.recognition_helpers import make_key


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


def test_wrong_key_fails(log: tuple[Path, Path], tmp_path: Path) -> None:
    _, path = log
    _, other = make_key(tmp_path, "other.key")
    with pytest.raises(AuditError, match="authentication failed"):
        verify(path, other)


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
