"""Helpers for the inline-filter tests: a stamped real-face camera clip, the filter as a real process, and checks.

Every camera frame carries its own number in a face-free strip under the scene
(a row of black and white blocks), so a frame the VMS received can be matched to
the exact picture the camera sent, whatever the filter dropped or re-timed.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import av
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.score import compare_face
from benchmarks.synth import ClipSpec, FaceSpec, GTBox, render_frames
from tests.helpers import grey, wait_for
from tests.live_servers import make_camera_clip

REDACTOR = [str(Path(sys.executable).with_name("redactor"))]

# ---------------------------------------------------------------- the stamped clip

BITS = 12
INDEX_BITS = 8  # frame numbers 0-255; the other 4 blocks are a check code
STRIP = 40  # px under the scene
MIN_FACE = 24.0  # px: faces at least this wide (and half visible) must be protected
MIN_VISIBLE = 0.5


def _code(index: int) -> list[int]:
    check = (7 * index + 3) % (1 << (BITS - INDEX_BITS))
    value = index | check << INDEX_BITS
    return [(value >> b) & 1 for b in range(BITS)]


def stamp(scene: np.ndarray, index: int) -> np.ndarray:
    """The scene with a strip of BITS blocks under it, white for 1, black for 0, saying `index`."""
    w = scene.shape[1]
    strip = np.full((STRIP, w, 3), 128, np.uint8)
    block = w // BITS
    for b, bit in enumerate(_code(index)):
        strip[4:-4, b * block + 4:(b + 1) * block - 4] = 255 if bit else 0
    return np.vstack([scene, strip])


def read_stamp(image: np.ndarray) -> int | None:
    """The frame number stamped into a picture, or None when the strip does not say one clearly
    (a black filler frame, a frame blurred whole)."""
    h, w = image.shape[:2]
    block = w // BITS
    if block <= 20 or h <= STRIP:  # too small to carry a stamp
        return None
    strip = image[h - STRIP + 10:h - 10].astype(np.float32).mean(axis=2)
    levels = np.array([strip[:, b * block + 10:(b + 1) * block - 10].mean() for b in range(BITS)])
    if np.any((levels > 70) & (levels < 185)):
        return None
    bits = (levels >= 128).astype(int)
    index = int(sum(int(bit) << b for b, bit in enumerate(bits[:INDEX_BITS])))
    return index if list(bits) == _code(index) else None


def scene_spec(fps: int = 25, n_frames: int = 75, seed: int = 0) -> ClipSpec:
    """640x320, three real faces 36-90 px moving over a panning photo, none near the bottom edge
    (a mask 1.5 times a face's size must not reach the stamp strip)."""
    faces = (
        FaceSpec("obama", 70, 80, ((90, 110), (250, 130)), 0, n_frames, (0, 6), (1.0, 0.9)),
        FaceSpec("biden", 90, 84, ((520, 150), (430, 140)), 0, n_frames, (-4, 0)),
        FaceSpec("astronaut", 36, 40, ((330, 70), (380, 90)), 0, n_frames, 0, (0.9, 1.1)),
    )
    return ClipSpec(640, 320, fps, n_frames, faces, seed=seed)


@dataclass(frozen=True)
class StampedClip:
    """The camera's clip on disk, the exact pictures a client decodes from it, and each frame's faces."""

    path: Path
    frames: list[np.ndarray]
    boxes: list[list[GTBox]]
    fps: int

    def faces_that_count(self, index: int) -> list[GTBox]:
        return [b for b in self.boxes[index] if b.face_width >= MIN_FACE and b.visible_fraction >= MIN_VISIBLE]


def make_stamped_clip(path: Path, spec: ClipSpec, palindrome: bool = False) -> StampedClip:
    """Render `spec`, stamp every frame with its place in the clip, and encode it as a camera would.

    A camera loops its clip, and at the loop point every face jumps back to where it started, as if a new
    person had stepped in. With `palindrome` the clip plays forward and then back, so the loop is seamless
    and no face ever appears from nowhere mid-stream.
    """
    rendered = list(render_frames(spec))
    if palindrome:
        rendered = rendered + rendered[-2:0:-1]
    make_camera_clip(path, [stamp(rgb, i) for i, (rgb, _) in enumerate(rendered)], fps=spec.fps)
    with av.open(str(path)) as container:
        decoded = [vf.to_ndarray(format="rgb24") for vf in container.decode(video=0)]
    if [read_stamp(f) for f in decoded] != list(range(len(rendered))):
        raise AssertionError("the stamp does not survive the camera's own encoding")
    return StampedClip(path, decoded, [boxes for _, boxes in rendered], spec.fps)


# ---------------------------------------------------------------- checking what came out


@dataclass(frozen=True)
class Received:
    """A recording as decoded: frames, their pts in seconds, and the source frame each one shows."""

    frames: list[np.ndarray]
    seconds: list[float]
    sources: list[int | None]

    @property
    def stamped(self) -> int:
        return sum(s is not None for s in self.sources)

    @property
    def black(self) -> int:
        """Filler frames: black all over."""
        return sum(float(f.mean()) < 8 for f in self.frames)


def read_received(path: Path) -> Received:
    frames, seconds = [], []
    with av.open(str(path)) as container:
        for vf in container.decode(video=0):
            frames.append(vf.to_ndarray(format="rgb24"))
            seconds.append(float(vf.pts * vf.time_base) if vf.pts is not None else float("nan"))
    return Received(frames, seconds, [read_stamp(f) for f in frames])


def clear_face_frames(clip: StampedClip, received: Received) -> list[str]:
    """Every (received frame, face) whose detail survived, by benchmarks.score's rule.

    A frame whose stamp cannot be read (blurred whole, or black) is checked against
    every frame of the clip: no face of any of them may be clear in it.
    """
    clear = []
    for k, (image, source) in enumerate(zip(received.frames, received.sources)):
        candidates = range(len(clip.frames)) if source is None else [source]
        g = grey(image)
        for i in candidates:
            o = grey(clip.frames[i])
            for b in clip.faces_that_count(i):
                if not compare_face(o, g, b.box, b.face_width).protected:
                    clear.append(f"received frame {k} (source {source}): face {b.track_id} "
                                 f"({b.face_width:.0f} px) clear as in source frame {i}")
    return clear



def run_redactor(*args: str | Path, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A short `redactor` run (one that must end by itself), its output captured."""
    return subprocess.run([*REDACTOR, *(str(a) for a in args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


# ---------------------------------------------------------------- the filter as a real process


def get(url: str, timeout: float = 10.0) -> tuple[int, str]:
    """(status, body) of an HTTP GET; error statuses are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text as {(sample name, sorted labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


class FilterProcess:
    """`redactor ARGS --metrics 127.0.0.1:PORT` as a subprocess, its stderr in a temp file; a context manager
    that always ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, args: Sequence[str | Path], metrics_port: int | None = None, cwd: Path | None = None) -> None:
        self.args = [str(a) for a in args]
        self.metrics_port, self.cwd = metrics_port, cwd
        self._logs = tempfile.TemporaryDirectory(prefix="redactor-filter-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def start(self) -> Self:
        with open(Path(self._logs.name) / "stderr", "wb") as err, open(Path(self._logs.name) / "stdout", "wb") as out:
            self.proc = subprocess.Popen([*REDACTOR, *self.args], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         cwd=self.cwd)
        return self

    @property
    def stderr(self) -> str:
        return (Path(self._logs.name) / "stderr").read_text(errors="replace")

    @property
    def stdout(self) -> str:
        return (Path(self._logs.name) / "stdout").read_text(errors="replace")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, body = get(f"{self.base}/metrics")
        if status != 200:
            raise AssertionError(f"/metrics answered {status}")
        return metric_samples(body)

    def metrics_text(self) -> str:
        return get(f"{self.base}/metrics")[1]

    def health_text(self) -> tuple[int, str]:
        return get(f"{self.base}/healthz")

    def health(self) -> tuple[int, dict]:
        status, body = self.health_text()
        return status, json.loads(body)

    def value(self, name: str, **labels: str) -> float:
        """One sample's value (0 when the labelled series does not exist yet)."""
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)

    def sent_normally(self, camera: str) -> float:
        """Camera frames sent with only their faces masked: frames out less black filler and fully blurred ones."""
        m = self.metrics()
        blurred = sum(v for (name, labels), v in m.items()
                      if name == "redactor_fail_closed_frames_total" and ("camera", camera) in labels)
        return (m.get(("redactor_frames_out_total", (("camera", camera),)), 0.0)
                - m.get(("redactor_filler_frames_total", (("camera", camera),)), 0.0) - blurred)

    def wait_metric(self, name: str, at_least: float, timeout: float, **labels: str) -> None:
        self._wait(lambda: self.value(name, **labels), f"{name}{labels}", at_least, timeout)

    def wait_normal(self, at_least: float, timeout: float, camera: str) -> None:
        """Until `at_least` frames went out normally, however long a loaded machine takes to send them (the
        fail-closed rules blur more frames there: sweeps not done in time); never, when every frame goes out
        fully blurred or none goes out at all."""
        self._wait(lambda: self.sent_normally(camera), f"frames sent normally by {camera}", at_least, timeout)

    def _wait(self, read: Callable[[], float], what: str, at_least: float, timeout: float) -> None:
        def reached() -> bool:
            if not self.running():
                raise AssertionError(f"filter exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                return read() >= at_least
            except OSError:  # the ops server is not up yet
                return False
        try:
            wait_for(reached, timeout)
        except TimeoutError:
            raise AssertionError(f"{what} < {at_least} after {timeout:.0f} s:\n{self.tail()}") from None

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM and the exit code; AssertionError (after a kill) when it does not end within `timeout`."""
        proc = self.proc
        if proc is None:
            raise AssertionError("filter not started")
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError(f"filter still running {timeout:.0f} s after SIGTERM:\n{self.tail()}") from None
        return proc.returncode

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.stderr.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:  # the test failed before it could stop the filter
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._logs.cleanup()


# ---------------------------------------------------------------- network trouble


class TcpRelay:
    """127.0.0.1:`port` forwarded to 127.0.0.1:`upstream`; `pause()` stops every byte, both ways, without closing
    anything, as a cut cable or a dead switch does (no FIN, no RST), until `resume()`."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}{path}"

    def start(self) -> Self:
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()
        return self

    def pause(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
                self._flowing.wait()
                upstream = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
                upstream.settimeout(None)
            except OSError:
                if self._closed:
                    return
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), name="relay-pump", daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                self._flowing.wait()
                data = src.recv(65536)
                if not data:
                    break
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._closed = True
        self._server.close()
        with self._lock:
            for s in self._sockets:
                s.close()
        self._flowing.set()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
