"""Sources, sinks and atomic output on real codecs: timing, rotation, side streams, and nothing left on failure."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from redactor_video.errors import InputError, OutputError
from redactor_video.media.atomic import atomic_path, check_writable
from redactor_video.media.formats import is_image_path
from redactor_video.media.sink import EncodeSettings, ImageSink, VideoSink, video_frame
from redactor_video.media.source import FileSource
from redactor_video.types import Frame
from tests.helpers import encode_video, portrait, read_video


def blocks(seed: int, h: int = 120, w: int = 160) -> np.ndarray:
    """Coarse random blocks: survive a codec nearly unchanged, and tell every orientation apart."""
    small = np.random.default_rng(seed).integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(small, 8, 0), 8, 1)[:h, :w])


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    frames = [blocks(i) for i in range(6)]
    path = tmp_path_factory.mktemp("media") / "blocks.mp4"
    encode_video(path, frames, fps=12, audio=True)
    return path, frames


def test_source_decodes_frames_and_timing(clip: tuple[Path, list[np.ndarray]]) -> None:
    path, frames = clip
    with FileSource(path) as source:
        info = source.info
        got = list(source)
    assert (info.width, info.height, info.rate, info.frames, info.is_image, info.codec) == (160, 120, 12, 6, False,
                                                                                           "h264")
    assert [f.index for f in got] == list(range(6))
    assert [f.seconds for f in got] == pytest.approx([i / 12 for i in range(6)])
    for f, original in zip(got, frames):
        assert f.source == str(path)
        assert mean_diff(f.image, original) < 8


def keyframed(path: Path, seconds: int = 4, fps: int = 12) -> list[np.ndarray]:
    """A clip with a keyframe every second, as a recorder writes one, each frame telling itself apart."""
    frames = [blocks(i, 64, 64) for i in range(seconds * fps)]
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        video.options = {"crf": "16", "preset": "veryfast", "g": str(fps), "keyint_min": str(fps)}
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return frames


@pytest.mark.parametrize("suffix", [".mp4", ".ts", ".mkv"])
def test_a_span_of_seconds_starts_and_ends_where_asked(tmp_path: Path, suffix: str) -> None:
    """Frames 0.5-3.0 s of a 12 fps recording are frames 6-36, whatever the container: an MPEG-TS seek
    landed on the keyframe at 1 s and left the first half second of a subject access export out."""
    frames = keyframed(tmp_path / f"rec{suffix}")
    with FileSource(tmp_path / f"rec{suffix}") as source:
        got = list(source.span(0.5, 3.0))
    assert [round(f.seconds * 12) for f in got] == list(range(6, 37))
    assert [f.index for f in got] == list(range(31))
    assert all(mean_diff(f.image, frames[6 + k]) < 8 for k, f in enumerate(got))


def test_a_sampled_span_gives_one_frame_per_step(tmp_path: Path) -> None:
    keyframed(tmp_path / "rec.mp4")
    with FileSource(tmp_path / "rec.mp4") as source:
        got = list(source.span(1.0, 3.0, rate=2.0))
    assert [round(f.seconds * 12) for f in got] == [12, 18, 24, 30, 36]


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_source_turns_rotated_video_upright(tmp_path: Path, rotation: int) -> None:
    upright = blocks(1)
    path = tmp_path / "rotated.mp4"
    encode_video(path, [np.rot90(upright, -rotation // 90)] * 2, rotation=rotation)
    assert read_video(path).rotation % 360 == rotation % 360, "the test file carries a display rotation"
    with FileSource(path) as source:
        image = next(iter(source)).image
    assert image.shape == upright.shape
    assert mean_diff(image, upright) < 8
    for wrong in (1, 2, 3):
        turned = np.rot90(upright, wrong)
        if turned.shape == image.shape:
            assert mean_diff(image, turned) > 30


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_source_reads_still_images(tmp_path: Path, suffix: str) -> None:
    image, _ = portrait("obama", 160)
    path = tmp_path / f"face{suffix}"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    with FileSource(path) as source:
        frames = list(source)
        assert source.info.is_image
    assert len(frames) == 1
    assert frames[0].image.shape == image.shape
    assert mean_diff(frames[0].image, image) < 4


def test_source_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    with pytest.raises(InputError, match="not a video or image"):
        FileSource(text)
    with pytest.raises(InputError, match="no such file"):
        FileSource(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="not a file"):
        FileSource(tmp_path)
    sound = tmp_path / "sound.m4a"
    with av.open(str(sound), "w") as out:
        stream = out.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(InputError, match="no video stream"):
        FileSource(sound)


@pytest.mark.parametrize("name, options", [("whole.mp4", {"movflags": "faststart"}), ("whole.mkv", {})])
def test_source_reports_a_truncated_file(tmp_path: Path, name: str, options: dict) -> None:
    """A cut-off file must fail, not pass off its first frames as the whole video (Matroska ends cleanly)."""
    whole = tmp_path / name
    encode_video(whole, [blocks(i) for i in range(24)], options=options)
    data = whole.read_bytes()
    cut = tmp_path / f"cut{whole.suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        with FileSource(cut) as source:
            list(source)


def sink_roundtrip(tmp_path: Path, suffix: str, pts: list[int], time_base: Fraction,
                   settings: EncodeSettings = EncodeSettings(), audio: bool = False) -> tuple[Path, Path]:
    src = tmp_path / f"in{suffix}"
    encode_video(src, [blocks(i) for i in range(len(pts))], pts=pts, time_base=time_base, audio=audio)
    dst = tmp_path / f"out{suffix}"
    with FileSource(src) as source:
        sink = VideoSink(dst, source.info, settings, src)
        for frame in source:
            sink.write(frame, np.asarray(frame.image))
        sink.close()
    return src, dst


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_sink_keeps_variable_frame_timing(tmp_path: Path, suffix: str) -> None:
    pts = [0, 40, 80, 200, 233, 500, 520, 900]
    src, dst = sink_roundtrip(tmp_path, suffix, pts, Fraction(1, 1000))
    original, written = read_video(src), read_video(dst)
    assert original.seconds == pytest.approx([p / 1000 for p in pts], abs=1e-6), "the input really is VFR"
    assert written.seconds == pytest.approx(original.seconds, abs=1e-6)
    assert len(written.frames) == len(pts)


def test_sink_copies_audio_unless_dropped(tmp_path: Path) -> None:
    src, dst = sink_roundtrip(tmp_path, ".mp4", list(range(12)), Fraction(1, 12), audio=True)
    assert read_video(dst).audio_packets == read_video(src).audio_packets > 0
    assert read_video(dst).streams == ("video", "audio"), "the video stays stream 0"
    (tmp_path / "out.mp4").unlink()
    _, dst = sink_roundtrip(tmp_path, ".mp4", list(range(12)), Fraction(1, 12),
                            EncodeSettings(keep_audio=False), audio=True)
    assert read_video(dst).streams == ("video",)


def test_sink_with_no_frames_refuses_to_finish(tmp_path: Path, clip: tuple[Path, list[np.ndarray]]) -> None:
    with FileSource(clip[0]) as source:
        sink = VideoSink(tmp_path / "empty.mp4", source.info, EncodeSettings(), None)
        with pytest.raises(OutputError, match="no frames"):
            sink.close()


def test_sink_reports_an_unknown_codec(tmp_path: Path, clip: tuple[Path, list[np.ndarray]]) -> None:
    with FileSource(clip[0]) as source:
        sink = VideoSink(tmp_path / "x.mp4", source.info, replace(EncodeSettings(), codec="nope264"), None)
        frame = next(iter(source))
        with pytest.raises(OutputError, match="codec 'nope264'"):
            sink.write(frame, np.asarray(frame.image))
        sink.abort()


def test_image_sink_holds_one_frame(tmp_path: Path) -> None:
    image, _ = portrait("biden", 120)
    frame = Frame(0, image)
    sink = ImageSink(tmp_path / "still.png")
    with pytest.raises(OutputError, match="nothing was written"):
        sink.close()
    sink.write(frame, image)
    with pytest.raises(OutputError, match="only one frame"):
        sink.write(frame, image)
    sink.close()
    written = cv2.cvtColor(cv2.imread(str(tmp_path / "still.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(written, image)
    assert is_image_path(Path("a.JPG")) and not is_image_path(Path("a.mp4"))


def test_atomic_path_renames_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.") and ".part" in tmp.name
        tmp.write_bytes(b"done")
    assert leftovers(tmp_path) == ["out.mp4"]
    assert target.read_bytes() == b"done"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("encoder died")
    assert leftovers(tmp_path) == ["out.mp4"]
    assert target.read_bytes() == b"done", "a failed run never replaces the user's file"


def test_atomic_output_gets_normal_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "out.mp4") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "out.mp4").stat().st_mode) == 0o640


@pytest.mark.parametrize(
    ("make", "target", "overwrite", "message"),
    [
        (lambda d: (d / "out.mp4").write_bytes(b"x"), "out.mp4", False, "already exists"),
        (lambda d: (d / "out.mp4").mkdir(), "out.mp4", True, "is a folder"),
        (lambda d: (d / "file").write_bytes(b"x"), "file/out.mp4", False, "is not a folder"),
        (lambda d: (d / "file").write_bytes(b"x"), "file/deeper/out.mp4", False, "is not a folder"),
    ],
)
def test_check_writable_refuses(tmp_path: Path, make: object, target: str, overwrite: bool, message: str) -> None:
    make(tmp_path)  # type: ignore[operator]
    with pytest.raises(OutputError, match=message):
        check_writable(tmp_path / target, overwrite)


def test_check_writable_accepts(tmp_path: Path) -> None:
    (tmp_path / "out.mp4").write_bytes(b"x")
    check_writable(tmp_path / "out.mp4", overwrite=True)
    check_writable(tmp_path / "new" / "nested" / "out.mp4", overwrite=False)
    assert leftovers(tmp_path) == ["out.mp4"], "checking creates nothing"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_check_writable_refuses_a_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="not writable"):
            check_writable(folder / "out.mp4", overwrite=False)
    finally:
        folder.chmod(0o755)


def test_frames_handed_to_the_encoder_keep_ffmpegs_colours() -> None:
    """The sink converts RGB to 4:2:0 itself, not through FFmpeg's scaler: read back by FFmpeg, the picture
    must be about as close to the original as FFmpeg's own conversion gives it (OpenCV subsamples colour a
    little more coarsely: 2.3 levels off on this portrait, FFmpeg 2.1) and show no colour cast (the same
    matrix and range: a full-range mistake shifts the mean by 4 levels; FFmpeg's read-back itself sits a
    level under the original)."""
    face, _ = portrait("obama", 320)
    image = np.ascontiguousarray(face[:240, :320])
    ours = video_frame(image, "yuv420p").to_ndarray(format="rgb24").astype(int)
    ffmpeg = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p").to_ndarray(
        format="rgb24").astype(int)
    assert np.abs(ours - image).mean() <= 1.25 * np.abs(ffmpeg - image).mean()
    assert np.abs((ours - ffmpeg).mean(axis=(0, 1))).max() < 0.5, "a colour cast"
