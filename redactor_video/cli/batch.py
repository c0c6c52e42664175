"""`redactor batch`: redact a whole archive folder into a mirrored output folder, resumably and in parallel."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from tqdm import tqdm

from redactor_video.batch import DEFAULT_CHUNK_SECONDS, ENGINES, BatchOptions, BatchSummary, run_batch
from redactor_video.batch.manifest import MANIFEST_NAME
from redactor_video.cli import EXIT_INTERRUPTED, EXIT_TERMINATED, CLIError, reports_errors
from redactor_video.cli.options import finite, settings_from_options
from redactor_video.cli.redact import redact
from redactor_video.interrupts import Terminated
from redactor_video.errors import ProcessingError

_SHARED = ("mode", "shape", "detector", "threshold", "sweep_rate", "tile", "centerface_scale", "thorough", "mask_scale",
           "hold_seconds", "lookahead_seconds", "codec", "crf", "preset", "drop_audio", "overwrite", "models_dir")


class _Bar:
    """One progress bar over every frame of the batch, with ETA; failures are printed above it as they happen."""

    def __init__(self, quiet: bool) -> None:
        self._quiet = quiet
        self._bar: tqdm | None = None
        self._files = self._finished = 0

    def planned(self, files: int, frames: int) -> None:
        self._files = files
        self._bar = tqdm(total=frames or None, unit="frame", desc=f"0/{files} files", dynamic_ncols=True,
                         disable=True if self._quiet else None)

    def expect(self, frames: int) -> None:
        if self._bar is not None and self._bar.total is not None:
            self._bar.total += frames
            self._bar.refresh()

    def advance(self, frames: int) -> None:
        if self._bar is not None:
            self._bar.update(frames)

    def finished(self, rel: str, reason: str | None) -> None:
        self._finished += 1
        if self._bar is not None:
            self._bar.set_description(f"{self._finished}/{self._files} files")
        if reason is not None:
            tqdm.write(f"{rel}: failed: {reason}", file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _summary(s: BatchSummary) -> str:
    lines = [f"batch {s.run_id}: {s.found} files found, {s.done} redacted, {s.skipped} already done, "
             f"{len(s.failed)} failed"
             + (f", {len(s.failed_before)} failed earlier (--retry-failed)" if s.failed_before else "")]
    if s.done:
        lines.append(f"  {s.frames} frames in {s.seconds:.1f} s, {s.startup_seconds:.1f} s of it starting workers: "
                     f"{s.files_per_second:.2f} files/s, {s.frames_per_second:.1f} frames/s")
    if s.requeued or s.retries:
        lines.append(f"  {s.requeued} files re-queued from an interrupted run, "
                     f"{s.retries} tasks retried after a worker died")
    return "\n".join(lines)


@click.command()
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(file_okay=False, path_type=Path))
@click.option("-j", "--workers", type=finite(1, 256, integer=True), default=1, show_default=True,
              help="Worker processes (local) or actors (ray), each with its own loaded models.")
@click.option("--resume", is_flag=True,
              help="Continue the batch whose manifest is in DST: finished files with unchanged input and settings "
                   "are skipped, interrupted ones redone.")
@click.option("--retry-failed", is_flag=True, help="With --resume: try files that failed before again.")
@click.option("--include", multiple=True, metavar="GLOB",
              help="Only files whose path under SRC (or name) matches; repeatable. Default: every video and image.")
@click.option("--exclude", multiple=True, metavar="GLOB",
              help="Skip files whose path under SRC (or name) matches; repeatable.")
@click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
              help="local: processes on this machine; ray: a Ray actor pool (needs redactor[cluster]).")
@click.option("--address", default=None, metavar="ADDR",
              help="Ray cluster to join (ray://head:10001); nodes must see SRC and DST at the same paths. "
                   "Default: a Ray instance on this machine.")
@click.option("--chunk-seconds", type=finite(0, 86400, unit="s"), default=DEFAULT_CHUNK_SECONDS, show_default=True,
              help="Files at least twice this long are split at keyframes into chunks for several workers, "
                   "then joined frame-exact (0: never split).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary (failures are still listed).")
@reports_errors
def batch(src: Path, dst: Path, workers: int, resume: bool, retry_failed: bool, include: tuple[str, ...],
          exclude: tuple[str, ...], engine: str, address: str | None, chunk_seconds: float, quiet: bool,
          **shared: object) -> None:
    """Redact every video and image under SRC into the same relative path under DST.

    DST/.redactor-batch.sqlite records every file (status, failure reason, input
    and output SHA-256, settings hash, frames, durations). Outputs appear only
    when complete; a corrupt file fails alone and the batch goes on. After a
    crash or Ctrl-C, run the same command with --resume: nothing finished is
    redone and nothing is lost.

    \b
    Exit codes: 0 every file done.
      Some files not done (listed; files left failed by an earlier run count
      until --retry-failed or a changed input has them tried again): their
      exit code if they share one (1 internal error, 3 input, 4 output,
      5 model, 6 processing), else 6.
      The batch stopped: 2 bad usage, 3 SRC unreadable, 4 DST unusable (holds
      an earlier batch and no --resume, another batch runs on it, manifest
      unreadable), 5 model problem, 6 workers cannot start or keep dying,
      1 internal error (e.g. the manifest cannot be written), 130 interrupted,
      143 terminated; finished files are kept.
    """
    if retry_failed and not resume:
        raise click.UsageError("--retry-failed needs --resume")
    if address is not None and engine != "ray":
        raise click.UsageError("--address needs --engine ray")
    settings = settings_from_options(shared)
    options = BatchOptions(workers=workers, engine=engine, address=address, resume=resume,
                           retry_failed=retry_failed, overwrite=bool(shared["overwrite"]), include=include,
                           exclude=exclude, chunk_seconds=chunk_seconds, models_dir=shared["models_dir"])
    bar = _Bar(quiet)
    try:
        summary = run_batch(src, dst, settings, options, observer=bar)
    except KeyboardInterrupt:
        raise CLIError("interrupted; finished files are kept, run again with --resume to do the rest",
                       EXIT_INTERRUPTED) from None
    except Terminated:
        raise CLIError("terminated; finished files are kept, run again with --resume to do the rest",
                       EXIT_TERMINATED) from None
    finally:
        bar.close()
    for rel, reason, _ in summary.failed_before:
        click.echo(f"{rel}: failed earlier: {reason}", err=True)
    if not quiet:
        click.echo(_summary(summary), err=True)
    failed, earlier = len(summary.failed), len(summary.failed_before)
    if failed or earlier:
        codes = {code for _, _, code in summary.failed + summary.failed_before}
        if failed:
            count = f"{failed} of {summary.found} files failed" + (
                f" and {earlier} more still failed from an earlier run" if earlier else "")
        else:
            count = f"{earlier} of {summary.found} files still failed from an earlier run"
        raise CLIError(f"{count} (see {dst / MANIFEST_NAME}); fix them and run again with --resume --retry-failed",
                       codes.pop() if len(codes) == 1 else ProcessingError.exit_code)


# The redaction options are `redactor redact`'s own, so names, defaults and help stay the same in both commands.
batch.params.extend(p for p in redact.params if p.name in _SHARED)
