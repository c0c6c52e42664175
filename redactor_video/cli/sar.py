"""`redactor sar`: answer a subject access request from a CCTV archive."""

from __future__ import annotations

import secrets
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import click

from redactor_video.cli import reports_errors
from redactor_video.cli.models import models_dir_option
from redactor_video.cli.options import finite
from redactor_video.cli.watchlist import IsoDate
from redactor_video.pipeline import RedactSettings
from redactor_video.recognise.keys import ENV_KEY_FILE, Key, load_key
from redactor_video.recognise.matcher import MatchPolicy
from redactor_video.sar import SubjectRequest, answer, default_audit_path
from redactor_video.sar.package import PackageSettings
from redactor_video.sar.search import ScanSettings

_SCAN = ScanSettings()


class Moment(click.ParamType):
    """A point in time: YYYY-MM-DD or an ISO 8601 date and time; without an offset it is local time.

    A bare date as the end of a window means the end of that day.
    """

    name = "DATE[THH:MM[:SS][+HH:MM]]"

    def __init__(self, end: bool = False) -> None:
        self.end = end

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            if len(text) == 10:
                day = date.fromisoformat(text) + timedelta(days=1 if self.end else 0)
                return datetime.combine(day, time()).astimezone()
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 date and time", param, ctx)
        return moment if moment.tzinfo else moment.astimezone()


@click.command()
@click.argument("archive", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--request-id", required=True,
              help="Your reference for the request (shown in the package and the audit log).")
@click.option("--received", required=True, type=IsoDate(),
              help="Day the request was received; the answer is due one month later.")
@click.option("--subject", "photos", required=True, multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Photo of the requester showing only their face, at least 80 px wide (repeat for more photos).")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to create for the disclosure package (index.html, manifest.json, clips, stills).")
@click.option("--from", "start", type=Moment(), default=None, help="Search only footage recorded from this time.")
@click.option("--to", "end", type=Moment(end=True), default=None,
              help="Search only footage recorded before this time (a bare date: to the end of that day).")
@click.option("--camera", "cameras", multiple=True, help="Search only this camera (repeat for more).")
@click.option("--blur-subject-context", is_flag=True,
              help="Also blur everything but the requester's head region (maximum minimisation).")
@click.option("--padding", type=finite(0.0, 60.0, unit="s"), default=_SCAN.padding_seconds, show_default=True,
              help="Seconds of footage kept before and after each sighting.")
@click.option("--art15-template", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Your edited copy of redactor_video/sar/template/art15.html (the Art. 15 information page text).")
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), envvar=ENV_KEY_FILE, default=None,
              help=f"Site key (or ${ENV_KEY_FILE}) authenticating the audit log; without one a one-off key is used "
                   "and the log cannot be verified later.")
@click.option("--audit-log", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Audit log to append to [default: OUTPUT.audit.jsonl, beside the package].")
@click.option("--overwrite", is_flag=True, help="Replace an existing package folder.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@models_dir_option
@reports_errors
def sar(archive: tuple[Path, ...], request_id: str, received: str, photos: tuple[Path, ...], output: Path,
        start: datetime | None, end: datetime | None, cameras: tuple[str, ...], blur_subject_context: bool,
        padding: float, art15_template: Path | None, key_file: Path | None, audit_log: Path | None,
        overwrite: bool, quiet: bool, models_dir: str | None) -> None:
    """Find the person in the --subject photos in ARCHIVE (files or folders) and write a disclosure package
    to OUTPUT in which only they are clear.

    The photos become a temporary watchlist entry (basis consent, category
    sar-requester, reference = the request id) held only in memory and
    destroyed at the end; the audit log records both. Recording times come
    from the container's creation_time, else from file names like
    CAM1_20261120_101500.mp4 (camera CAM1, local time); the camera is that
    prefix, else the folder name.

    \b
    Exit codes: 0 done (also when nothing was found), 2 bad usage, 3 bad input,
                4 output problem, 5 model problem, 6 processing failed,
                7 photo refused, 8 key problem, 9 audit log fails its check.
    """
    request = SubjectRequest(request_id, date.fromisoformat(received), start, end, cameras)
    if key_file is not None:
        key = load_key(key_file)
    else:
        key = Key(secrets.token_bytes(32), "one-off key for this run")
    audit_path = audit_log or default_audit_path(output)
    if key_file is None and audit_path.exists():
        raise click.UsageError(f"{audit_path} exists and was sealed with another key: pass --key-file, "
                               "or name a new --audit-log")
    settings = PackageSettings(ScanSettings(padding_seconds=padding), RedactSettings(), MatchPolicy(),
                               blur_subject_context)

    def progress(message: str) -> None:
        if not quiet:
            click.echo(message, err=True)

    outcome = answer(request, photos, archive, output, key, audit_path, settings, art15_template, overwrite,
                     models_dir, progress)
    found = f"{len(outcome.clips)} clip(s)" if outcome.clips else "no footage of the requester found"
    click.echo(f"{outcome.package}: {found}; answer due {request.due.isoformat()}; audit log {audit_path}", err=True)
    if key_file is None:
        click.echo(f"note: {audit_path} is sealed with a one-off key; pass --key-file to make it verifiable "
                   "with `redactor audit verify`", err=True)
