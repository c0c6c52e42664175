"""The stage chain: decode -> detect -> track -> look-ahead -> mask -> encode.

Decode, detection/tracking and masking/encoding run in three threads (the heavy
parts all release the GIL), so both cores stay busy. The fail-closed rule lives
here: if detection fails on a frame, that frame is masked whole; if any stage
fails outright, the run raises and the caller discards the output.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Protocol

import numpy as np

from redactor_video import interrupts
from redactor_video.detect import SWEEP_MIN_LINES, build_schedule
from redactor_video.errors import ProcessingError, RedactorError
from redactor_video.mask.masker import Masker
from redactor_video.settings import LOOKAHEAD_MIB, LOOKAHEAD_MIN_SECONDS, LOOKAHEAD_SECONDS, RedactSettings
from redactor_video.track.lookahead import LookAhead
from redactor_video.track.policy import POLICY, TrackingPolicy
from redactor_video.track.tracker import Tracker
from redactor_video.types import Detections, Frame, MaskPlan, Regions, Tracks


class Recogniser(Protocol):
    """Decides which faces a lawful watchlist match allows to stay clear; everything else is masked.

    `observe` sees every frame's tracks, in order (it may embed some of them).
    `reveals` is asked, as each frame is written, about each track with a box
    on it: whether that track's face in that frame may stay clear. The answer
    is per frame, not per track, because a track id can carry different faces
    over its life (a tracker hand-off) and frames held in the look-ahead were
    observed before the evidence about them existed.
    """

    def observe(self, frame: Frame, tracked: Tracks) -> None: ...
    def reveals(self, track_id: int, index: int) -> bool: ...
    def close(self) -> None: ...


class FrameSink(Protocol):
    def write(self, frame: Frame, image: np.ndarray) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


TRIM_EVERY = 25
"""Frames written between handing freed memory back to the OS. glibc keeps freed frame buffers (6 MB at
1080p) in its per-thread heaps once its mmap threshold has risen past their size: peak RSS of a 40 s
1080p run wandered between 927 and 1105 MiB from run to run (3 runs in 7 over the 1 GiB budget), and
with a trim every 25 frames between 894 and 1033 (1 in 7), its quartiles ~880-900, at no measurable
cost in speed (RESULTS.md). A fixed mmap threshold held it at 865 but cost 22% of the speed."""


def _heap_trimmer() -> Callable[[], object]:
    """glibc's malloc_trim, or a no-op where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    return (lambda: trim(0)) if trim is not None else (lambda: None)


_trim_heap = _heap_trimmer()


@dataclass
class FrameRecord:
    """What the report says about one output frame: no pixels, no identities."""

    index: int
    pts: int | None
    tracks: list[int]
    boxes: list[list[int]]
    whole_frame: bool
    reason: str


@dataclass
class RunStats:
    frames: int = 0
    whole_frame: int = 0
    detector_failures: int = 0
    tracks: int = 0
    lookahead_frames: int = 0  # how many frames the look-ahead held back (the default depends on frame size)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    verification: dict | None = None

    def to_dict(self) -> dict:
        out = {"frames": self.frames, "whole_frame_masked": self.whole_frame,
               "detector_failures": self.detector_failures, "tracks": self.tracks,
               "lookahead_frames": self.lookahead_frames,
               "stage_seconds": {k: round(v, 3) for k, v in self.seconds.items()}}
        if self.verification is not None:
            out["verification"] = self.verification
        return out


_END = object()


