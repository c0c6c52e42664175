"""What the batch driver needs from an engine that runs tasks on workers that each hold a loaded Pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from redactor_video.batch.tasks import Result, Task
from redactor_video.pipeline import RedactSettings


@dataclass(frozen=True)
class Progress:
    """`frames` more frames of task `key` were written."""

    key: str
    frames: int


@dataclass(frozen=True)
class Finished:
    result: Result


@dataclass(frozen=True)
class Lost:
    """The worker running `task` died; the task may be run again."""

    task: Task
    reason: str


Event = Progress | Finished | Lost


class Engine(Protocol):
    """Runs at most `capacity` tasks at once, one per worker; `poll` reports what happened since the last call."""

    name: str
    capacity: int
    settings: RedactSettings

    def submit(self, task: Task) -> None: ...
    def poll(self, timeout: float) -> list[Event]: ...
    def pids(self) -> list[int]: ...
    def close(self) -> None: ...
