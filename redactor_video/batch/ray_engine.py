"""The Ray engine: the same tasks on a pool of Ray actors that each hold a loaded Pipeline.

With no address it starts a Ray instance on this machine; with `ray://head:10001`
(Ray Client) or `head:6379` it joins a cluster whose nodes have redactor and its
models installed and see SRC and DST at the same paths (a shared file system):
workers read inputs and write staged outputs there, while the manifest stays
with the driver. An actor whose process dies is restarted by Ray (reloading its
models) and the task it held is reported lost, for the driver to run again.

Ray 2.60 turns on token authentication by default: a driver joining through Ray
Client needs RAY_AUTH_MODE=token and the cluster's token in its environment
(checked against a head node on loopback: `ray start --head --ray-client-server-port 10001`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from redactor_video.batch.engines import Event, Finished, Lost, Progress
from redactor_video.batch.tasks import Task, execute
from redactor_video.errors import ProcessingError, RedactorError
from redactor_video.pipeline import Pipeline, RedactSettings


class _Worker:
    """Actor body: one Pipeline, loaded once; a load failure is kept and handed to the driver by `ready`."""

    def __init__(self, settings: RedactSettings, models_dir: str | None) -> None:
        self._error: RedactorError | None = None
        try:
            self._pipeline = Pipeline(settings, models_dir)
        except RedactorError as exc:
            self._error = exc
        except Exception as exc:  # handed to the driver, which stops the batch with this message
            self._error = ProcessingError(f"worker cannot start: {type(exc).__name__}: {exc}")

    def ready(self) -> tuple[int, RedactorError | None]:
        return os.getpid(), self._error

    def run(self, task: Task, progress: Any) -> Any:
        """Run one task; progress goes to the driver's queue (passed per call, so a restarted actor needs nothing
        but its settings to come back)."""
        return execute(task, self._pipeline, lambda n: progress.put((task.key, n)))


class RayEngine:
    """`workers` actors of one CPU each, on a local Ray instance or the cluster at `address`."""

    name = "ray"

    def __init__(self, settings: RedactSettings, models_dir: str | None, workers: int,
                 address: str | None = None) -> None:
        try:
            import ray
            from ray.util.queue import Queue
        except ImportError:
            raise ProcessingError("the Ray engine needs Ray: pip install 'redactor[cluster]'") from None
        self._ray = ray
        self.capacity = workers
        self.settings = settings
        self._owns = not ray.is_initialized()
        if self._owns:
            try:
                # "local" starts a fresh instance even when another one runs on this machine.
                ray.init(address=address or "local", num_cpus=None if address else workers, include_dashboard=False,
                         log_to_driver=False, logging_level=logging.ERROR)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ProcessingError(f"cannot start or reach Ray at {address or 'this machine'}: {exc}") from None
        self._progress = Queue(actor_options={"num_cpus": 0})
        actor = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0)(_Worker)
        self._actors = [actor.remote(settings, models_dir) for _ in range(workers)]
        self._idle = list(range(workers))
        self._running: dict[Any, tuple[int, Task]] = {}
        self._recovering: dict[Any, int] = {}
        self._waiting: list[Task] = []
        try:
            started = ray.get([a.ready.remote() for a in self._actors])
        except ray.exceptions.RayError as exc:
            self.close()
            raise ProcessingError(f"Ray workers did not start: {type(exc).__name__}") from None
        self._pids = [pid for pid, _ in started]
        for _, error in started:
            if error is not None:
                self.close()
                raise error

    def pids(self) -> list[int]:
        """The worker processes as first started (a restarted actor gets a new one)."""
        return list(self._pids)

    def submit(self, task: Task) -> None:
        self._waiting.append(task)
        self._dispatch()

    def _dispatch(self) -> None:
        while self._waiting and self._idle:
            index, task = self._idle.pop(0), self._waiting.pop(0)
            self._running[self._actors[index].run.remote(task, self._progress)] = (index, task)

    def poll(self, timeout: float) -> list[Event]:
        ray = self._ray
        self._dispatch()
        refs = [*self._running, *self._recovering]
        if not refs:
            return []
        ray.wait(refs, num_returns=1, timeout=timeout)
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        # Progress first: everything a task reported was queued before its result (or death) could be seen.
        events: list[Event] = [Progress(key, n) for key, n in self._drain_progress()]
        for ref in done:
            if ref in self._recovering:
                self._recovered(ref)
                continue
            index, task = self._running.pop(ref)
            try:
                events.append(Finished(ray.get(ref)))
                self._idle.append(index)
            except self._died as exc:
                events.append(Lost(task, f"Ray worker died ({type(exc).__name__})"))
                self._recovering[self._actors[index].ready.remote()] = index
        self._dispatch()
        return events

    @property
    def _died(self) -> tuple[type[Exception], ...]:
        e = self._ray.exceptions
        return (e.RayActorError, e.WorkerCrashedError, e.ActorUnavailableError, e.OutOfMemoryError)

    def _recovered(self, ref: Any) -> None:
        """A dead actor is taken back only once Ray has restarted it and its models are loaded again."""
        index = self._recovering.pop(ref)
        try:
            _, error = self._ray.get(ref)
        except self._ray.exceptions.ActorUnavailableError:
            self._recovering[self._actors[index].ready.remote()] = index
            return
        except self._died as exc:
            raise ProcessingError(f"a Ray worker died and could not be restarted ({type(exc).__name__})") from None
        if error is not None:
            raise error
        self._idle.append(index)

    def _drain_progress(self) -> list[tuple[str, int]]:
        size = self._progress.qsize()
        return self._progress.get_nowait_batch(size) if size else []

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._progress.shutdown()
        if self._owns:
            self._ray.shutdown()
