"""The live filter: input -> detect/track -> look-ahead -> mask -> encode -> outputs, inside a latency budget.

Three threads share one lock-protected state:

- reader: decodes the input (reconnecting on loss) and notes when the camera
  took each frame (CaptureClock: the stream's timestamps anchored to its
  arrivals), on the filter's own clock: that time is the frame's age and its
  output pts, so output timestamps stay monotonic across input reconnects;
- worker: detection, tracking and look-ahead, oldest frame first; a frame that
  can no longer make its deadline is dropped (and counted), not processed late;
- writer: every few milliseconds sends each frame whose time is up, masked.

The latency budget L bounds everything: a frame leaves the look-ahead when it is
L minus the output margin old, so backward fill gets all the time the budget
leaves. Fail closed: if the worker is stuck in one frame for longer than the
stall budget (or has died), every frame goes out fully blurred until it recovers,
so the outputs stay alive and never show a clear face. While the input is down,
black frames keep the outputs alive.

Two clocks: ages and output timestamps count on the capture clock, while the
tracker is given each frame's place in the stream (index / fps) as its time, the
count the look-ahead paints back by. They differ when frames come faster than
real time (a file, the frames a reconnect's probe read ahead): stamped
milliseconds apart, a track looked milliseconds old to the tracker while the
look-ahead held frames from a second before it, and its boxes were painted back
over the wrong frames.

A frame leaves with its regions only through the `due` path, judged under the
lock against the sweeps of the state that held it (`_judge`); the worker waits
for room rather than let a full look-ahead push a frame out before it is due,
and a frame released any other way (the flush at a reconnect) goes out fully
blurred.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from redactor_video.pipeline import Pipeline, RunStats, StreamState
from redactor_video.stream.metrics import LatencyWindow, StreamMetrics
from redactor_video.stream.outputs import TIME_BASE, LiveEncoder, LiveEncodeSettings, PacketOutput
from redactor_video.stream.source import LiveSource
from redactor_video.types import Frame, MaskPlan

log = logging.getLogger("redactor.stream")

OUTPUT_MARGIN = 0.1  # seconds of the budget kept for masking, encoding and sending one frame
POLL = 0.005
SWEEP_MARGIN = 0.02  # seconds between a sweep's expected end and the deadline it must meet


@dataclass(frozen=True)
class LiveSettings:
    camera: str = "camera"
    latency_ms: int = 500
    fps: float = 25.0  # used until the input reports its own rate
    encode: LiveEncodeSettings = field(default_factory=LiveEncodeSettings)
    filler_after: float = 1.0  # seconds without input before black frames keep the outputs alive
    stats_every: float = 10.0  # seconds between summary log lines

    def __post_init__(self) -> None:
        if not 100 <= self.latency_ms <= 60_000:
            raise ValueError("--latency-ms must be between 100 and 60000")

    @property
    def hold(self) -> float:
        """How old a frame may get in the look-ahead before it must be sent."""
        return self.latency_ms / 1000 - OUTPUT_MARGIN

    @property
    def stall(self) -> float:
        """How long one frame's detection may take before frames go out fully blurred."""
        return self.latency_ms / 1000 - OUTPUT_MARGIN


