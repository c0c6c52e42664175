"""The local engine: worker processes on this machine, each loading the models once and taking one task at a time.

A hand-rolled pool rather than `ProcessPoolExecutor`: when a worker dies, the
executor fails every task in flight, while here the engine knows which task that
worker held and reports only that one as lost; the worker is replaced and the
others carry on.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from redactor_video.batch.engines import Event, Finished, Lost, Progress
from redactor_video.batch.tasks import Task, execute
from redactor_video.errors import ProcessingError, RedactorError
from redactor_video.pipeline import Pipeline, RedactSettings

_PR_SET_PDEATHSIG = 1
_MAX_START_FAILURES = 3
_STOP_TIMEOUT_S = 5.0
_POLL_S = 0.2


def _die_with_parent(parent: int) -> None:
    """A worker must not outlive a driver killed with -9: it would write into staging the next run clears."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:
        os._exit(1)


def _serve(conn: Connection, settings: RedactSettings, models_dir: str | None, parent: int) -> None:
    """Worker process: load the models, then run tasks until told to stop or the driver goes away.

    Ctrl-C reaches the whole process group; the driver alone handles it and stops the workers.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    try:
        pipeline = Pipeline(settings, models_dir)
    except RedactorError as exc:
        conn.send(("fatal", exc))
        return
    except Exception as exc:  # reported to the driver, which stops the batch with this message
        conn.send(("fatal", ProcessingError(f"worker cannot start: {type(exc).__name__}: {exc}")))
        return
    conn.send(("ready", os.getpid()))
    with pipeline:
        while True:
            try:
                task = conn.recv()
            except EOFError:
                return
            if task is None:
                return
            result = execute(task, pipeline, lambda n, key=task.key: conn.send(("progress", key, n)))
            conn.send(("result", result))


@dataclass
class _Slot:
    process: BaseProcess
    conn: Connection
    ready: bool = False
    task: Task | None = None


class LocalEngine:
    """`workers` processes (spawned, so no model or codec state is shared by fork)."""

    name = "local"

    def __init__(self, settings: RedactSettings, models_dir: str | None, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.capacity = workers
        self._settings, self._models_dir = settings, models_dir
        self._ctx = multiprocessing.get_context("spawn")
        self._waiting: list[Task] = []
        self._start_failures = 0
        self.settings = settings
        self._slots = [self._start() for _ in range(workers)]
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> None:
        """Block until every worker has loaded its models: a model problem stops the batch before a file is claimed."""
        while not all(s.ready for s in self._slots):
            if self.poll(_POLL_S):
                raise ProcessingError("a batch worker reported before any task was given")

    def _start(self) -> _Slot:
        ours, theirs = self._ctx.Pipe()
        process = self._ctx.Process(target=_serve, args=(theirs, self._settings, self._models_dir, os.getpid()),
                                    name="redactor-batch-worker", daemon=True)
        process.start()
        theirs.close()
        return _Slot(process, ours)

    def pids(self) -> list[int]:
        return [s.process.pid for s in self._slots]

    def submit(self, task: Task) -> None:
        self._waiting.append(task)
        self._dispatch()

    def _dispatch(self) -> None:
        for slot in self._slots:
            if self._waiting and slot.ready and slot.task is None:
                slot.task = self._waiting.pop(0)
                slot.conn.send(slot.task)

    def poll(self, timeout: float) -> list[Event]:
        self._dispatch()
        wait([s.conn for s in self._slots] + [s.process.sentinel for s in self._slots], timeout)
        events: list[Event] = []
        for i, slot in enumerate(self._slots):
            if self._drain(slot, events) or not slot.process.is_alive():
                self._replace(i, events)
        self._dispatch()
        return events

    def _drain(self, slot: _Slot, events: list[Event]) -> bool:
        """Read everything the worker sent; True if its pipe is closed (the worker is gone)."""
        while slot.conn.poll():
            try:
                message = slot.conn.recv()
            except (EOFError, OSError):
                return True
            kind = message[0]
            if kind == "ready":
                slot.ready = True
            elif kind == "progress":
                events.append(Progress(message[1], message[2]))
            elif kind == "result":
                events.append(Finished(message[1]))
                slot.task = None
            else:
                raise message[1]
        return False

    def _replace(self, index: int, events: list[Event]) -> None:
        slot = self._slots[index]
        slot.process.join(_STOP_TIMEOUT_S)
        code = slot.process.exitcode
        slot.conn.close()
        if slot.task is not None:
            events.append(Lost(slot.task, f"worker process died (exit code {code})"))
        elif not slot.ready:
            self._start_failures += 1
            if self._start_failures >= _MAX_START_FAILURES:
                raise ProcessingError(f"batch workers keep dying while loading the models (exit code {code})")
        self._slots[index] = self._start()

    def close(self) -> None:
        """Stop idle workers politely and busy ones at once; their staged partial work is the driver's to clear."""
        for slot in self._slots:
            try:
                if slot.task is None:
                    slot.conn.send(None)
                else:
                    slot.process.kill()
            except OSError:
                pass
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        for slot in self._slots:
            slot.process.join(max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
            slot.conn.close()
