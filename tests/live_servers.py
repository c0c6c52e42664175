"""Real RTSP peers for the live-filter tests: a fake IP camera (GStreamer) and a fake VMS (FFmpeg), as subprocesses.

Both run from Debian packages, not the venv (see .ci/run): FakeCamera needs
/usr/bin/python3 with python3-gi and gir1.2-gst-rtsp-server-1.0, FakeVMS needs
/usr/bin/ffmpeg. Each logs to temp files so a failure can show what the server said,
and each is a context manager that stops its process however the block ends.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

import av
import numpy as np

from tests.helpers import wait_for

SYSTEM_PYTHON = Path("/usr/bin/python3")
FFMPEG = Path("/usr/bin/ffmpeg")
CAMERA_SCRIPT = Path(__file__).resolve().parent / "servers" / "rtsp_camera.py"
START_TIMEOUT = 20.0  # seconds; a cold GStreamer registry alone can take several on a loaded 2-core machine
STOP_TIMEOUT = 10.0


class ServerError(RuntimeError):
    """A test server did not start, or died; the message ends with its stderr."""


def missing_servers() -> list[str]:
    """What this machine lacks to run the servers (empty when both can run), for a skip reason outside CI."""
    missing = []
    if not FFMPEG.is_file():
        missing.append(f"{FFMPEG} (apt: ffmpeg)")
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    if not SYSTEM_PYTHON.is_file() or subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode:
        missing.append(f"{SYSTEM_PYTHON} with GstRtspServer (apt: python3-gi gir1.2-gst-rtsp-server-1.0)")
    return missing


def free_port() -> int:
    """A TCP port nothing listens on now (the OS's pick; another process could still take it before we bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    """Whether a socket listens on this IPv4 port, read from /proc: probing with a connection would use up
    the one session an FFmpeg listener accepts."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: TCP_LISTEN
            return True
    return False


def make_camera_clip(path: Path, frames: Sequence[np.ndarray], fps: int = 25) -> Path:
    """Encode RGB frames as a camera would: H.264 without B-frames, an IDR every second and nowhere else, MP4.

    FakeCamera serves this H.264 untouched, so these are the exact pictures a client decodes.
    """
    h, w = frames[0].shape[:2]
    with av.open(str(path), mode="w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.time_base = video.codec_context.time_base = Fraction(1, fps)
        video.gop_size = fps
        video.options = {"tune": "zerolatency", "bf": "0", "profile": "baseline", "sc_threshold": "0"}
        for i, image in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            out.mux(video.encode(vf))
        out.mux(video.encode(None))
    return path


class _Server(ABC):
    """One server subprocess with its stdout and stderr in temp files; a context manager for one use."""

    name = "server"

    def __init__(self) -> None:
        self._logs = tempfile.TemporaryDirectory(prefix=f"redactor-{self.name}-")
        self._proc: subprocess.Popen[bytes] | None = None

    def stderr_tail(self, lines: int = 25) -> str:
        path = Path(self._logs.name) / "stderr"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _stdout(self) -> str:
        return (Path(self._logs.name) / "stdout").read_text(errors="replace")

    def _spawn(self, argv: Sequence[str | Path], ready: Callable[[], bool]) -> None:
        """Start the process and wait until `ready()`; on failure nothing is left running."""
        if self._proc is not None:
            raise ServerError(f"{self.name} already started")
        logs = Path(self._logs.name)
        with open(logs / "stdout", "wb") as out, open(logs / "stderr", "wb") as err:
            self._proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        proc = self._proc
        try:
            wait_for(lambda: ready() or proc.poll() is not None, START_TIMEOUT)
        except TimeoutError:
            self._halt(signal.SIGTERM)
            raise ServerError(f"{self.name} not ready after {START_TIMEOUT:.0f} s:\n{self.stderr_tail()}") from None
        if not ready():
            self._proc = None
            raise ServerError(f"{self.name} exited with code {proc.returncode}:\n{self.stderr_tail()}")

    def _halt(self, sig: signal.Signals) -> None:
        """Ask the process to end with `sig`; kill it if it has not ended after STOP_TIMEOUT."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    @abstractmethod
    def start(self) -> Self: ...

    @abstractmethod
    def stop(self) -> object: ...

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        self._logs.cleanup()


class FakeCamera(_Server):
    """An IP camera at rtsp://127.0.0.1:PORT/PATH looping `clip` in real time (tests/servers/rtsp_camera.py).

    The clip must have no B-frames (make_camera_clip's are fine). With `user` and
    `password` it answers 401 to clients without them, as cameras do.
    """

    name = "camera"

    def __init__(self, clip: Path, port: int | None = None, path: str = "/cam", user: str | None = None,
                 password: str | None = None, loop: bool = True) -> None:
        if (user is None) != (password is None):
            raise ValueError("user and password go together")
        super().__init__()
        self.clip, self.port, self.path = Path(clip), port or free_port(), "/" + path.lstrip("/")
        self.user, self.password, self.loop = user, password, loop

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    @property
    def url_with_credentials(self) -> str:
        """The URL with user:password in it (the URL alone when the camera has no credentials)."""
        if self.user is None or self.password is None:
            return self.url
        return f"rtsp://{quote(self.user, safe='')}:{quote(self.password, safe='')}@127.0.0.1:{self.port}{self.path}"

    def start(self) -> Self:
        argv: list[str | Path] = [SYSTEM_PYTHON, CAMERA_SCRIPT, "--clip", self.clip, "--port", str(self.port),
                                  "--path", self.path]
        if self.user is not None and self.password is not None:
            argv += ["--user", self.user, "--password", self.password]
        if not self.loop:
            argv.append("--no-loop")
        self._spawn(argv, lambda: "READY" in self._stdout())
        return self

    def stop(self) -> None:
        self._halt(signal.SIGTERM)

    def restart(self) -> None:
        """The camera drops every client and comes back on the same URL, its clip from the start."""
        self.stop()
        self.start()


class FakeVMS(_Server):
    """A VMS ingest at rtsp://127.0.0.1:PORT/PATH: an FFmpeg RTSP listener recording what one publisher sends.

    FFmpeg's listen mode takes exactly one publisher session: when that publisher
    disconnects, FFmpeg finalises the output and exits (`wait_closed()`), and a
    reconnecting publisher is refused until `restart()`, which listens again on the
    same URL into a new file. The stream is copied as sent, which needs a publisher
    without B-frames (FFmpeg's RTSP input leaves their timestamps unset and the MKV
    copy fails); `reencode=True` records lossless H.264 instead, for any publisher.
    """

    name = "vms"

    def __init__(self, out: Path, port: int | None = None, path: str = "/ingest", reencode: bool = False) -> None:
        super().__init__()
        self.out, self.port, self.path, self.reencode = Path(out), port or free_port(), "/" + path.lstrip("/"), reencode
        self.outputs = [self.out]

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    def start(self) -> Self:
        codec = ["-c:v", "libx264", "-qp", "0", "-preset", "ultrafast"] if self.reencode else ["-c", "copy"]
        argv = [FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-rtsp_flags", "listen", "-i", self.url,
                *codec, "-y", self.out]
        self._spawn(argv, lambda: listening(self.port))
        return self

    def wait_closed(self, timeout: float = STOP_TIMEOUT) -> Path:
        """Wait for FFmpeg to finish on its own after its publisher disconnected; return the file.

        Call this rather than stop() once the publisher has gone: FFmpeg may still be
        probing or flushing, and stop()'s SIGINT would cut that short, file unwritten.
        """
        proc = self._proc
        if proc is None:
            raise ServerError("vms not started")
        try:
            wait_for(lambda: proc.poll() is not None, timeout)
        except TimeoutError:
            raise ServerError(f"vms still recording after {timeout:.0f} s:\n{self.stderr_tail()}") from None
        self._proc = None
        if proc.returncode:
            raise ServerError(f"vms exited with code {proc.returncode}:\n{self.stderr_tail()}")
        return self.out

    def stop(self) -> Path:
        """End the recording now (SIGINT, so FFmpeg writes the file's index) and return the file."""
        self._halt(signal.SIGINT)
        return self.out

    def restart(self) -> Path:
        """Stop, then listen again on the same URL into `<stem>.<n><suffix>` (n = 1, 2, ...); returns the new file."""
        self.stop()
        first = self.outputs[0]
        self.out = first.with_name(f"{first.stem}.{len(self.outputs)}{first.suffix}")
        self.outputs.append(self.out)
        return self.start().out
