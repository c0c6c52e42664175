"""The units of work a batch hands to its workers, what comes back, and how a worker runs one.

Tasks and results are plain frozen dataclasses, so they cross a process pipe or
a Ray object store alike. A worker never touches the manifest: it writes only
into its staging folder and reports; the driver decides what is done.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from redactor_video.batch.chunks import Chunk, Probe, WindowSink, chunk_frames, join, overlap_seconds, plan, probe
from redactor_video.batch.manifest import file_sha256
from redactor_video.errors import RedactorError
from redactor_video.files.jobs import redact_file
from redactor_video.media.atomic import atomic_path
from redactor_video.media.sink import VideoSink
from redactor_video.media.source import FileSource
from redactor_video.pipeline import Pipeline

_REPORT_EVERY_S = 0.25


@dataclass(frozen=True)
class FileTask:
    """Redact a whole file into `out`, unless it is long enough to split: then only plan its chunks."""

    key: str
    rel: str
    src: str
    out: str
    chunk_seconds: float


@dataclass(frozen=True)
class ChunkTask:
    """Redact one chunk of a file into `part`."""

    key: str
    rel: str
    src: str
    part: str
    chunk: Chunk


@dataclass(frozen=True)
class JoinTask:
    """Join a file's redacted chunks into `out`, frame-exact against `reference`."""

    key: str
    rel: str
    src: str
    out: str
    parts: tuple[str, ...]
    starts: tuple[int, ...]
    reference: Probe
    keep_audio: bool
    input_sha256: str
    media_seconds: float | None


Task = FileTask | ChunkTask | JoinTask


@dataclass(frozen=True)
class Redacted:
    """A file's finished output, staged at `out`, ready for the driver to publish."""

    key: str
    rel: str
    out: str
    output_sha256: str
    input_sha256: str
    frames: int
    media_seconds: float | None
    seconds: float


@dataclass(frozen=True)
class Split:
    """A long file's plan: the driver queues its chunks, then the join."""

    key: str
    rel: str
    input_sha256: str
    media_seconds: float | None
    reference: Probe
    chunks: tuple[Chunk, ...]
    seconds: float


@dataclass(frozen=True)
class ChunkDone:
    key: str
    rel: str
    index: int
    part: str
    frames: int
    seconds: float


@dataclass(frozen=True)
class Failed:
    """The task failed on its own account (bad input, encoder error); the file fails, the batch goes on."""

    key: str
    rel: str
    reason: str
    exit_code: int


Result = Redacted | Split | ChunkDone | Failed


class Throttled:
    """Adds up per-frame progress and passes it on at most every quarter second (a pipe or a Ray call each)."""

    def __init__(self, send: Callable[[int], None]) -> None:
        self._send = send
        self._pending = 0
        self._last = time.monotonic()

    def __call__(self, frames: int) -> None:
        self._pending += frames
        now = time.monotonic()
        if now - self._last >= _REPORT_EVERY_S:
            self.flush()
            self._last = now

    def flush(self) -> None:
        if self._pending:
            self._send(self._pending)
            self._pending = 0


def execute(task: Task, pipeline: Pipeline, on_frames: Callable[[int], None]) -> Result:
    """Run one task in a worker; any failure is returned as `Failed` with a one-line reason, never raised."""
    started = time.perf_counter()
    progress = Throttled(on_frames)
    try:
        if isinstance(task, FileTask):
            result = _redact_file(task, pipeline, progress, started)
        elif isinstance(task, ChunkTask):
            result = _redact_chunk(task, pipeline, progress, started)
        else:
            frames = join([Path(p) for p in task.parts], list(task.starts), Path(task.src), Path(task.out),
                          task.reference, task.keep_audio)
            result = Redacted(task.key, task.rel, task.out, file_sha256(Path(task.out)), task.input_sha256,
                              frames, task.media_seconds, time.perf_counter() - started)
    except RedactorError as exc:
        return Failed(task.key, task.rel, str(exc), exc.exit_code)
    except Exception as exc:  # one file's unexpected fault fails that file alone; the batch goes on
        return Failed(task.key, task.rel, f"internal error: {type(exc).__name__}: {exc}", 1)
    finally:
        progress.flush()
    return result


def _redact_file(task: FileTask, pipeline: Pipeline, progress: Throttled, started: float) -> Redacted | Split:
    src, out = Path(task.src), Path(task.out)
    input_sha = file_sha256(src)
    with FileSource(src) as source:
        info = source.info
    long_enough = info.duration is not None and task.chunk_seconds > 0 and info.duration >= 2 * task.chunk_seconds
    if long_enough and not info.is_image:
        fps = float(info.rate) if info.rate else 25.0
        reference = probe(src)
        chunks = plan(reference, task.chunk_seconds, overlap_seconds(pipeline.settings, fps))
        if len(chunks) > 1:
            return Split(task.key, task.rel, input_sha, info.duration, reference, tuple(chunks),
                         time.perf_counter() - started)
    stats = redact_file(src, out, pipeline, pipeline.settings.encode, on_progress=progress)
    return Redacted(task.key, task.rel, task.out, file_sha256(out), input_sha, stats.frames, info.duration,
                    time.perf_counter() - started)


def _redact_chunk(task: ChunkTask, pipeline: Pipeline, progress: Throttled, started: float) -> ChunkDone:
    src, part = Path(task.src), Path(task.part)
    with FileSource(src) as source:
        info = source.info
    fps = float(info.rate) if info.rate else 25.0
    # The join copies audio and subtitles from the source once; chunks carry video only.
    encode = dataclasses.replace(pipeline.settings.encode, keep_audio=False)
    with atomic_path(part) as tmp:
        sink = WindowSink(VideoSink(tmp, info, encode, None), task.chunk, progress)
        pipeline.run(chunk_frames(src, task.chunk, info.time_base), sink, fps)
    return ChunkDone(task.key, task.rel, task.chunk.index, task.part, task.chunk.frames,
                     time.perf_counter() - started)
