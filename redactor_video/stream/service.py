"""Builds live filters from camera configs and runs them: one for `stream`, several for `serve`."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from pathlib import Path

from redactor_video.errors import InputError, ProcessingError, RedactorError
from redactor_video.pipeline import Pipeline
from redactor_video.stream.config import CameraConfig
from redactor_video.stream.credentials import load_secrets, with_credentials
from redactor_video.stream.live import LiveFilter, LiveSettings
from redactor_video.stream.metrics import OpsServer, StreamMetrics
from redactor_video.stream.outputs import LiveEncodeSettings, PacketOutput, Publisher, SegmentRecorder
from redactor_video.stream.source import InputSettings, LiveSource


def build_pipeline(cam: CameraConfig, stack: ExitStack, models_dir: str | Path | None = None) -> Pipeline:
    recogniser = None
    if cam.watchlist is not None:
        from redactor_video.recognise import build_recogniser

        recogniser = build_recogniser(cam.watchlist, cam.key_file, cam.name, reveal=cam.reveal,
                                      audit_log=cam.audit_log, models_dir=models_dir)
    # One inference thread: the encoder and decoder need the other core in real time (720p soak on
    # 2 cores: 103 frames fully blurred for a late sweep in 1.5 min, against 190 with two threads). Frames are
    # swept as they come, not upsampled: a live sweep must keep its cadence in real time, and upsampled, a 360p
    # stream's sweep costs as much as a 720p one's (on 2 busy cores, two of four live tests sent most frames
    # out blurred for late sweeps; none without it).
    return stack.enter_context(Pipeline(cam.redaction, models_dir, recogniser=recogniser, inference_threads=1,
                                        sweep_min_lines=0))


def check_camera(cam: CameraConfig) -> None:
    """Everything about a camera that can be checked without connecting to it, exactly as starting it checks:
    the secrets file (present, private, well-formed) and the watchlist (present, opened by its key). Nothing
    is written, not even to the audit log: a check uses no watchlist entry."""
    if cam.secrets is not None:
        load_secrets(cam.secrets)
    if cam.watchlist is not None:
        from redactor_video.recognise import load_key
        from redactor_video.recognise.watchlist import load

        if not cam.watchlist.is_file():
            raise InputError(f"camera {cam.name}: watchlist {cam.watchlist} not found")
        load(cam.watchlist, load_key(cam.key_file), cam.name)


def build_filter(cam: CameraConfig, metrics: StreamMetrics, pipeline: Pipeline) -> LiveFilter:
    """One camera's filter around a ready pipeline (tests pass one with a failing detector)."""
    url = cam.input
    if cam.secrets is not None:
        url = with_credentials(url, *load_secrets(cam.secrets))
    outputs: list[PacketOutput] = []
    if cam.record is not None:
        outputs.append(SegmentRecorder(cam.record, cam.name, cam.segment, cam.segment_format))
    if cam.output is not None:
        outputs.append(Publisher(cam.output, transport=cam.transport))
    source = LiveSource(InputSettings(url, transport=cam.transport, input_format=cam.input_format))
    live = LiveSettings(camera=cam.name, latency_ms=cam.latency_ms,
                        encode=LiveEncodeSettings(preset=cam.preset, crf=cam.crf))
    return LiveFilter(source, pipeline, outputs, live, metrics)


class Service:
    """Runs live filters side by side with one ops server; `stop()` (e.g. on SIGTERM) ends them cleanly."""

    def __init__(self, filters: list[LiveFilter], metrics: StreamMetrics, ops: str | None) -> None:
        self.filters, self.metrics = filters, metrics
        self.ops: OpsServer | None = None
        if ops is not None:
            host, _, port = ops.rpartition(":")
            try:
                self.ops = OpsServer(host or "127.0.0.1", int(port), metrics.registry, self.health)
            except (ValueError, OSError) as exc:
                raise RedactorError(f"cannot serve metrics on {ops!r}: {getattr(exc, 'strerror', None) or exc}") from None

    def health(self) -> tuple[bool, dict]:
        checks = [f.health() for f in self.filters]
        return all(ok for ok, _ in checks), {"cameras": [detail for _, detail in checks]}

    def stop(self) -> None:
        for f in self.filters:
            f.stop()

    def run(self) -> None:
        """Blocks until every filter has stopped; a filter that fails stops the others and is re-raised."""
        errors: list[BaseException] = []

        def one(f: LiveFilter) -> None:
            try:
                f.run()
            except BaseException as exc:  # collected for the caller, which reports it
                errors.append(exc)
                self.stop()

        if self.ops is not None:
            self.ops.start()
        threads = [threading.Thread(target=one, args=(f,), name=f"camera-{f.settings.camera}", daemon=True)
                   for f in self.filters]
        try:
            for t in threads:
                t.start()
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        finally:
            self.stop()
            for t in threads:
                t.join(timeout=10)
            if self.ops is not None:
                self.ops.close()
        if errors:
            err = errors[0]
            if isinstance(err, RedactorError):
                raise err
            raise ProcessingError(f"live filter failed: {type(err).__name__}") from None
