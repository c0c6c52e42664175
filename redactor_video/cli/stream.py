"""`redactor stream` (one camera) and `redactor serve cameras.toml` (several): the inline filter."""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

import click

from redactor_video.cli import CLIError, reports_errors
from redactor_video.cli.models import models_dir_option
from redactor_video.cli.options import finite, setting_options
from redactor_video.errors import RedactorError
from redactor_video.stream.config import LIVE_SETTINGS, CameraConfig, live_settings, load_serve_config, parse_duration
from redactor_video.stream.metrics import StreamMetrics
from redactor_video.stream.service import Service, build_filter, build_pipeline, check_camera

_D = CameraConfig(name="d", input="-", output="-")
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, message and the event fields a log pipeline can index."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname.lower(), "message": record.getMessage()}
        out.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        return json.dumps(out, default=str)


def _setup_logging(fmt: str, quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("redactor")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False


@contextmanager
def _signals_stop(service: Service) -> Iterator[None]:
    """SIGTERM and Ctrl-C end the service cleanly (outputs closed, the open segment finished), exit code 0."""
    previous = {sig: signal.signal(sig, lambda *_: service.stop()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(cameras: list[CameraConfig], metrics_at: str | None, models_dir: str | None) -> None:
    metrics = StreamMetrics()
    log = logging.getLogger("redactor.stream")
    with ExitStack() as stack:
        filters = []
        for cam in cameras:
            pipeline = build_pipeline(cam, stack, models_dir)
            for refusal in getattr(pipeline.recogniser, "refusals", ()):  # no watchlist: none
                log.warning(f"watchlist entry {refusal.entry_id} refused: {refusal.reason}",
                            extra={"event": "entry-refused", "camera": cam.name, "entry_id": refusal.entry_id,
                                   "reason": refusal.reason})
            filters.append(build_filter(cam, metrics, pipeline))
        service = Service(filters, metrics, metrics_at)
        log.info("filter running",
                 extra={"event": "started", "cameras": [c.name for c in cameras], "metrics": metrics_at})
        with _signals_stop(service):
            service.run()


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _log_options(func):  # type: ignore[no-untyped-def]
    func = click.option("--log-format", type=click.Choice(["json", "text"]), default="json", show_default=True,
                        help="Structured JSON lines (for log shippers) or plain text.")(func)
    return click.option("-q", "--quiet", is_flag=True, help="Log warnings and errors only.")(func)


@click.command()
@click.option("--input", "input_url", required=True,
              help="Live input FFmpeg can open: rtsp://, http://, srt://, udp://, or a device such as /dev/video0 "
                   "(with --input-format v4l2). Credentials in the URL are never logged.")
@click.option("--output", "output_url", default=None,
              help="Publish the redacted stream: rtsp:// (ANNOUNCE/RECORD to a relay or VMS ingest), srt:// or udp:// "
                   "(MPEG-TS).")
@click.option("--record", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Also (or instead) write rolling redacted segments into this folder.")
@click.option("--segment", default="60s", show_default=True, callback=_duration,
              help="Segment length for --record (e.g. 60s, 5m, 1h).")
@click.option("--latency-ms", type=finite(100, 60000, integer=True, unit="ms"), default=_D.latency_ms, show_default=True,
              help="Most time from input frame to output frame; it also bounds the backward fill. Frames that "
                   "cannot make it are dropped, never sent late or unredacted. 1080p needs about 1500.")
@click.option("--transport", type=click.Choice(["tcp", "udp"]), default=_D.transport, show_default=True,
              help="RTSP transport for input and output.")
@click.option("--input-format", default=None, help="FFmpeg input format when it cannot be guessed (e.g. v4l2).")
@click.option("--secrets", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="TOML file with user = \"...\" and password = \"...\" for the input (must be chmod 600).")
@click.option("--camera", default="camera", show_default=True,
              help="Camera id: metric label, segment file prefix, watchlist camera scope.")
@click.option("--metrics", "metrics_at", default="127.0.0.1:9400", show_default=True,
              help="host:port for /metrics (Prometheus) and /healthz; 'off' to disable.")
@setting_options(*LIVE_SETTINGS)
@click.option("--preset", default=_D.preset, show_default=True, help="x264 preset of the output.")
@click.option("--crf", type=finite(0, 51, integer=True), default=_D.crf, show_default=True, help="x264 quality of the output.")
@click.option("--watchlist", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Encrypted watchlist: only faces confirmed as one of its lawful entries may stay clear.")
@click.option("--reveal", type=click.Choice(["matches"]), default=None,
              help="With --watchlist: leave confirmed matches clear.")
@click.option("--alert-only", is_flag=True, help="With --watchlist: keep matches blurred too, only log an alert.")
@click.option("--key-file", type=click.Path(path_type=Path, dir_okay=False), envvar="REDACTOR_KEY_FILE", default=None,
              help="Watchlist key file (or $REDACTOR_KEY_FILE).")
@click.option("--audit-log", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Hash-chained audit log (default: WATCHLIST.audit.jsonl).")
@_log_options
@models_dir_option
@reports_errors
def stream(input_url: str, output_url: str | None, record: Path | None, segment: float, latency_ms: int,
           transport: str, input_format: str | None, secrets: Path | None, camera: str, metrics_at: str,
           preset: str, crf: int, watchlist: Path | None, reveal: str | None, alert_only: bool,
           key_file: Path | None, audit_log: Path | None, log_format: str, quiet: bool, models_dir: str | None,
           **redaction: object) -> None:
    """Inline filter for one camera: live input in, every face blurred, redacted stream and/or segments out.

    Runs until SIGTERM or Ctrl-C, then closes its outputs cleanly and exits 0.
    Input loss: reconnects with backoff while black frames keep the output alive.
    Output loss: reconnects; nothing is buffered meanwhile. If detection fails or
    stalls past the latency budget, frames go out fully blurred, never clear.

    \b
    Example:
      redactor stream --input rtsp://cam1.local/stream1 --output rtsp://vms.local:8554/cam1 \\
                      --secrets cam1.toml --camera cam1 --latency-ms 500
    """
    _setup_logging(log_format, quiet)
    try:
        cam = CameraConfig(name=camera, input=input_url, output=output_url, record=record, segment=segment,
                           transport=transport, input_format=input_format, secrets=secrets, latency_ms=latency_ms,
                           redaction=live_settings(camera, redaction), preset=preset, crf=crf, watchlist=watchlist,
                           reveal=bool(reveal), alert_only=alert_only, key_file=key_file, audit_log=audit_log)
    except ValueError as exc:
        raise click.UsageError(str(exc).replace(f"camera {camera}: ", "")) from None
    check_camera(cam)
    _run([cam], None if metrics_at == "off" else metrics_at, models_dir)


@click.command()
@click.argument("config", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--check", is_flag=True, help="Validate CONFIG and exit without starting anything.")
@_log_options
@models_dir_option
@reports_errors
def serve(config: Path, check: bool, log_format: str, quiet: bool, models_dir: str | None) -> None:
    """Run the inline filter for every camera in CONFIG (TOML), with one /metrics and /healthz for all.

    \b
      metrics = "127.0.0.1:9400"
      [defaults]                  # any camera setting
      latency_ms = 500
      [cameras.gate]
      input = "rtsp://10.0.0.5/stream1"
      secrets = "gate-secrets.toml"
      output = "rtsp://vms.local:8554/gate"
      record = "/var/lib/redactor/gate"
      segment = "60s"

    Camera settings: input, output, record, segment, segment_format (.mkv/.mp4/.ts),
    transport, input_format, secrets, latency_ms, detector, threshold, sweep_rate, tile,
    centerface_scale, mode, shape, mask_scale, hold_seconds (ranges as in
    `redactor stream --help`), preset, crf, watchlist, reveal, alert_only,
    key_file, audit_log. Relative paths are relative to CONFIG's folder.
    --check runs every check starting does short of connecting: settings,
    secrets files (present, chmod 600), watchlists (present, opened by their key).
    """
    _setup_logging(log_format, quiet)
    parsed = load_serve_config(config)
    for cam in parsed.cameras:
        try:
            check_camera(cam)
        except RedactorError as exc:
            raise CLIError(f"{config}: camera {cam.name}: {exc}", exc.exit_code) from None
    if check:
        names = [c.name for c in parsed.cameras]
        click.echo(f"{config}: {len(names)} camera(s) OK: {', '.join(names)}", err=True)
        return
    _run(parsed.cameras, parsed.metrics, models_dir)
