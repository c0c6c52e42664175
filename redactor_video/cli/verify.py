"""`redactor verify`: an independent second look for faces left clear in a redacted video."""

from __future__ import annotations

import json
from pathlib import Path

import click
from tqdm import tqdm

from redactor_video.cli import reports_errors
from redactor_video.cli.models import models_dir_option
from redactor_video.cli.options import finite
from redactor_video.settings import knobs
from redactor_video.errors import VerificationFailed
from redactor_video.files.verify import verifier, verify as run_verify


@click.command()
@click.argument("original", type=click.Path(path_type=Path))
@click.argument("redacted", type=click.Path(path_type=Path))
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the findings (frames and boxes, no pixels) as JSON.")
@click.option("--threshold", type=finite(knobs()["threshold"].low, knobs()["threshold"].high), default=0.5, show_default=True,
              help="Confidence the second detector needs.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@models_dir_option
@reports_errors
def verify(original: Path, redacted: Path, json_path: Path | None, threshold: float, quiet: bool,
           models_dir: str | None) -> None:
    """Check REDACTED against ORIGINAL for faces still clear.

    A second detector, independent of the one that drove the redaction
    (BlazeFace on 256 px tiles), runs on every redacted frame; each face it finds
    is compared with the original at the same place, and reported if its fine
    detail survived. Exit code 0: nothing found; 10: clear faces found.
    """
    with verifier(threshold, models_dir) as detector:
        with tqdm(desc=redacted.name, unit="frame", disable=True if quiet else None, leave=False) as bar:
            report = run_verify(original, redacted, detector, on_progress=bar.update)
    summary = report.to_dict()
    if json_path is not None:
        json_path.write_text(json.dumps(summary, indent=1))
    click.echo(f"{redacted}: {report.frames} frames checked, {len(report.residuals)} clear face(s) in "
               f"{len(report.residual_frames)} frame(s), longest run {report.longest_run}, "
               f"residual risk {summary['residual_risk']:.2%} of frames")
    for r in report.residuals[:50]:
        click.echo(f"  frame {r.frame}: box {list(r.box)} detail kept {r.detail:.0%}")
    if report.residuals:
        raise VerificationFailed(f"{len(report.residual_frames)} frame(s) still show a face")
