"""`redactor watchlist`: enrol, list, show, remove and verify watchlist entries, and name its audit witness.

Every change is written to every audit log of the watchlist (default:
WATCHLIST.audit.jsonl) in the step that seals it, and so is every refused
enrolment.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import click

from redactor_video.audit import WatchlistLog, record_unbound
from redactor_video.cli import reports_errors
from redactor_video.cli.models import models_dir_option
from redactor_video.errors import EnrolmentRefused, EntryRefused, OutputError, WatchlistError
from redactor_video.recognise import default_audit_path
from redactor_video.recognise.keys import ENV_KEY_FILE, Key, load_key
from redactor_video.recognise.watchlist import (BASES, CATEGORIES, Binding, Sealed, check_terms, enrol_photo, new_entry,
                                          read_entries, validate)

key_file_option = click.option(
    "--key-file", type=click.Path(dir_okay=False, path_type=Path), envvar=ENV_KEY_FILE, default=None,
    help=f"Key file (from `redactor keygen`); default ${ENV_KEY_FILE}. Never a key on the command line.")
audit_log_option = click.option(
    "--audit-log", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Audit log to append to (default: WATCHLIST.audit.jsonl).")


class IsoDate(click.ParamType):
    """A calendar date written YYYY-MM-DD, kept as that text."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return date.fromisoformat(str(value)).isoformat()
        except ValueError:
            self.fail(f"{value!r} is not a date in YYYY-MM-DD form", param, ctx)


@click.group()
def watchlist() -> None:
    """Manage a watchlist: the only people recognition may leave unblurred.

    Every entry needs a lawful basis (consent with its consent record, or a
    warrant with its reference and the authorising person), a category that
    fits the basis, and an expiry date. The file is encrypted and tamper-evident.
    """


