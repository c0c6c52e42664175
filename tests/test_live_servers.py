"""The live-filter tests' RTSP peers are real: PyAV reads the fake camera and publishes to the fake VMS.

Skipped only outside CI on a machine without the Debian packages; in CI a missing
server is a failure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.live_servers import FakeCamera, FakeVMS, make_camera_clip, missing_servers

MISSING = missing_servers()
pytestmark = pytest.mark.skipif(bool(MISSING) and not os.environ.get("CI"),
                                reason=f"live test servers need {', '.join(MISSING)}")

FPS = 25
CLIP_FRAMES = 25  # one second, so every read of 50+ frames crosses the loop point


def shade(i: int) -> tuple[int, int, int]:
    """Frame i's solid colour; its red channel says which clip frame a decoded picture is."""
    return 20 + 9 * i, 100, 200


def clip_index(rgb: np.ndarray) -> int:
    """Which clip frame this decoded picture is, from its mean colour; fails on a picture the clip never had."""
    mean = rgb.reshape(-1, 3).mean(axis=0)
    i = round((mean[0] - 20) / 9)
    assert 0 <= i < CLIP_FRAMES and np.abs(mean - shade(i)).max() < 4.5, f"unknown picture, mean colour {mean}"
    return i


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames = [np.full((240, 320, 3), shade(i), np.uint8) for i in range(CLIP_FRAMES)]
    return make_camera_clip(tmp_path_factory.mktemp("camera") / "clip.mp4", frames, fps=FPS)


@pytest.fixture
def camera(clip: Path) -> Iterator[FakeCamera]:
    with FakeCamera(clip) as cam:
        yield cam


def read_frames(url: str, n: int, transport: str = "tcp") -> list[av.VideoFrame]:
    with av.open(url, options={"rtsp_transport": transport}, timeout=5) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame)
            if len(frames) == n:
                return frames
    raise AssertionError(f"stream ended after {len(frames)} frames")


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_camera_serves_the_clip_in_real_time(camera: FakeCamera, transport: str) -> None:
    began = time.monotonic()
    frames = read_frames(camera.url, 50, transport)
    elapsed = time.monotonic() - began
    indices = [clip_index(f.to_ndarray(format="rgb24")) for f in frames]
    assert all(b == (a + 1) % CLIP_FRAMES for a, b in zip(indices, indices[1:])), indices
    assert elapsed > 0.75 * 49 / FPS, f"50 frames in {elapsed:.2f} s: not paced like a camera"


def test_camera_with_credentials_refuses_clients_without_them(clip: Path) -> None:
    with FakeCamera(clip, user="operator", password="p@ss:w/rd") as cam:
        assert "operator" not in cam.url
        with pytest.raises(av.HTTPUnauthorizedError):
            av.open(cam.url, options={"rtsp_transport": "tcp"}, timeout=5)
        with pytest.raises(av.HTTPUnauthorizedError):
            av.open(cam.url.replace("rtsp://", "rtsp://operator:wrong@"), options={"rtsp_transport": "tcp"},
                    timeout=5)
        assert len(read_frames(cam.url_with_credentials, 5)) == 5


def test_camera_loops_with_rising_timestamps(camera: FakeCamera) -> None:
    frames = read_frames(camera.url, 2 * CLIP_FRAMES + 10)
    indices = [clip_index(f.to_ndarray(format="rgb24")) for f in frames]
    assert indices.count(0) >= 2, indices
    assert all(b == (a + 1) % CLIP_FRAMES for a, b in zip(indices, indices[1:])), indices
    # FFmpeg's RTSP demuxer gives the very first frame no pts; every later one has one.
    seconds = [float(f.pts * f.time_base) for f in frames[1:]]
    steps = np.diff(seconds)
    assert np.allclose(steps, 1 / FPS, atol=1e-3), seconds


def test_camera_without_loop_ends_after_the_clip(clip: Path) -> None:
    with FakeCamera(clip, loop=False) as cam, av.open(cam.url, options={"rtsp_transport": "tcp"}, timeout=5) as c:
        assert [clip_index(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)] == list(range(CLIP_FRAMES))


def test_camera_restart_ends_the_session_and_serves_again_on_the_same_url(camera: FakeCamera) -> None:
    url = camera.url
    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=5) as container:
        received = 0
        for _ in container.decode(video=0):
            received += 1
            if received == 10:
                camera.restart()
    # A dropped camera reads as a clean end of stream to PyAV, not as an error.
    assert received < 10 + CLIP_FRAMES
    assert camera.url == url
    assert len(read_frames(url, 10)) == 10


def publish(url: str, colours: list[tuple[int, int, int]]) -> None:
    """Send one solid frame per colour over RTSP (TCP) as the live filter's output would."""
    with av.open(url, mode="w", format="rtsp", options={"rtsp_transport": "tcp"}) as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        video.options = {"tune": "zerolatency"}
        for i, colour in enumerate(colours):
            vf = av.VideoFrame.from_ndarray(np.full((240, 320, 3), colour, np.uint8), format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, FPS)
            out.mux(video.encode(vf))
        out.mux(video.encode(None))


def mean_colours(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.array([f.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0) for f in container.decode(video=0)])


@pytest.mark.parametrize("reencode", [False, True])
def test_vms_records_what_a_publisher_sends(tmp_path: Path, reencode: bool) -> None:
    red, blue = (200, 40, 60), (30, 60, 210)
    with FakeVMS(tmp_path / "ingest.mkv", reencode=reencode) as vms:
        publish(vms.url, [red] * 25 + [blue] * 25)
        recorded = vms.wait_closed()  # listen mode ends with its one publisher
    colours = mean_colours(recorded)
    assert 48 <= len(colours) <= 50
    assert np.abs(colours[:20] - red).max() < 4
    assert np.abs(colours[-20:] - blue).max() < 4


def test_vms_restart_takes_the_next_publisher_into_a_new_file(tmp_path: Path) -> None:
    with FakeVMS(tmp_path / "ingest.mkv") as vms:
        publish(vms.url, [(200, 40, 60)] * 10)
        vms.wait_closed()
        second = vms.restart()
        publish(vms.url, [(30, 60, 210)] * 10)
        vms.wait_closed()
    assert second == tmp_path / "ingest.1.mkv"
    assert vms.outputs == [tmp_path / "ingest.mkv", second]
    assert np.abs(mean_colours(vms.outputs[0]) - (200, 40, 60)).max() < 4
    assert np.abs(mean_colours(second) - (30, 60, 210)).max() < 4