class LiveFilter:
    """Runs one camera until `stop()`; `run()` blocks and returns the run's statistics."""

    def __init__(self, source: LiveSource, pipeline: Pipeline, outputs: list[PacketOutput],
                 settings: LiveSettings, metrics: StreamMetrics | None = None) -> None:
        if not outputs:
            raise ValueError("a live filter needs at least one output")
        self.source, self.pipeline, self.outputs, self.settings = source, pipeline, outputs, settings
        self.metrics = metrics or StreamMetrics()
        self.latencies = LatencyWindow()
        self.stats = RunStats()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._inbox: deque[Frame] = deque()
        self._bypass: deque[MaskPlan] = deque()
        self._ready: deque[MaskPlan] = deque()  # fail-closed plans that left the look-ahead before they were due
        self._t0 = time.monotonic()
        self._taken: dict[int, int] = {}  # frame index -> when the camera took it (pts on TIME_BASE), until sent
        self._state: StreamState | None = None
        self._held = 0  # slots in the state's look-ahead
        self._sweeps: deque[int] = deque()  # frames of the state's completed sweeps that a held frame may need
        self._ahead_upto = -1  # the latest frame read that came ahead of the stream's pace (CaptureClock.ahead)
        self._lost = False  # the input was lost since it last connected
        self._restarts: deque[int] = deque()  # the first frame of each connection after a loss
        self.took: dict[bool, float] = {}
        self._busy_since: float | None = None
        self._failures: deque[bool] = deque(maxlen=25)  # whether detection failed, for the last frames
        self._worker_dead = False
        self._stalled = False
        self._input_up = False
        self._last_input = time.monotonic()
        self._last_output = 0.0  # any frame, black keep-alive frames included
        self._last_frame_out = 0.0  # a camera frame
        self._last_pts = -1
        self._last_index = -1
        self._next_index = 0
        self._encoder = LiveEncoder(settings.encode, settings.fps)
        self._fps = settings.fps
        self.error: BaseException | None = None
        m, cam = self.metrics, settings.camera
        self._m = {
            "in": m.frames_in.labels(cam), "out": m.frames_out.labels(cam), "filler": m.filler.labels(cam),
            "latency": m.latency.labels(cam), "faces": m.faces.labels(cam), "tracks": m.tracks.labels(cam),
            "stalled": m.stalled.labels(cam), "input_up": m.up.labels(cam, "input"),
        }
        self._m["stalled"].set(0)
        self._m["input_up"].set(0)
        source.on_event = self.on_input_event
        for out in outputs:
            out.on_event = self.on_output_event(out.name)

    # ---- events from the source and the outputs -------------------------------------------------
    def on_input_event(self, name: str, detail: str) -> None:
        cam = self.settings.camera
        if name == "connected":
            with self._lock:  # called from the reader, before the connection's first frame
                if self._lost:
                    self._restarts.append(self._next_index)
                self._lost = False
            self._input_up = True
            self._m["input_up"].set(1)
            log.info("input connected", extra={"camera": cam, "event": "input_connected", "detail": detail})
            if self.source.fps and self._encoder.size is None:
                self._fps = self._encoder.fps = self.source.fps
            return
        if self._input_up:
            self.metrics.reconnects.labels(cam, "input").inc()
            with self._lock:
                self._lost = True
        self._input_up = False
        self._m["input_up"].set(0)
        log.warning("input lost; reconnecting", extra={"camera": cam, "event": f"input_{name}", "detail": detail})

    def on_output_event(self, side: str) -> Callable[[str, str], None]:
        gauge = self.metrics.up.labels(self.settings.camera, side)
        gauge.set(0)
        up = [False]

        def handle(name: str, detail: str) -> None:
            cam = self.settings.camera
            if name == "connected":
                up[0] = True
                gauge.set(1)
                log.info("output connected", extra={"camera": cam, "event": f"{side}_connected", "detail": detail})
                return
            if up[0]:
                self.metrics.reconnects.labels(cam, side).inc()
            up[0] = False
            gauge.set(0)
            log.warning("output problem", extra={"camera": cam, "event": f"{side}_{name}", "detail": detail})

        return handle

    # ---- health ---------------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict]:
        """Healthy while camera frames (not black keep-alive frames) go out through every output."""
        now = time.monotonic()
        p50, p95 = self.latencies.percentiles(50, 95)
        outputs = {o.name: bool(o.up) for o in self.outputs}
        input_up = self._input_up and now - self._last_input < 2.0
        failing = sum(self._failures) > len(self._failures) // 2 if self._failures else False
        detail = {
            "camera": self.settings.camera, "input_up": input_up, "outputs_up": outputs,
            "detector_stalled": self._stalled, "detector_failing": failing, "seconds_since_output": round(now - self._last_frame_out, 3)
            if self._last_frame_out else None, "latency_p50": p50, "latency_p95": p95,
        }
        ok = (input_up and all(outputs.values()) and not self._stalled and not failing
              and self._last_frame_out > 0 and now - self._last_frame_out < 2.0)
        return ok, detail

    # ---- threads --------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()

    def run(self) -> RunStats:
        self._warm_up_masks()
        threads = [threading.Thread(target=self._guard(self._read), name=f"{self.settings.camera}-read", daemon=True),
                   threading.Thread(target=self._guard(self._work, on_error=self._worker_died),
                                    name=f"{self.settings.camera}-detect", daemon=True)]
        for t in threads:
            t.start()
        try:
            self._write()
        finally:
            self._stop.set()
            for t in threads:
                t.join(timeout=self.settings.latency_ms / 1000 + 6.0)
            for out in self.outputs:
                out.close()
        if self.error is not None:
            raise self.error
        return self.stats

    def _warm_up_masks(self) -> None:
        """Load the mask kernels before the first frame, whose latency would otherwise pay for it."""
        frame = Frame(0, np.zeros((64, 64, 3), np.uint8))
        plan = MaskPlan(frame, (np.array([8, 8, 40, 40], np.float32),), (0,))
        self.pipeline.masker.apply(frame.image, self.pipeline.regions(plan))

    def _guard(self, body: Callable[[], None], on_error: Callable[[BaseException], None] | None = None
               ) -> Callable[[], None]:
        def run() -> None:
            try:
                body()
            except BaseException as exc:  # a thread's failure must reach the operator, never pass silently
                if on_error is not None:
                    on_error(exc)
                else:
                    self.error = exc
                    self.stop()
        return run

    def _worker_died(self, exc: BaseException) -> None:
        with self._lock:
            self._worker_dead = True
        log.error("detection thread failed; every frame is sent fully blurred",
                  extra={"camera": self.settings.camera, "event": "worker_failed", "detail": type(exc).__name__})

    def _read(self) -> None:
        for captured in self.source.frames(self._stop):
            self._last_input = time.monotonic()
            self._m["in"].inc()
            # At least 1 ms apart: frames decoded in a burst (a reconnect's probe) must not share a
            # timestamp in millisecond containers such as Matroska.
            pts = max(int(round((captured.taken - self._t0) / TIME_BASE)), self._last_pts + int(0.001 / TIME_BASE))
            self._last_pts = pts
            # Numbered by the filter and timed by the worker (see _work), not by the stream's timestamps.
            frame = Frame(self._next_index, captured.frame.image, source=self.settings.camera)
            self._next_index += 1
            with self._wake:
                self._taken[frame.index] = pts
                if captured.ahead:
                    self._ahead_upto = frame.index
                if self._stalled or self._worker_dead:
                    self._bypass.append(MaskPlan(frame, failure=self._fail_reason()))
                else:
                    self._inbox.append(frame)
                    limit = max(2, int(self.settings.latency_ms / 1000 * self._fps) + 1)
                    while len(self._inbox) > limit:
                        self._drop("behind", self._inbox.popleft().index)
                self._wake.notify_all()

    def _fail_reason(self) -> str:
        return "detection failed" if self._worker_dead else "detection stalled"

    def _drop(self, reason: str, index: int) -> None:
        self._taken.pop(index, None)
        self.metrics.dropped.labels(self.settings.camera, reason).inc()

    def _new_state(self) -> StreamState:
        return self.pipeline.stream(self._fps, self.stats,
                                    lookahead_frames=int(self.settings.latency_ms / 1000 * self._fps) + 1)

    def _work(self) -> None:
        with self._wake:
            while not self._inbox and not self._stop.is_set():
                self._wake.wait(0.1)
            first = self._inbox[0].image if self._inbox else None
        # Recent detection time of sweep and of cheap frames (moving average, first guess from the warm-up).
        # Both the samples and the estimates are capped, so one slow call (a stall that ended) cannot
        # make every later frame look too late to process.
        took = self.took = {True: 0.0, False: 0.0}
        if first is not None:
            took[True] = self.pipeline.warm_up(first)
        hold = self.settings.hold
        cap = {True: 0.75 * hold, False: 0.25 * hold}
        with self._lock:
            self._state = state = self._new_state()
        while not self._stop.is_set():
            with self._wake:
                # A full look-ahead waits for the writer to release its oldest frame when it is due, rather than
                # push it out early (see the module docstring).
                while True:
                    if self._stop.is_set():
                        return
                    if self._inbox and self._restarts and self._inbox[0].index >= self._restarts[0]:
                        state = self._restart_state(self._inbox[0].index)
                    if self._inbox and self._held < state.lookahead.holds(self._inbox[0]):
                        break
                    self._wake.wait(0.1)
                frame = self._inbox.popleft()
                started, arrival = time.monotonic(), self._arrival(frame.index)
                sweep_cost, cheap_cost = min(took[True], cap[True]), min(took[False], cap[False])
                # A frame too old for the sweep gets the cheap pass and the sweep moves to the next frame;
                # one too old even for that is dropped, never sent late. The sweep must also end before
                # the frame ahead of it is due, or that frame leaves with no sweep after it and has to go
                # out fully blurred.
                fits = started - arrival + sweep_cost + 1 / self._fps + SWEEP_MARGIN <= hold
                sweep = fits and state.next_is_sweep
                late = started - arrival + cheap_cost > hold
                if not late:
                    self._busy_since = started
            if late:
                self._drop("behind", frame.index)
                continue
            failures = self.stats.detector_failures
            counted = round(frame.index / state.fps / TIME_BASE)  # the tracker's clock (see the module docstring)
            released = state.push(Frame(frame.index, frame.image, counted, TIME_BASE, frame.source), self._lock,
                                  sweep=sweep)
            with self._lock:
                self._busy_since = None
                if state.last_sweep_index == frame.index:
                    self._sweeps.append(frame.index)
                self._held += 1 - len(released)
                # None, with the room waited for above; one would leave before it is due.
                released = [plan.failing("left the look-ahead early") for plan in released]
                self._ready.extend(released)
                self._m["tracks"].set(self.stats.tracks)
                self._failures.append(self.stats.detector_failures > failures)
            spent = min(time.monotonic() - started, hold)
            took[sweep] = 0.8 * took[sweep] + 0.2 * spent if took[sweep] else spent

    def _restart_state(self, first: int) -> StreamState:
        """Before frame `first`, the first of a connection after an input loss (called with the lock held):
        tracks from before the outage are stale, and one of them could swallow a face seen again, so that
        face's earlier frames would never be painted. Frames still held go out whole-masked; tracking starts
        afresh with a sweep. The restart goes by frame, not by when the loss was seen: an input read faster
        than real time (a file that loops) is lost and back while the worker is still on its earlier frames,
        which belong to the old tracks, and the new connection's must not."""
        while self._restarts and self._restarts[0] <= first:
            self._restarts.popleft()
        old = self._state
        old.lookahead.fail_held("input reconnected")
        self._ready.extend(old.flush())
        self._state = self._new_state()
        self._held = 0
        self._sweeps.clear()
        return self._state

    def _arrival(self, index: int) -> float:
        """When the camera took the frame, on our monotonic clock (see CaptureClock): ages count from it."""
        return self._t0 + self._taken[index] * float(TIME_BASE)

    def _judge(self, plans: list[MaskPlan]) -> list[MaskPlan]:
        """Called with the lock held, on the plans the state just released when due. Each keeps its regions
        only if a sweep that completed while it was held ran on it or on a frame at most the policy's backfill
        after it (as far as a first find is painted back at once), and if neither it nor any frame read
        after it came ahead of the stream's pace. Otherwise it goes fully blurred: a small face that
        entered on it is one only a sweep finds, and a sweep that ends after the frame has left (start-up,
        a reconnect, the worker behind, the input gone quiet), or that runs further on, cannot protect it.
        Nor can a sweep over frames that came in a burst (an input read faster than real time, the frames
        a reconnect's probe read ahead): the worker then takes every few of them, a face walks further
        between two sweeps than a track follows, and a faint find is never confirmed in time."""
        state = self._state
        sweeps = (*self._sweeps, state.last_sweep_index)
        reach = state.lookahead.policy.backfill
        judged = []
        for plan in plans:
            if state.last_sweep_index < 0:
                plan = plan.failing("no sweep yet")
            elif self._ahead_upto >= plan.index:
                plan = plan.failing("input faster than real time")
            elif not any(0 <= (s - plan.index) / state.lookahead.fps <= reach for s in sweeps):
                plan = plan.failing("no sweep after it in time")
            judged.append(plan)
        while plans and self._sweeps and self._sweeps[0] < plans[-1].index:  # no later frame needs those
            self._sweeps.popleft()
        return judged

    def _write(self) -> None:
        next_stats = time.monotonic() + self.settings.stats_every
        # Fail-closed frames wait like detected ones, so neither overtakes the other.
        def due(index: int) -> bool:
            return now - self._arrival(index) >= self.settings.hold

        while not self._stop.is_set():
            now = time.monotonic()
            with self._wake:
                self._check_stall(now)
                batch = list(self._ready)
                self._ready.clear()
                if self._state is not None:
                    released = self._judge(self._state.due(due))
                    self._held -= len(released)
                    batch += released
                    if released:
                        self._wake.notify_all()  # the worker may be waiting for room
                while self._bypass and due(self._bypass[0].index):
                    batch.append(self._bypass.popleft())
                sends = [(slot, self._taken.pop(slot.index)) for slot in sorted(batch, key=lambda s: s.index)]
            for slot, pts in sends:
                self._send(slot, pts)
            if not batch:
                self._fill(now)
                time.sleep(POLL)
            if now >= next_stats:
                self._log_stats()
                next_stats = now + self.settings.stats_every

    def _check_stall(self, now: float) -> None:
        """Called with the lock held: enter or leave fail-closed mode."""
        stuck = self._worker_dead or (self._busy_since is not None and now - self._busy_since > self.settings.stall)
        if stuck and not self._stalled:
            self._stalled = True
            self._m["stalled"].set(1)
            self._bypass.extend(MaskPlan(f, failure=self._fail_reason()) for f in self._inbox)
            self._inbox.clear()
            if self._state is not None:
                self._state.lookahead.fail_held(self._fail_reason())
            log.error("detection stalled; sending fully blurred frames",
                      extra={"camera": self.settings.camera, "event": "detector_stalled"})
        elif self._stalled and not stuck:
            self._stalled = False
            self._m["stalled"].set(0)
            log.warning("detection recovered", extra={"camera": self.settings.camera, "event": "detector_recovered"})

    def _send(self, slot: MaskPlan, pts: int) -> None:
        """Mask and send one frame; `pts`: when the camera took it, on the filter's clock."""
        taken = self._t0 + pts * float(TIME_BASE)
        if slot.index <= self._last_index:  # overtaken by fail-closed frames while detection was stuck
            self._drop("stale", slot.index)
            return
        self._last_index = slot.index
        if time.monotonic() - taken > self.settings.latency_ms / 1000:
            # Masking and encoding fell behind (CPU starved): skip rather than add latency.
            self._drop("late", slot.index)
            return
        frame = slot.frame
        regions = self.pipeline.regions(slot)
        image = self.pipeline.masker.apply(frame.image, regions)
        self._emit(image, pts)
        self._last_frame_out = self._last_output
        self._m["faces"].set(len(regions.boxes))
        if regions.whole_frame:
            self.metrics.fail_closed.labels(self.settings.camera, slot.failure or regions.reason or "unknown").inc()
            self.stats.whole_frame += 1
        latency = time.monotonic() - taken
        self._m["latency"].observe(latency)
        self.latencies.add(latency)
        self.stats.frames += 1

    def _emit(self, image: np.ndarray, pts: int) -> None:
        keyframe = any(o.wants_keyframe for o in self.outputs)
        packets = self._encoder.encode(image, pts, keyframe=keyframe)
        for out in self.outputs:
            out.send(packets, self._encoder.size, self._fps)
        self._m["out"].inc()
        self._last_output = time.monotonic()

    def _fill(self, now: float) -> None:
        """Input down: a black frame once a second keeps the outputs' sessions alive."""
        quiet = max(self.settings.filler_after, self.settings.latency_ms / 1000 + 0.5)
        if self._encoder.size is None or now - self._last_input < quiet:
            return
        if now - self._last_output < 1.0:
            return
        w, h = self._encoder.size
        self._emit(np.zeros((h, w, 3), np.uint8), int(round((now - self._t0) / TIME_BASE)))
        self._m["filler"].inc()

    def _log_stats(self) -> None:
        p50, p95, p99 = self.latencies.percentiles(50, 95, 99)
        log.info("stats", extra={"camera": self.settings.camera, "event": "stats", "frames_out": self.stats.frames,
                                 "fail_closed": self.stats.whole_frame, "tracks": self.stats.tracks,
                                 "latency_p50": p50, "latency_p95": p95, "latency_p99": p99,
                                 "sweep_ms": round(1000 * self.took.get(True, 0)),
                                 "cheap_ms": round(1000 * self.took.get(False, 0))})
