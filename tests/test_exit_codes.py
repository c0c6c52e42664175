"""Exit codes of the command-line contract where they were wrong: Ctrl-C (130) and SIGTERM (143) that come
while a command is still starting, and a wrong key (8) told apart from an edited watchlist (9).

Real `redactor` processes, real signals, real sealed watchlists and keys.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from redactor_video.errors import KeyFileError, WatchlistTampered
from redactor_video.recognise.keys import load_key
from redactor_video.recognise.watchlist import read_entries, write_entries
from tests.recognition_helpers import make_key, raw_entry

REPO = Path(__file__).resolve().parents[1]
REDACTOR = [str(Path(sys.executable).with_name("redactor"))]
IMPORTING = "_multiarray_umath"
"""NumPy's core library: once it is mapped, `redactor` is importing the command it runs (redactor_video.cli loads
only click), which takes a second or more; a signal sent then lands before the command itself starts."""
KEY_ID = slice(21, 29)
"""Where a sealed watchlist keeps its key's id: after the 21-byte magic line."""


def wait_until_importing(proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    """Poll the process's memory map until the command's import has begun; no sleeping on a guess."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited {proc.returncode} before it began importing its command"
        if IMPORTING in Path(f"/proc/{proc.pid}/maps").read_text():
            return
        time.sleep(0.002)
    pytest.fail("the command never began importing")


@pytest.mark.parametrize("delay", [0.0, 0.3])
@pytest.mark.parametrize(("signum", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                      (signal.SIGTERM, 143, "terminated")])
def test_signal_while_the_command_starts(tmp_path: Path, signum: int, code: int, word: str, delay: float) -> None:
    """Ctrl-C used to print click's "Aborted!" and exit 1, and SIGTERM to kill the process with no word, when
    they came while the subcommand was imported or its options parsed (outside the command's own handler)."""
    command = [*REDACTOR, "redact", str(REPO / "samples" / "people.mp4"), "-o", str(tmp_path / "out.mp4"), "-q"]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        try:
            wait_until_importing(proc)
            time.sleep(delay)
            proc.send_signal(signum)
            returncode, stderr = proc.wait(timeout=60), proc.stderr.read()
        except BaseException:
            proc.kill()
            raise
    assert returncode == code, stderr
    assert stderr.splitlines() == [f"Error: {word}; no output was written"]
    assert list(tmp_path.iterdir()) == []


SWALLOWING_START = """
import sys, time
import redactor_video.cli as cli

real = cli._LazyGroup.get_command

def get_command(self, ctx, name):
    sys.stderr.write("importing\\n")
    sys.stderr.flush()
    try:
        time.sleep(30)
    except BaseException:  # a library that swallows every exception while it loads, a signal's included
        pass
    return real(self, ctx, name)

cli._LazyGroup.get_command = get_command
sys.argv = ["redactor", *sys.argv[1:]]
cli.main()
"""


UNRAISABLE_START = """
import sys, time
import redactor_video.cli as cli

real = cli._LazyGroup.get_command

class Finalised:
    def __del__(self):  # Python cannot raise from here: it reports the exception as unraisable and goes on
        sys.stderr.write("importing\\n")
        sys.stderr.flush()
        time.sleep(30)

def get_command(self, ctx, name):
    Finalised()
    return real(self, ctx, name)

cli._LazyGroup.get_command = get_command
sys.argv = ["redactor", *sys.argv[1:]]
cli.main()
"""


@pytest.mark.parametrize("start", [SWALLOWING_START, UNRAISABLE_START], ids=["swallowed", "unraisable"])
@pytest.mark.parametrize(("signum", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                      (signal.SIGTERM, 143, "terminated")])
def test_a_signal_swallowed_while_starting_still_ends_the_run(tmp_path: Path, signum: int, code: int,
                                                               word: str, start: str) -> None:
    """A signal whose exception a library swallows on its way up (a bare `except:` in an import) let a SIGTERM
    run on to write its output and exit 0 (1 CI run in 5). One that lands where Python cannot raise at all
    (an import lock's callback, a finaliser) printed "Exception ignored in" and a traceback before the error
    (1 CI run in about 30). The run must still end as that signal, with its one line and nothing written."""
    script = tmp_path / "start.py"
    script.write_text(start)
    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, str(script), "redact", str(REPO / "samples" / "people.mp4"), "-o",
               str(out / "out.mp4"), "-q"]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stderr.readline() == "importing\n"
            proc.send_signal(signum)
            returncode, stderr = proc.wait(timeout=120), proc.stderr.read()
        except BaseException:
            proc.kill()
            raise
    assert returncode == code, stderr
    assert stderr.splitlines() == [f"Error: {word}; no output was written"]
    assert list(out.iterdir()) == []


# ---------------------------------------------------------------- wrong key (8) or edited watchlist (9)


@pytest.fixture()
def sealed(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """A watchlist sealed with `right.key`, another key, and a small picture to redact."""
    right, key = make_key(tmp_path, "right.key")
    wrong, _ = make_key(tmp_path, "wrong.key")
    watchlist = tmp_path / "people.watchlist"
    write_entries(watchlist, key, [raw_entry()])
    picture = tmp_path / "gate.png"
    cv2.imwrite(str(picture), np.full((96, 128, 3), 90, np.uint8))
    return watchlist, right, wrong, picture


def redact(picture: Path, out: Path, watchlist: Path, key: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REDACTOR, "redact", str(picture), "-o", str(out), "-q", "--watchlist", str(watchlist),
                           "--key-file", str(key), "--alert-only"], capture_output=True, text=True, timeout=120)


def test_wrong_key_is_a_key_error_and_leaves_the_audit_log_intact(sealed: tuple[Path, Path, Path, Path]) -> None:
    """A run with the right key opens the audit log; one with another key used to fail that log's check
    (exit 9, "edited") before it looked at the watchlist, or to write a line the right key could not
    verify. Now it exits 8, says which key, writes nothing, and the log still verifies."""
    watchlist, right, wrong, picture = sealed
    first = redact(picture, picture.with_name("first.png"), watchlist, right)
    assert first.returncode == 0, first.stderr
    refused = redact(picture, picture.with_name("second.png"), watchlist, wrong)
    assert refused.returncode == 8, refused.stderr
    assert refused.stderr.splitlines() == [f"Error: {watchlist}: sealed with a different key than {wrong}"]
    assert not picture.with_name("second.png").exists()
    log = watchlist.with_name(watchlist.name + ".audit.jsonl")
    checked = subprocess.run([*REDACTOR, "audit", "verify", str(log), "--key-file", str(right)],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    assert ": 1 lines, chain intact" in checked.stdout, "the first run's load, nothing from the second"


def test_wrong_key_on_a_new_watchlist_writes_no_log(sealed: tuple[Path, Path, Path, Path]) -> None:
    """No audit log yet: the wrong key used to create one sealed with itself, which the right key then
    refused as edited on every run after."""
    watchlist, right, wrong, picture = sealed
    assert redact(picture, picture.with_name("a.png"), watchlist, wrong).returncode == 8
    assert not watchlist.with_name(watchlist.name + ".audit.jsonl").exists()
    after = redact(picture, picture.with_name("b.png"), watchlist, right)
    assert after.returncode == 0, after.stderr


def test_flipped_byte_with_the_right_key_is_an_integrity_error(sealed: tuple[Path, Path, Path, Path]) -> None:
    watchlist, right, _, picture = sealed
    blob = bytearray(watchlist.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    watchlist.write_bytes(bytes(blob))
    run = redact(picture, picture.with_name("out.png"), watchlist, right)
    assert run.returncode == 9, run.stderr
    assert run.stderr.splitlines() == [f"Error: {watchlist}: fails its integrity check (the file was modified or "
                                       "damaged); refusing to use any of it"]
    assert not picture.with_name("out.png").exists()


@pytest.mark.parametrize(("edit", "key", "raises", "message"), [
    ("key id", "right", WatchlistTampered, "its key id was edited"),
    ("body", "right", WatchlistTampered, "fails its integrity check"),
    ("nothing", "wrong", KeyFileError, "sealed with a different key"),
    ("body", "wrong", KeyFileError, "sealed with a different key"),
])
def test_key_id_tells_wrong_key_from_edit(sealed: tuple[Path, Path, Path, Path], edit: str, key: str,
                                          raises: type[Exception], message: str) -> None:
    """The header's key id is checked after decryption with the key's own id in its place: the right key
    opens a file whose id alone was edited (an edit, 9); a key that opens nothing is the wrong key (8)."""
    watchlist, right, wrong, _ = sealed
    blob = bytearray(watchlist.read_bytes())
    if edit == "key id":
        blob[KEY_ID.start] ^= 0x01
    elif edit == "body":
        blob[-20] ^= 0x01
    watchlist.write_bytes(bytes(blob))
    with pytest.raises(raises, match=message) as caught:
        read_entries(watchlist, load_key(right if key == "right" else wrong))
    assert caught.value.exit_code == (9 if raises is WatchlistTampered else 8)
