"""`redactor keygen`: create the random key that seals a watchlist and authenticates its audit log."""

from __future__ import annotations

from pathlib import Path

import click

from redactor_video.cli import reports_errors
from redactor_video.recognise.keys import ENV_KEY_FILE, generate_key


@click.command()
@click.argument("keyfile", type=click.Path(dir_okay=False, path_type=Path))
@reports_errors
def keygen(keyfile: Path) -> None:
    """Write a new random key to KEYFILE (mode 0600; an existing file is never replaced).

    Commands that need it read it from --key-file or $REDACTOR_KEY_FILE, never
    from the command line. Losing the key makes its watchlist unreadable.
    """
    generate_key(keyfile)
    click.echo(f"{keyfile}: new key written (mode 600); use it with --key-file or {ENV_KEY_FILE}", err=True)