@watchlist.command("add")
@click.argument("watchlist_file", metavar="WATCHLIST", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--label", required=True, help="Who this is (as your records name them).")
@click.option("--photo", "photos", required=True, multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Enrolment photo showing only this person's face (repeat for more photos).")
@click.option("--basis", required=True, type=click.Choice(BASES), help="Lawful basis for recognising them.")
@click.option("--reference", required=True, help="Consent record reference, or warrant/authorisation reference.")
@click.option("--authorised-by", required=True, help="Who authorised this entry.")
@click.option("--category", required=True, type=click.Choice(list(CATEGORIES)),
              help="warrant: wanted, suspect, missing, vulnerable, risk-of-harm; consent: consented, sar-requester.")
@click.option("--expires", required=True, type=IsoDate(), help="Last day the entry may be used (YYYY-MM-DD).")
@click.option("--camera", "cameras", multiple=True, help="Camera id the entry applies to (repeat; default: all).")
@key_file_option
@audit_log_option
@models_dir_option
@reports_errors
def add(watchlist_file: Path, label: str, photos: tuple[Path, ...], basis: str, reference: str, authorised_by: str,
        category: str, expires: str, cameras: tuple[str, ...], key_file: Path | None, audit_log: Path | None,
        models_dir: str | None) -> None:
    """Enrol a person into WATCHLIST (created if missing); prints the new entry id.

    Each photo must show exactly one face, at least 80 px wide. Only the face
    templates are stored, never the photos.

    \b
    Exit codes: 0 done, 2 bad usage, 5 model problem, 7 entry or photo refused,
                8 key problem, 9 watchlist or audit log fails its integrity check.
    """
    from redactor_video.detect import create_detector
    from redactor_video.recognise.embedder import Embedder

    key = load_key(key_file)
    binding = Binding(watchlist_file, key, new=True)
    binding.read()  # a wrong key or an edited watchlist is refused before a photo is looked at
    log_path = audit_log or default_audit_path(watchlist_file)
    try:
        check_terms("(new)", basis, category, expires)
        embedder = Embedder(models_dir)
        with create_detector("centerface", threshold=0.5, models_dir=models_dir) as detector:
            templates = [enrol_photo(p, detector, embedder) for p in photos]
        entry = new_entry(label, templates, basis, reference, authorised_by, category, expires, cameras)
    except (EnrolmentRefused, EntryRefused) as exc:
        if watchlist_file.exists():
            with WatchlistLog(log_path, key, binding) as log:
                log.record("enrolment-refused", watchlist=str(watchlist_file), reason=str(exc))
        else:  # recording it must not create the watchlist
            record_unbound(log_path, key, "enrolment-refused", watchlist=str(watchlist_file), reason=str(exc))
        raise
    with WatchlistLog(log_path, key, binding) as log:
        log.change(lambda state: state.entries.append(entry), "entry-added", watchlist=str(watchlist_file),
                   entry_id=entry["id"], basis=basis, reference=entry["reference"], category=category,
                   authorised_by=entry["authorised_by"], expires=expires, cameras=entry["cameras"],
                   templates=len(templates))
    click.echo(entry["id"])


def _status(raw: dict[str, Any], camera: str | None) -> str:
    try:
        entry = validate(raw)
    except EntryRefused as exc:
        return f"REFUSED: {exc.reason}"
    if camera is not None:
        reason = entry.applies_to(camera)
        if reason:
            return f"REFUSED: {reason}"
    return "ok"


def _field(raw: dict[str, Any], name: str) -> str:
    value = raw.get(name)
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return str(value) if value not in (None, "") else "-"


def _open(watchlist_file: Path, key_file: Path | None) -> tuple[Key, list[dict[str, Any]]]:
    key = load_key(key_file)
    return key, read_entries(watchlist_file, key)


@watchlist.command("list")
@click.argument("watchlist_file", metavar="WATCHLIST", type=click.Path(dir_okay=False, path_type=Path))
@key_file_option
@reports_errors
def list_entries(watchlist_file: Path, key_file: Path | None) -> None:
    """One line per entry: id, label, basis, category, expiry, cameras, and whether it is usable today."""
    _, entries = _open(watchlist_file, key_file)
    for raw in entries:
        click.echo("  ".join(_field(raw, k) for k in ("id", "label", "basis", "category", "expires", "cameras"))
                   + "  " + _status(raw, None))
    click.echo(f"{len(entries)} entries", err=True)


@watchlist.command("show")
@click.argument("watchlist_file", metavar="WATCHLIST", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("entry_id")
@key_file_option
@reports_errors
def show(watchlist_file: Path, entry_id: str, key_file: Path | None) -> None:
    """Every field of one entry (templates are counted, never printed)."""
    _, entries = _open(watchlist_file, key_file)
    raw = _find(entries, entry_id, watchlist_file)
    for name in ("id", "label", "basis", "reference", "authorised_by", "category", "expires", "cameras", "created"):
        click.echo(f"{name:14} {_field(raw, name)}")
    click.echo(f"{'templates':14} {len(raw.get('templates') or [])}")
    click.echo(f"{'status':14} {_status(raw, None)}")


@watchlist.command("remove")
@click.argument("watchlist_file", metavar="WATCHLIST", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("entry_id")
@key_file_option
@audit_log_option
@reports_errors
def remove(watchlist_file: Path, entry_id: str, key_file: Path | None, audit_log: Path | None) -> None:
    """Delete one entry and its templates from WATCHLIST."""
    key, entries = _open(watchlist_file, key_file)
    _find(entries, entry_id, watchlist_file)

    def drop(state: Sealed) -> None:
        state.entries.remove(_find(state.entries, entry_id, watchlist_file))  # as it is now, under the lock

    with WatchlistLog(audit_log or default_audit_path(watchlist_file), key, Binding(watchlist_file, key)) as log:
        log.change(drop, "entry-removed", watchlist=str(watchlist_file), entry_id=entry_id)
    click.echo(f"removed {entry_id}", err=True)


@watchlist.command("witness")
@click.argument("watchlist_file", metavar="WATCHLIST", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("witness", type=click.Path(dir_okay=False, path_type=Path))
@key_file_option
@audit_log_option
@reports_errors
def witness(watchlist_file: Path, witness: Path, key_file: Path | None, audit_log: Path | None) -> None:
    """Name WITNESS as the audit witness of WATCHLIST: from now on every line of its audit logs is also
    appended there, by every run. Put it out of reach of whoever could restore older copies of the
    watchlist and its logs together (another volume, another machine's share); `redactor audit verify`
    then checks each log against it and finds such a rollback.

    \b
    Exit codes: 0 done, 2 WITNESS is the watchlist or one of its logs, 4 WITNESS cannot be
                written, 8 key problem, 9 watchlist or audit log fails its integrity check.
    """
    key, _ = _open(watchlist_file, key_file)
    witness = witness.resolve()
    try:
        with open(witness, "ab"):
            pass
    except OSError as exc:
        raise OutputError(f"{witness}: cannot append to it ({exc.strerror})") from None

    def set_witness(state: Sealed) -> None:
        folder = watchlist_file.resolve().parent
        if witness in {watchlist_file.resolve(), *((folder / log).resolve() for log in state.logs)}:
            raise click.BadParameter(f"{witness} is the watchlist or one of its audit logs", param_hint="WITNESS")
        state.witness = str(witness)

    with WatchlistLog(audit_log or default_audit_path(watchlist_file), key, Binding(watchlist_file, key)) as log:
        log.change(set_witness, "witness-set", watchlist=str(watchlist_file), witness=str(witness))
    if witness.stat().st_dev == watchlist_file.resolve().stat().st_dev:
        click.echo(f"note: {witness} is on the same volume as {watchlist_file}; a witness guards against a "
                   "rollback only where whoever can restore the watchlist cannot reach it", err=True)
    click.echo(f"{watchlist_file}: audit witness {witness}", err=True)


@watchlist.command("verify")
@click.argument("watchlist_file", metavar="WATCHLIST", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--camera", default=None, help="Also check that each entry applies to this camera.")
@key_file_option
@reports_errors
def verify(watchlist_file: Path, camera: str | None, key_file: Path | None) -> None:
    """Check the file's integrity and that every entry is lawful and in date (and fits --camera).

    \b
    Exit codes: 0 all usable, 7 some entry would be refused, 8 key problem,
                9 the file fails its integrity check.
    """
    _, entries = _open(watchlist_file, key_file)
    refused = 0
    for raw in entries:
        status = _status(raw, camera)
        refused += status != "ok"
        click.echo(f"{_field(raw, 'id')}  {status}")
    if refused:
        raise WatchlistError(f"{watchlist_file}: {refused} of {len(entries)} entries would be refused")
    click.echo(f"{watchlist_file}: integrity ok, {len(entries)} entries usable", err=True)


def _find(entries: list[dict[str, Any]], entry_id: str, watchlist_file: Path) -> dict[str, Any]:
    for raw in entries:
        if raw.get("id") == entry_id:
            return raw
    raise WatchlistError(f"{watchlist_file}: no entry {entry_id}")

