"""The batch driver: walks SRC, settles the manifest, hands tasks to an engine and publishes what comes back.

The driver is the only writer of the manifest. Workers stage their outputs in
DST/.redactor-batch.tmp/<run>/; a file's output is moved to its place, and the
file counted done, only by `Manifest.publish`.
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from redactor_video.batch.engines import Engine, Finished, Lost, Progress
from redactor_video.batch.manifest import (MANIFEST_NAME, InputKey, Manifest, Outcome, Row, Status, file_sha256,
                                     has_manifest, settings_hash)
from redactor_video.batch.tasks import ChunkDone, ChunkTask, FileTask, Failed, JoinTask, Redacted, Split, Task
from redactor_video.batch.walk import BatchItem, walk
from redactor_video.errors import InputError, OutputError, ProcessingError, RedactorError
from redactor_video.media.source import FileSource
from redactor_video.pipeline import RedactSettings

DEFAULT_CHUNK_SECONDS = 120.0
"""Files at least twice this long are split. Each chunk re-decodes about 2 x (hold + look-ahead) s of
overlap, ~3 % of a 2-minute chunk at the defaults, and chunks this long still spread one long file
over many workers."""

ENGINES = ("local", "ray")
_POLL_S = 0.2


@dataclass(frozen=True)
class BatchOptions:
    workers: int = 1
    engine: str = "local"
    address: str | None = None
    resume: bool = False
    retry_failed: bool = False
    overwrite: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS
    max_attempts: int = 3
    models_dir: str | None = None

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}")
        if self.address is not None and self.engine != "ray":
            raise ValueError("an address needs the ray engine")
        if self.chunk_seconds < 0 or self.max_attempts < 1:
            raise ValueError("chunk length must be >= 0 and attempts >= 1")


@dataclass
class BatchSummary:
    """What one run did; throughput counts only the files redacted in this run.

    `failed` and `failed_before` hold (rel, reason, exit code): the files that failed
    in this run, and those left failed by an earlier one and not tried again (no
    `retry_failed`, input unchanged). Either kind means the batch is not complete.
    """

    run_id: str
    found: int = 0
    done: int = 0
    skipped: int = 0
    failed_before: list[tuple[str, str, int]] = field(default_factory=list)
    requeued: int = 0
    retries: int = 0
    frames: int = 0
    media_seconds: float = 0.0
    startup_seconds: float = 0.0
    seconds: float = 0.0
    failed: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def files_per_second(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return asdict(self) | {"files_per_second": self.files_per_second, "frames_per_second": self.frames_per_second}


class Observer(Protocol):
    """Progress for a user interface; the driver calls it from its own thread only."""

    def planned(self, files: int, frames: int) -> None: ...
    def expect(self, frames: int) -> None: ...
    def advance(self, frames: int) -> None: ...
    def finished(self, rel: str, reason: str | None) -> None: ...


def make_engine(settings: RedactSettings, options: BatchOptions) -> Engine:
    if options.engine == "ray":
        from redactor_video.batch.ray_engine import RayEngine

        return RayEngine(settings, options.models_dir, options.workers, options.address)
    from redactor_video.batch.local import LocalEngine

    return LocalEngine(settings, options.models_dir, options.workers)


def run_batch(src: Path, dst: Path, settings: RedactSettings, options: BatchOptions,
              observer: Observer | None = None, engine: Engine | None = None) -> BatchSummary:
    """Redact every selected file under `src` into the same relative path under `dst`.

    A run on a DST that holds an earlier batch's manifest needs `resume`. An
    `engine` passed in (built with `settings`) is used as is and left open;
    otherwise one is made from `options` (only if there is work) and closed at the end.
    """
    if engine is not None and engine.settings != settings:
        raise ValueError("the engine's workers were built with other settings")
    started = time.perf_counter()
    items = walk(src, dst, options.include, options.exclude)
    if has_manifest(dst) and not options.resume:
        raise OutputError(f"{dst}: holds an earlier batch ({MANIFEST_NAME}); add --resume to continue it")
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    summary = BatchSummary(run_id, found=len(items))
    with Manifest(dst) as manifest:
        summary.requeued = manifest.recover(run_id)
        shutil.rmtree(manifest.staging, ignore_errors=True)
        todo = _select(items, manifest, settings, options, summary, run_id)
        manifest.start_run(run_id, options.engine, options.workers, settings)
        staging = manifest.staging / run_id
        try:
            if todo:
                estimates = {item.rel: _frames_estimate(item.src) for item in todo}
                if observer is not None:
                    observer.planned(len(todo), sum(estimates.values()))
                owned = engine is None
                if engine is None:
                    engine = make_engine(settings, options)
                summary.startup_seconds = time.perf_counter() - started
                try:
                    _Scheduler(manifest, run_id, settings, options, staging, summary, observer, estimates).run(
                        todo, engine)
                finally:
                    if owned:
                        engine.close()
        finally:
            shutil.rmtree(manifest.staging, ignore_errors=True)
            summary.seconds = time.perf_counter() - started
            manifest.finish_run(run_id, summary.to_dict())
    return summary


def _frames_estimate(path: Path) -> int:
    """The container's frame count, for the progress bar only (0 if unknown or unreadable)."""
    try:
        with FileSource(path) as source:
            return source.info.frames or 0
    except RedactorError:
        return 0


