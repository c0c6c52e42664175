"""`redactor redact`: blur every face in videos and images."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import click
from tqdm import tqdm

from redactor.cli import reports_errors
from redactor.cli.models import models_dir_option
from redactor.detect import DETECTOR_CHOICES
from redactor.jobs import plan_outputs, redact_file
from redactor.mask.kernels import MODES, SHAPES
from redactor.media.sink import EncodeSettings
from redactor.pipeline import LOOKAHEAD_MIB, LOOKAHEAD_MIN_SECONDS, LOOKAHEAD_SECONDS, Pipeline, RedactSettings
from redactor.verify import verifier as build_verifier

THOROUGH_SCALE = 1.5

_DEFAULTS = RedactSettings()


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Output file (one input) or folder (several inputs or a folder).")
@click.option("--mode", type=click.Choice(list(MODES)), default=_DEFAULTS.mode, show_default=True,
              help="How faces are hidden.")
@click.option("--shape", type=click.Choice(list(SHAPES)), default=_DEFAULTS.shape, show_default=True,
              help="Mask shape around each face.")
@click.option("--detector", type=click.Choice(DETECTOR_CHOICES), default=_DEFAULTS.detector, show_default=True,
              help="Small-face sweep detector (BlazeFace also runs on every whole frame): centerface, blazeface (tiled), ensemble (both).")
@click.option("--threshold", type=click.FloatRange(0.05, 0.95), default=_DEFAULTS.threshold, show_default=True,
              help="Detection confidence needed to start a track (half of it extends one; a faint find "
                   "under 48 px that two sweeps repeat, or that extends a steady walking line through two "
                   "earlier ones, starts one too).")
@click.option("--every", type=click.IntRange(1, 30), default=_DEFAULTS.every, show_default=True,
              help="Run the small-face sweep on every N-th frame; tracking and look-ahead cover the frames between.")
@click.option("--tile", type=click.IntRange(0, 4096), default=_DEFAULTS.tile, show_default=True,
              help="BlazeFace tile size in px for small faces (0: whole frame only).")
@click.option("--centerface-scale", type=click.FloatRange(0.25, 4.0), default=None,
              help=f"CenterFace input scale [default: {_DEFAULTS.centerface_scale}; {THOROUGH_SCALE} with --thorough]; "
                   "higher finds smaller faces, cost grows with its square.")
@click.option("--thorough", is_flag=True,
              help=f"For distant cameras: the small-face sweep at {THOROUGH_SCALE}x resolution finds faces down to "
                   "~16 px wide, at about half the speed.")
@click.option("--verify", is_flag=True,
              help="Before finishing, check the output with an independent detector and mask any face it still "
                   "finds clear (fail closed: if any remain, nothing is written).")
@click.option("--mask-scale", type=click.FloatRange(1.0, 4.0), default=_DEFAULTS.mask_scale, show_default=True,
              help="Mask size relative to the detected face box.")
@click.option("--hold", "hold_seconds", type=click.FloatRange(0.0, 10.0), default=_DEFAULTS.hold_seconds,
              show_default=True, help="Seconds a face stays masked after it was last detected (twice that for faces "
                                      "under 48 px found three times, which only the small-face sweep sees).")
@click.option("--lookahead", "lookahead_seconds", type=click.FloatRange(0.0, 5.0), default=None,
              show_default=f"{LOOKAHEAD_SECONDS:g} s, or what fits in {LOOKAHEAD_MIB:g} MiB of frames but at least "
                           f"{LOOKAHEAD_MIN_SECONDS:g} s: 2.9 s at 720p, 1.3 s at 1080p",
              help="Seconds of frames held back so a newly found face is masked before it was found too "
                   "(a value given here is held in full).")
@click.option("--codec", default=EncodeSettings.codec, show_default=True, help="Video encoder (FFmpeg name).")
@click.option("--crf", type=click.IntRange(0, 63), default=EncodeSettings.crf, show_default=True,
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
           every: int, tile: int, centerface_scale: float | None, thorough: bool, verify: bool, mask_scale: float, hold_seconds: float,
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
    encode = EncodeSettings(codec=codec, crf=crf, preset=preset, keep_audio=not drop_audio)
    if centerface_scale is None:
        centerface_scale = THOROUGH_SCALE if thorough else _DEFAULTS.centerface_scale
    settings = RedactSettings(detector=detector, threshold=threshold, every=every, tile=tile,
                              centerface_scale=centerface_scale, mode=mode, shape=shape, mask_scale=mask_scale,
                              hold_seconds=hold_seconds, lookahead_seconds=lookahead_seconds, encode=encode)
    if watchlist is None and (reveal or alert_only or audit_log):
        raise click.UsageError("--reveal, --alert-only and --audit-log need --watchlist")
    if watchlist is not None and bool(reveal) == alert_only:
        raise click.UsageError("with --watchlist, choose what a match does: --reveal matches or --alert-only")
    pairs = plan_outputs(list(inputs), output)
    if report is not None and len(pairs) > 1:
        raise click.BadParameter("--report takes one input; use a folder of reports with batch jobs", param_hint="--report")
    recogniser = None
    if watchlist is not None:
        from redactor.recognise import build_recogniser

        recogniser = build_recogniser(watchlist, key_file, camera, reveal=bool(reveal), audit_log=audit_log,
                                      models_dir=models_dir)
    with Pipeline(settings, models_dir, recogniser=recogniser) as pipeline, ExitStack() as stack:
        second = stack.enter_context(build_verifier(models_dir=models_dir)) if verify else None
        for src, dst in pairs:
            bar = tqdm(desc=src.name, unit="frame", disable=True if quiet else None, leave=False, dynamic_ncols=True)

            def restart(total: int | None) -> None:
                bar.reset(total=total)

            try:
                stats = redact_file(src, dst, pipeline, encode, overwrite=overwrite, report=report,
                                    on_progress=bar.update, on_start=restart, verifier=second)
            finally:
                bar.close()
            if not quiet:
                extra = f", {stats.whole_frame} frames masked whole (detector failures)" if stats.whole_frame else ""
                if stats.verification is not None:
                    extra += f", verified ({stats.verification['residual_faces_found']} clear faces found and masked)"
                click.echo(f"{dst}: {stats.frames} frames, {stats.tracks} face tracks{extra}", err=True)
