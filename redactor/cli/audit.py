"""`redactor audit`: check that an audit log is complete and unaltered."""

from __future__ import annotations

from pathlib import Path

import click

from redactor.audit import verify
from redactor.cli import reports_errors
from redactor.cli.watchlist import key_file_option
from redactor.recognise.keys import load_key


@click.group()
def audit() -> None:
    """Inspect the hash-chained audit log of watchlist loads, matches and refusals."""


@audit.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@key_file_option
@reports_errors
def verify_log(file: Path, key_file: Path | None) -> None:
    """Check every line of FILE, the chain between them and its head file.

    \b
    Exit codes: 0 intact, 8 key problem, 9 a line was edited, forged or deleted.
    """
    summary = verify(file, load_key(key_file))
    click.echo(f"{file}: {summary.lines} lines, chain intact, head {summary.head}")