def _same_input(row: Row, item: BatchItem, key: InputKey) -> bool:
    """An unchanged quick key decides at once; any other file of the same size is hashed, and only the recorded
    SHA-256 calls it the same (a touched file is not redone, a replaced one always is)."""
    if row.input_key == key:
        return True
    return row.input_sha256 is not None and row.input_size == key.size and file_sha256(item.src) == row.input_sha256


def _select(items: list[BatchItem], manifest: Manifest, settings: RedactSettings, options: BatchOptions,
            summary: BatchSummary, run_id: str) -> list[BatchItem]:
    """The files this run must redact: not done with these settings, failed only with `retry_failed`."""
    rows = manifest.rows()
    wanted = settings_hash(settings)
    todo = []
    for item in items:
        row = rows.get(item.rel)
        try:
            key = InputKey.of(item.src.stat())
            same = row is not None and row.settings_hash == wanted and _same_input(row, item, key)
        except OSError as exc:
            reason = f"{item.src}: cannot read it ({exc.strerror})"
            manifest.fail_unclaimed(run_id, item.rel, reason, InputError.exit_code)
            summary.failed.append((item.rel, reason, InputError.exit_code))
            continue
        if same and row.status == Status.DONE and item.dst.is_file():
            if row.input_key != key:
                manifest.record_key(item.rel, key)
            summary.skipped += 1
            continue
        if same and row.status == Status.FAILED and not options.retry_failed:
            # A manifest from schema 1 kept no exit code: 6 is the batch's code for failures of mixed kinds.
            code = row.exit_code if row.exit_code is not None else ProcessingError.exit_code
            summary.failed_before.append((item.rel, row.reason or "failed", code))
            continue
        ours = row is not None and row.output_sha256 is not None
        if item.dst.exists() and not (ours or options.overwrite):
            reason = f"{item.dst}: already exists (use --overwrite to replace it)"
            manifest.fail_unclaimed(run_id, item.rel, reason, OutputError.exit_code)
            summary.failed.append((item.rel, reason, OutputError.exit_code))
            continue
        todo.append(item)
    return todo


@dataclass
class _File:
    item: BatchItem
    folder: Path
    split: Split | None = None
    parts: dict[int, str] = field(default_factory=dict)
    work_seconds: float = 0.0
    frames_seen: int = 0
    failed: bool = False