class _Stage(threading.Thread):
    """A thread that runs `body` and keeps the first exception for the main thread to re-raise."""

    def __init__(self, name: str, body: Callable[[], None], stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self._body, self._stop_event, self.error = body, stop, None

    def run(self) -> None:
        try:
            self._body()
        except BaseException as exc:  # handed to the main thread, which re-raises it
            self.error = exc
            self._stop_event.set()


def _put(q: queue.Queue, item: object, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _get(q: queue.Queue, stop: threading.Event) -> object:
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return _END


class StreamState:
    """Detect -> track -> recognise -> look-ahead for one stream, one frame at a time."""

    def __init__(self, pipeline: Pipeline, fps: float, stats: RunStats, lookahead: LookAhead) -> None:
        s = pipeline.settings
        self.pipeline, self.fps, self.stats = pipeline, fps, stats
        self._tracker: Tracker | None = None  # built for the first frame's size (the policy's sizes are shares)
        self.lookahead = lookahead
        self._seen: set[int] = set()
        self.sweep_period = s.sweep_period(fps)
        self._since_sweep = self.sweep_period - 1  # the first frame gets a sweep
        self.last_sweep_index = -1

    def push(self, frame: Frame, lock: threading.Lock | None = None, sweep: bool | None = None) -> list[MaskPlan]:
        """Fold in one frame; returns the plans of the frames that left the look-ahead buffer.

        By default the sweep runs on every k-th frame pushed; a live filter decides
        itself from its time budget (putting the sweep off when short of time, or
        bringing it forward so the frames before it are covered when they are due).
        `lock` (live) is held only while the tracker and look-ahead change, not
        during detection.
        """
        p, stats, clock = self.pipeline, self.stats, time.perf_counter
        if sweep is None:
            sweep = self.next_is_sweep
        t0 = clock()
        found, failure = p.detect(frame, sweep)
        t1 = clock()
        with lock or contextlib.nullcontext():
            self._since_sweep = 0 if sweep else self._since_sweep + 1
            if sweep and not failure:
                self.last_sweep_index = frame.index
            when = frame.seconds if frame.seconds is not None else frame.index / self.fps
            tracked = self._tracker_for(frame).update(found, when, detected=sweep and not failure)
            self._seen.update(int(t) for t in tracked.tracker_id)
            stats.tracks = len(self._seen)
            t2 = clock()
            stats.seconds["detect"] += t1 - t0
            stats.seconds["track"] += t2 - t1
            if p.recogniser is not None and not failure:
                p.recogniser.observe(frame, tracked)
                stats.seconds["recognise"] += clock() - t2
            if failure:
                stats.detector_failures += 1
            stats.lookahead_frames = max(stats.lookahead_frames, self.lookahead.holds(frame))
            return self.lookahead.push(frame, tracked, failure)

    def _tracker_for(self, frame: Frame) -> Tracker:
        if self._tracker is None:
            s = self.pipeline.settings
            self._tracker = Tracker(hold_seconds=s.hold_seconds, high=s.threshold, low=s.low_threshold,
                                    frame_size=(frame.width, frame.height), policy=self.pipeline.policy)
        return self._tracker

    @property
    def next_is_sweep(self) -> bool:
        """Whether the next frame pushed gets the expensive sweep (a live filter budgets time for it)."""
        return self._since_sweep + 1 >= self.sweep_period

    def due(self, is_due: Callable[[int], bool]) -> list[MaskPlan]:
        """Release the oldest held frames whose index `is_due` says is out of time (a live latency budget)."""
        return self.lookahead.release(is_due)

    def flush(self) -> list[MaskPlan]:
        return self.lookahead.flush()


class Pipeline:
    """One redaction run's stages, built from settings; reusable for several files in a row."""

    def __init__(self, settings: RedactSettings, models_dir: str | Path | None = None,
                 recogniser: Recogniser | None = None, inference_threads: int = 0,
                 sweep_min_lines: int = SWEEP_MIN_LINES, policy: TrackingPolicy = POLICY) -> None:
        self.settings = settings
        self.policy = policy
        self.recogniser = recogniser
        # Detectors report down to the tracker's low band: a faint find extends a track and starts one only when
        # small and repeated by the next sweep (Tracker.small_below).
        self.schedule = build_schedule(settings.detector, threshold=settings.low_threshold,
                                       models_dir=models_dir, tile=settings.tile,
                                       centerface_scale=settings.centerface_scale, threads=inference_threads,
                                       start=settings.threshold, sweep_min_lines=sweep_min_lines)
        self.masker = Masker(settings.mode, settings.shape, settings.mask_scale)

    def close(self) -> None:
        self.schedule.close()
        if self.recogniser is not None:
            self.recogniser.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def warm_up(self, image: np.ndarray) -> float:
        """Run every detector twice and return the seconds the second pass took: first calls compile and
        allocate and are several times slower, which a live stream would otherwise pay for in latency on
        its first frames, and would take as what a sweep costs."""
        self.schedule.detect(image, sweep=True)
        began = time.perf_counter()
        self.schedule.detect(image, sweep=True)
        return time.perf_counter() - began

    def detect(self, frame: Frame, sweep: bool) -> tuple[Detections, str]:
        """Detections for one frame (with the small-face sweep or not), or an empty set and the reason
        the frame must be masked whole."""
        try:
            return self.schedule.detect(frame.image, sweep), ""
        except Exception as exc:  # fail closed: any detector fault masks the whole frame
            return Detections.empty(), f"detector failed ({type(exc).__name__})"

    def stream(self, fps: float, stats: RunStats, lookahead_frames: int | None = None) -> StreamState:
        """Per-stream state (tracker, look-ahead) for feeding frames one at a time, as the live filter does
        (which sizes the look-ahead from its latency budget instead)."""
        seconds = self.settings.lookahead_seconds
        if lookahead_frames is None and seconds is None:
            lookahead = LookAhead(round(LOOKAHEAD_SECONDS * fps), fps, max_bytes=LOOKAHEAD_MIB * 2**20,
                                  min_frames=round(LOOKAHEAD_MIN_SECONDS * fps), policy=self.policy)
        else:
            lookahead = LookAhead(round(seconds * fps) if lookahead_frames is None else lookahead_frames, fps,
                                  policy=self.policy)
        return StreamState(self, fps, stats, lookahead)

    def plans(self, frames: Iterable[Frame], fps: float, stats: RunStats) -> Iterator[MaskPlan]:
        """Detect, track and look ahead; yields frames in order with every box to mask."""
        state = self.stream(fps, stats)
        for frame in frames:
            yield from state.push(frame)
        yield from state.flush()

    def regions(self, plan: MaskPlan, extra: Mapping[int, np.ndarray] | None = None) -> Regions:
        """Every box of every track, unless the recogniser's evidence shows that track's face clear in this very
        frame, plus any `extra` boxes forced onto this frame (e.g. faces a verifier found still clear)."""
        if plan.failure:
            return Regions.everything(plan.failure)
        keep = list(plan.boxes)
        if self.recogniser is not None:
            keep = [b for b, owner in zip(plan.boxes, plan.owners) if not self.recogniser.reveals(owner, plan.index)]
        if extra is not None and plan.frame.index in extra:
            keep.extend(np.asarray(extra[plan.frame.index], np.float32).reshape(-1, 4))
        boxes = np.array(keep, np.float32).reshape(-1, 4)
        return self.masker.regions(boxes, plan.frame.width, plan.frame.height)

    def run(self, frames: Iterable[Frame], sink: FrameSink, fps: float,
            on_frame: Callable[[FrameRecord], None] | None = None,
            extra: Mapping[int, np.ndarray] | None = None) -> RunStats:
        """Redact every frame into `sink`; on any error the sink is aborted and the error re-raised."""
        stats = RunStats()
        stop = threading.Event()
        decoded: queue.Queue = queue.Queue(maxsize=2)
        final: queue.Queue = queue.Queue(maxsize=2)

        def decode() -> None:
            it = iter(frames)
            while not stop.is_set():
                t0 = time.perf_counter()
                frame = next(it, _END)
                stats.seconds["decode"] += time.perf_counter() - t0
                _put(decoded, frame, stop)
                if frame is _END:
                    return

        def write() -> None:
            while True:
                plan = _get(final, stop)
                if plan is _END:
                    return
                t0 = time.perf_counter()
                regions = self.regions(plan, extra)
                image = self.masker.apply(plan.frame.image, regions)
                t1 = time.perf_counter()
                sink.write(plan.frame, image)
                stats.seconds["mask"] += t1 - t0
                stats.seconds["encode"] += time.perf_counter() - t1
                stats.frames += 1
                if stats.frames % TRIM_EVERY == 0:
                    _trim_heap()
                stats.whole_frame += int(regions.whole_frame)
                if on_frame is not None:
                    on_frame(FrameRecord(plan.frame.index, plan.frame.pts, sorted(set(plan.tracks)),
                                         regions.boxes.tolist(), regions.whole_frame, regions.reason))

        def incoming() -> Iterator[Frame]:
            while True:
                item = _get(decoded, stop)
                if item is _END:
                    return
                yield item

        stages = [_Stage("decode", decode, stop), _Stage("encode", write, stop)]
        for st in stages:
            st.start()
        try:
            for plan in self.plans(incoming(), fps, stats):
                interrupts.check()
                _put(final, plan, stop)
            _put(final, _END, stop)
        except BaseException:
            stop.set()
            raise
        finally:
            for st in stages:
                st.join()
            errors = [st.error for st in stages if st.error is not None]
            if errors or stop.is_set():
                sink.abort()
        if errors:
            err = errors[0]
            if isinstance(err, RedactorError):
                raise err
            raise ProcessingError(f"{type(err).__name__} in pipeline: {err}") from None
        sink.close()
        return stats
