"""`redactor audit`: check that an audit log is complete and unaltered."""

from __future__ import annotations

from pathlib import Path

import click

from redactor_video.audit import verify
from redactor_video.cli import reports_errors
from redactor_video.cli.watchlist import key_file_option
from redactor_video.recognise.keys import load_key
from redactor_video.recognise.watchlist import Binding

_SUFFIX = ".audit.jsonl"


@click.group()
def audit() -> None:
    """Inspect the hash-chained audit log of watchlist loads, matches and refusals."""


@audit.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--watchlist", metavar="WATCHLIST", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None,
              help=f"The watchlist FILE belongs to [default: FILE without {_SUFFIX}, if it exists].")
@click.option("--witness", metavar="WITNESS", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also check FILE against this witness copy [default: the one the watchlist names, if any].")
@key_file_option
@reports_errors
def verify_log(file: Path, watchlist: Path | None, witness: Path | None, key_file: Path | None) -> None:
    """Check every line of FILE, the chain between them, and that FILE is all its watchlist sealed: not
    deleted, cut short, swapped for another log or an older copy, nor the watchlist an older copy. A log
    with no watchlist (a subject access request's) is checked against its head file.

    Without a witness, someone with the key who restores older copies of the
    watchlist and its logs together is not detected; the witness holds the
    lines they removed.

    \b
    Exit codes: 0 intact, 2 bad usage, 4 the watchlist cannot be locked, 8 key problem
                (or not the key the log was written with), 9 a line was edited, forged
                or deleted, or log and watchlist disagree, or the witness holds a line
                the log lacks.
    """
    if watchlist is None and file.name.endswith(_SUFFIX):
        default = file.with_name(file.name[:-len(_SUFFIX)])
        watchlist = default if default.is_file() else None
    if witness is not None and watchlist is None:
        raise click.UsageError("--witness needs the watchlist FILE belongs to (--watchlist)")
    key = load_key(key_file)
    summary = verify(file, key, Binding(watchlist, key) if watchlist is not None else None, witness)
    text = f"{file}: {summary.lines} lines, chain intact, head {summary.head}"
    if summary.bound:
        text += f"; all that {watchlist} sealed"
    if summary.pending:
        text += (f" but line {summary.lines + 1}, which a stopped run sealed and did not write "
                 "(the next run writes it)")
    if summary.witnessed is not None:
        text += f"; the witness holds {summary.witnessed} of its lines, each as in the log"
    click.echo(text)