class _Scheduler:
    """Feeds the engine, and turns its events into manifest transitions; one instance per run."""

    def __init__(self, manifest: Manifest, run_id: str, settings: RedactSettings, options: BatchOptions,
                 staging: Path, summary: BatchSummary, observer: Observer | None, estimates: dict[str, int]) -> None:
        self.manifest, self.run_id, self.settings, self.options = manifest, run_id, settings, options
        self.staging, self.summary, self.observer, self.estimates = staging, summary, observer, estimates
        self.settings_hash = settings_hash(settings)
        self.files: dict[str, _File] = {}
        self.pending: deque[Task] = deque()
        self.in_flight: dict[str, Task] = {}
        self.counted: dict[str, int] = {}
        self.lost: dict[str, int] = {}

    def run(self, todo: list[BatchItem], engine: Engine) -> None:
        for n, item in enumerate(todo):
            folder = self.staging / f"{n:06d}"
            self.files[item.rel] = _File(item, folder)
            self.pending.append(FileTask(item.rel, item.rel, str(item.src), str(folder / f"out{item.dst.suffix}"),
                                         self.options.chunk_seconds))
        while self.pending or self.in_flight:
            while self.pending and len(self.in_flight) < engine.capacity:
                task = self.pending.popleft()
                state = self.files[task.rel]
                if state.failed:
                    continue
                if isinstance(task, FileTask) and task.key not in self.lost and not self._claim(state):
                    continue
                engine.submit(task)
                self.in_flight[task.key] = task
                self.counted[task.key] = 0
            for event in engine.poll(_POLL_S):
                if isinstance(event, Progress):
                    self._progress(event.key, event.frames)
                elif isinstance(event, Lost):
                    self._lost(event.task, event.reason)
                else:
                    self._finished(event)

    def _claim(self, state: _File) -> bool:
        """Record the file as running in this run; False (and failed) if it can no longer be read."""
        rel = state.item.rel
        try:
            stat = state.item.src.stat()
            state.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            state.failed = True
            reason = f"{exc.filename}: {exc.strerror}"
            self.manifest.fail_unclaimed(self.run_id, rel, reason, InputError.exit_code)
            self._record_failure(rel, reason, InputError.exit_code)
            return False
        self.manifest.mark_running(self.run_id, rel, InputKey.of(stat), self.settings_hash)
        return True

    def _progress(self, key: str, frames: int) -> None:
        if key not in self.in_flight:
            return
        self.counted[key] += frames
        self.files[self.in_flight[key].rel].frames_seen += frames
        if self.observer is not None:
            self.observer.advance(frames)

    def _lost(self, task: Task, reason: str) -> None:
        del self.in_flight[task.key]
        undone = self.counted.pop(task.key, 0)
        if self.files[task.rel].failed:
            return
        self.files[task.rel].frames_seen -= undone
        if self.observer is not None:
            self.observer.advance(-undone)
        tries = self.lost[task.key] = self.lost.get(task.key, 0) + 1
        self.summary.retries += 1
        if tries >= self.options.max_attempts:
            self._fail(task.rel, f"{reason}; gave up after {tries} attempts", ProcessingError.exit_code)
            return
        self.manifest.count_attempt(self.run_id, task.rel, f"{task.key}: {reason}")
        self.pending.appendleft(task)

    def _finished(self, event: Finished) -> None:
        result = event.result
        del self.in_flight[result.key]
        self.counted.pop(result.key, None)
        state = self.files[result.rel]
        if state.failed:
            return
        if isinstance(result, Failed):
            self._fail(result.rel, result.reason, result.exit_code)
            return
        state.work_seconds += result.seconds
        if isinstance(result, Split):
            state.split = result
            for chunk in reversed(result.chunks):
                part = state.folder / f"part-{chunk.index:04d}{state.item.dst.suffix}"
                self.pending.appendleft(ChunkTask(f"{result.rel}#chunk{chunk.index}", result.rel,
                                                  str(state.item.src), str(part), chunk))
        elif isinstance(result, ChunkDone):
            state.parts[result.index] = result.part
            split = state.split
            if len(state.parts) == len(split.chunks):
                parts = tuple(state.parts[i] for i in range(len(split.chunks)))
                self.pending.appendleft(JoinTask(f"{result.rel}#join", result.rel, str(state.item.src),
                                                 str(state.folder / f"out{state.item.dst.suffix}"), parts,
                                                 tuple(c.start for c in split.chunks), split.reference,
                                                 self.settings.encode.keep_audio, split.input_sha256,
                                                 split.media_seconds))
        else:
            self._publish(state, result)

    def _publish(self, state: _File, result: Redacted) -> None:
        if self._changed_since_claim(state):
            self._fail(result.rel, f"{state.item.src}: changed while it was being redacted; run again with --resume",
                       InputError.exit_code)
            return
        chunks = len(state.split.chunks) if state.split is not None else 1
        outcome = Outcome(result.input_sha256, result.output_sha256, result.frames, result.media_seconds,
                          state.work_seconds, chunks)
        self.manifest.publish(self.run_id, result.rel, Path(result.out), outcome)
        row = self.manifest.row(result.rel)
        shutil.rmtree(state.folder, ignore_errors=True)
        if row is None or row.status != Status.DONE:
            state.failed = True
            self._record_failure(result.rel, row.reason if row else "not recorded", OutputError.exit_code)
            return
        self.summary.done += 1
        self.summary.frames += result.frames
        self.summary.media_seconds += result.media_seconds or 0.0
        self._settle_progress(state)
        if self.observer is not None:
            self.observer.finished(result.rel, None)

    def _changed_since_claim(self, state: _File) -> bool:
        """Whether the source was written or replaced while workers read it: the hash they took and the output they
        made may then be of different contents (or of a mix), so neither may be recorded as this file's."""
        row = self.manifest.row(state.item.rel)
        try:
            return row is None or row.input_key != InputKey.of(state.item.src.stat())
        except OSError:
            return True

    def _fail(self, rel: str, reason: str, exit_code: int) -> None:
        state = self.files[rel]
        if state.failed:
            return
        state.failed = True
        self.manifest.mark_failed(self.run_id, rel, reason, exit_code)
        shutil.rmtree(state.folder, ignore_errors=True)
        self._record_failure(rel, reason, exit_code)

    def _record_failure(self, rel: str, reason: str, exit_code: int) -> None:
        self.summary.failed.append((rel, reason, exit_code))
        self._settle_progress(self.files[rel])
        if self.observer is not None:
            self.observer.finished(rel, reason)

    def _settle_progress(self, state: _File) -> None:
        """Replace the file's estimated frames in the progress total by those actually written."""
        if self.observer is not None:
            self.observer.expect(state.frames_seen - self.estimates.get(state.item.rel, 0))
