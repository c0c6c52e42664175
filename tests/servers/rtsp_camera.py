"""A fake IP camera for the live-filter tests: an H.264 MP4 clip served over RTSP, in real time, looping forever.

Run by Debian's /usr/bin/python3 (python3-gi, gir1.2-gst-rtsp-server-1.0; the project venv has no `gi`):

    /usr/bin/python3 tests/servers/rtsp_camera.py --clip clip.mp4 --port 8554 --path /cam

The clip's H.264 is served as it is (no re-encode), so the client decodes exactly
what was written. The clip is read once into memory and replayed with every loop's
timestamps shifted by the clip's length, so pts keep rising across loops as a
camera's do. It must have no B-frames (encode with bf=0, as cameras do): each frame
is sent with dts = pts, and a clip with B-frames is refused. The media is shared
like a camera's: a client that joins while another watches gets the running stream
from its next IDR, not the clip's start. Clients may use TCP or UDP. Prints one
"READY" line once listening; exits 0 on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import dataclass

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ROLE = "camera-user"


class ClipError(Exception):
    """The clip cannot be served as a camera stream."""


@dataclass(frozen=True)
class AccessUnit:
    """One frame of the clip, kept as plain data so every loop pushes a fresh buffer."""

    data: bytes
    pts: int
    duration: int
    delta: bool


def read_clip(path: str) -> tuple[Gst.Caps, list[AccessUnit], int]:
    """The clip's H.264 access units (SPS/PPS before every IDR, so late joiners can decode), caps and loop length (ns)."""
    pipeline = Gst.parse_launch(
        "filesrc name=src ! qtdemux ! h264parse config-interval=-1"
        " ! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=sink sync=false")
    pipeline.get_by_name("src").set_property("location", path)
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    samples = []
    while (sample := sink.emit("pull-sample")) is not None:
        samples.append(sample)
    error = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if error is not None:
        raise ClipError(f"{path}: {error.parse_error()[0].message}")
    if not samples:
        raise ClipError(f"{path}: no H.264 video")
    buffers = [s.get_buffer() for s in samples]
    if any(b.dts != Gst.CLOCK_TIME_NONE and b.dts != b.pts for b in buffers):
        raise ClipError(f"{path}: has B-frames (dts != pts); cameras send none, encode with bf=0")
    start = buffers[0].pts
    units = [AccessUnit(b.extract_dup(0, b.get_size()), b.pts - start, b.duration,
                        b.has_flags(Gst.BufferFlags.DELTA_UNIT)) for b in buffers]
    return samples[0].get_caps(), units, units[-1].pts + units[-1].duration


class Feeder:
    """Pushes the clip into one media's appsrc on demand; the sinks' clock sync paces it to real time."""

    def __init__(self, appsrc: Gst.Element, units: list[AccessUnit], period: int, loop: bool) -> None:
        self.units, self.period, self.loop = units, period, loop
        self.index = 0
        appsrc.connect("need-data", self.need_data)

    def need_data(self, appsrc: Gst.Element, _length: int) -> None:
        turn, i = divmod(self.index, len(self.units))
        if turn and not self.loop:
            appsrc.emit("end-of-stream")
            return
        unit = self.units[i]
        buf = Gst.Buffer.new_wrapped(unit.data)
        buf.pts = buf.dts = unit.pts + turn * self.period
        buf.duration = unit.duration
        if unit.delta:
            buf.set_flags(Gst.BufferFlags.DELTA_UNIT)
        appsrc.emit("push-buffer", buf)
        self.index += 1


class CameraFactory(GstRtspServer.RTSPMediaFactory):
    """One shared media per camera: every client watching sees the same live position, as with a real camera."""

    def __init__(self, caps: Gst.Caps, units: list[AccessUnit], period: int, loop: bool) -> None:
        super().__init__()
        self.caps, self.units, self.period, self.loop = caps, units, period, loop
        # SPS/PPS travel in-band, once per IDR access unit (read_clip). rtph264pay's own
        # config-interval=-1 would repeat them before every slice of a multi-slice IDR
        # (x264's zerolatency slices), and FFmpeg then decodes each slice as a frame.
        self.set_launch("( appsrc name=src format=time ! rtph264pay name=pay0 pt=96 )")
        self.set_shared(True)
        self.connect("media-configure", self.configure)

    def configure(self, _factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_by_name("src")
        appsrc.set_property("caps", self.caps)
        Feeder(appsrc, self.units, self.period, self.loop)  # kept alive by its need-data handler


def add_basic_auth(server: GstRtspServer.RTSPServer, factory: GstRtspServer.RTSPMediaFactory,
                   user: str, password: str) -> None:
    """Require these credentials; without them the server answers 401 as a camera does."""
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, ROLE)
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    factory.add_role_from_structure(Gst.Structure.new_from_string(
        f"{ROLE}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", required=True, help="H.264 MP4 without B-frames")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/cam", help="mount point, e.g. /cam")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--no-loop", action="store_true", help="end the stream after one pass")
    args = parser.parse_args(argv)
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")

    Gst.init(None)
    try:
        caps, units, period = read_clip(args.clip)
    except ClipError as e:
        print(f"rtsp_camera: {e}", file=sys.stderr)
        return 2
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = CameraFactory(caps, units, period, loop=not args.no_loop)
    if args.user is not None:
        add_basic_auth(server, factory, args.user, args.password)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"rtsp_camera: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 3

    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    print("READY", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
