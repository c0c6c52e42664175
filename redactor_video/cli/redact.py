"""`redactor redact`: blur every face in videos and images."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import click
from tqdm import tqdm

from redactor_video.cli import reports_errors
from redactor_video.cli.models import models_dir_option
from redactor_video.files.jobs import plan_outputs, redact_file
from redactor_video.media.sink import EncodeSettings
from redactor_video.cli.options import finite, setting_option, setting_options, settings_from_options
from redactor_video.pipeline import Pipeline
from redactor_video.settings import THOROUGH_SCALE
from redactor_video.files.verify import verifier as build_verifier

@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Output file (one input) or folder (several inputs or a folder).")
@setting_options("mode", "shape", "detector", "threshold", "sweep_rate", "tile")
@setting_option("centerface_scale", default=None, note=f"--thorough sets {THOROUGH_SCALE}.")
@click.option("--thorough", is_flag=True,
              help=f"For distant cameras: the small-face sweep at {THOROUGH_SCALE}x resolution finds faces down to "
                   "~16 px wide, at about half the speed.")
@click.option("--verify", is_flag=True,
              help="Before finishing, check the output with an independent detector and mask any face it still "
                   "finds clear (fail closed: if any remain, nothing is written).")
@setting_options("mask_scale", "hold_seconds", "lookahead_seconds")
@click.option("--codec", default=EncodeSettings.codec, show_default=True, help="Video encoder (FFmpeg name).")
@click.option("--crf", type=finite(0, 63, integer=True), default=EncodeSettings.crf, show_default=True,
              help="Quality for CRF encoders (lower is better).")
@click.option("--preset", default=EncodeSettings.preset, show_default=True, help="Encoder speed preset.")
@click.option("--drop-audio", is_flag=True, help="Do not copy audio and subtitle streams.")
@click.option("--watchlist", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Encrypted watchlist: only faces confirmed as one of its lawful entries may stay clear.")
@click.option("--reveal", type=click.Choice(["matches"]), default=None,
              help="With --watchlist: leave confirmed matches clear (everyone else stays blurred).")
@click.option("--alert-only", is_flag=True, help="With --watchlist: keep matches blurred too, only log an alert.")
@click.option("--camera", default=None, help="Camera/source id: watchlist entries limited to other cameras do not apply.")
@click.option("--audit-log", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Hash-chained audit log (default: WATCHLIST.audit.jsonl).")
@click.option("--key-file", type=click.Path(path_type=Path, dir_okay=False), envvar="REDACTOR_KEY_FILE", default=None,
              help="Watchlist key file (or $REDACTOR_KEY_FILE); never a key on the command line.")
@click.option("--report", type=click.Path(path_type=Path), default=None,
              help="Write a JSON sidecar: per-frame tracks and boxes, settings, stage timings (never pixels).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
@models_dir_option
@reports_errors
def redact(inputs: tuple[Path, ...], output: Path, mode: str, shape: str, detector: str, threshold: float,
           sweep_rate: float, tile: int, centerface_scale: float | None, thorough: bool, verify: bool, mask_scale: float, hold_seconds: float,
           lookahead_seconds: float | None, codec: str, crf: int, preset: str, drop_audio: bool,
           watchlist: Path | None, reveal: str | None, alert_only: bool, camera: str | None, audit_log: Path | None,
           key_file: Path | None, report: Path | None,
           overwrite: bool, quiet: bool, models_dir: str | None) -> None:
    """Blur every face in INPUTS (videos, images or folders of them) and write the result to OUTPUT.

    Output is written to a temporary file and renamed only when complete: an
    error or Ctrl-C leaves nothing behind. If the detector fails on a frame,
    that whole frame is blurred. Audio and subtitles are copied unchanged.

    \b
    Exit codes: 0 done, 2 bad usage, 3 bad input, 4 output problem,
                5 model problem, 6 processing failed, 7 watchlist entry refused, 8 key problem,
                9 integrity check failed, 10 verification failed, 130 interrupted (Ctrl-C),
                143 terminated (SIGTERM).
    """
    settings = settings_from_options(locals())
    if watchlist is None and (reveal or alert_only or audit_log):
        raise click.UsageError("--reveal, --alert-only and --audit-log need --watchlist")
    if watchlist is not None and bool(reveal) == alert_only:
        raise click.UsageError("with --watchlist, choose what a match does: --reveal matches or --alert-only")
    pairs = plan_outputs(list(inputs), output)
    if report is not None and len(pairs) > 1:
        raise click.BadParameter("--report takes one input; use a folder of reports with batch jobs", param_hint="--report")
    recogniser = None
    if watchlist is not None:
        from redactor_video.recognise import build_recogniser

        recogniser = build_recogniser(watchlist, key_file, camera, reveal=bool(reveal), audit_log=audit_log,
                                      models_dir=models_dir)
        for refusal in recogniser.refusals:  # the operator sees what was refused, even with -q
            click.echo(f"warning: watchlist entry {refusal.entry_id} refused: {refusal.reason}", err=True)
    with Pipeline(settings, models_dir, recogniser=recogniser) as pipeline, ExitStack() as stack:
        second = stack.enter_context(build_verifier(models_dir=models_dir)) if verify else None
        for src, dst in pairs:
            bar = tqdm(desc=src.name, unit="frame", disable=True if quiet else None, leave=False, dynamic_ncols=True)

            def restart(total: int | None) -> None:
                bar.reset(total=total)

            try:
                stats = redact_file(src, dst, pipeline, settings.encode, overwrite=overwrite, report=report,
                                    on_progress=bar.update, on_start=restart, verifier=second)
            finally:
                bar.close()
            if not quiet:
                extra = f", {stats.whole_frame} frames masked whole (detector failures)" if stats.whole_frame else ""
                if stats.verification is not None:
                    extra += f", verified ({stats.verification['residual_faces_found']} clear faces found and masked)"
                click.echo(f"{dst}: {stats.frames} frames, {stats.tracks} face tracks{extra}", err=True)
