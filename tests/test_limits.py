"""Limits that keep a hostile or absurd input from costing unbounded memory, time or disk.

A picture over MAX_PICTURE_PIXELS is refused before it is decoded, wherever a
file is opened (a single file, an archive searched for a subject access
request, a batch chunk); the compiled-network cache keeps CACHE_KEPT networks.
Real files, real codecs, the real command in a subprocess.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from redactor_video.batch.chunks import Chunk, chunk_frames
from redactor_video.batch.chunks import probe as chunk_probe
from redactor_video.detect.centerface import CenterFaceDetector
from redactor_video.detect.runtime import CACHE_KEPT, CACHE_SUBDIR
from redactor_video.errors import InputError
from redactor_video.media.source import MAX_PICTURE, MAX_PICTURE_PIXELS, FileSource
from redactor_video.models import models_dir, spec_for
from redactor_video.sar.archive import probe as archive_probe

REDACTOR = [str(Path(sys.executable).with_name("redactor"))]
DECODE_BYTES = 16000 * 16000 * 3
"""Bytes that decoding the 16000x16000 test picture to RGB takes, on top of whatever the command needs to start."""


def gray_png(path: Path, width: int, height: int) -> Path:
    """A uniform grey PNG: a picture of any size in about a megabyte, like the 747 KB one of issue #21."""
    assert cv2.imwrite(str(path), np.zeros((height, width), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return path


def raw_h264(path: Path, sizes: list[tuple[int, int, int]]) -> Path:
    """A bare H.264 stream, as a camera's recorder may dump it: (width, height, frames) runs, one after another."""
    with path.open("wb") as out:
        for width, height, frames in sizes:
            part = path.with_suffix(f".{width}x{height}.part")
            with av.open(str(part), "w", format="h264") as container:
                video = container.add_stream("libx264", rate=25)
                video.width, video.height, video.pix_fmt = width, height, "yuv420p"
                video.options = {"preset": "ultrafast"}
                black = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="rgb24")
                for _ in range(frames):
                    for packet in video.encode(black.reformat(format="yuv420p")):
                        container.mux(packet)
                for packet in video.encode():
                    container.mux(packet)
            out.write(part.read_bytes())
            part.unlink()
    return path


def test_limit_is_8k_uhd_to_the_pixel(tmp_path: Path) -> None:
    """7680x4320 opens; one pixel column more is refused, at open, with the limit in the message."""
    width, height = MAX_PICTURE
    with FileSource(gray_png(tmp_path / "8k.png", width, height)) as source:
        assert (source.info.width, source.info.height) == (width, height)
    with pytest.raises(InputError, match=r"larger than 7680x4320 \(33\.2 Mpx\)"):
        FileSource(gray_png(tmp_path / "over.png", width + 1, height))


def run_measured(args: list[str], stderr_path: Path) -> tuple[int, float, int]:
    """The command run to its end (killed after 60 s): its exit code, its seconds and its peak resident bytes."""
    started = time.monotonic()
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen([*REDACTOR, *args], stdout=subprocess.DEVNULL, stderr=err)
    while time.monotonic() - started < 60:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            return os.waitstatus_to_exitcode(status), time.monotonic() - started, usage.ru_maxrss * 1024
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    os.wait4(proc.pid, 0)
    pytest.fail(f"{args} still running after 60 s")


def test_huge_png_is_refused_at_once_by_the_command(tmp_path: Path) -> None:
    """Issue #21: a 16000x16000 PNG ran 60 s and took 1.5 GB before it was stopped. Now the command exits 3
    with one line, no traceback and no output, in start-up time and start-up memory: those of the same
    command refusing a file that is not a picture at all, measured beside it on the same machine."""
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a picture" * 100)
    out = tmp_path / "out"
    out.mkdir()
    code, startup_seconds, startup_peak = run_measured(
        ["redact", str(junk), "-o", str(out / "junk.png"), "-q"], tmp_path / "junk.txt")
    assert code == 3
    src = gray_png(tmp_path / "huge.png", 16000, 16000)
    code, seconds, peak = run_measured(["redact", str(src), "-o", str(out / "huge.png"), "-q"], tmp_path / "err.txt")
    stderr = (tmp_path / "err.txt").read_text()
    assert code == 3, stderr
    assert stderr.splitlines() == [f"Error: {src}: no picture size: corrupt, or larger than 7680x4320 (33.2 Mpx), "
                                   "the largest picture redactor decodes"]
    assert seconds < 2 * startup_seconds + 10, f"{seconds:.1f} s against {startup_seconds:.1f} s to start"
    assert peak < startup_peak + DECODE_BYTES // 2, f"peak {peak >> 20} MiB against {startup_peak >> 20} MiB to start"
    assert list(out.iterdir()) == []


@pytest.fixture(scope="module")
def dci_8k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare H.264 stream of one 8192x4320 frame (DCI 8K): its size is in the stream's parameter sets."""
    return raw_h264(tmp_path_factory.mktemp("dci") / "dci.h264", [(8192, 4320, 1)])


def test_declared_size_is_named_wherever_a_file_is_opened(dci_8k: Path) -> None:
    """A single file (which an archive recording is also decoded as), an archive recording probed for its
    time, and a batch file (probed for chunks, then decoded chunk by chunk): each refuses before decoding,
    naming the size."""
    named = r"picture is 8192x4320 \(35\.4 Mpx\), larger than 7680x4320 \(33\.2 Mpx\)"
    assert 8192 * 4320 > MAX_PICTURE_PIXELS
    with pytest.raises(InputError, match=named):
        FileSource(dci_8k)
    with pytest.raises(InputError, match=named):
        archive_probe(dci_8k)
    with pytest.raises(InputError, match=named):
        chunk_probe(dci_8k)
    with pytest.raises(InputError, match=named):
        next(chunk_frames(dci_8k, Chunk(0, 0, None, (0,), 0), Fraction(1, 25)))


def test_picture_growing_mid_stream_is_never_decoded(tmp_path: Path) -> None:
    """200 small frames (8 s, past what opening the file reads) and then one of 8192x4320: opening sees only
    the small size, and the decoder refuses the big picture rather than allocate it."""
    path = raw_h264(tmp_path / "grows.h264", [(64, 64, 200), (8192, 4320, 1)])
    with av.open(str(path)) as unlimited:
        assert [f.width for f in unlimited.decode(video=0)][-1] == 8192, "the stream does hold the big picture"
    with FileSource(path) as source:
        assert (source.info.width, source.info.height) == (64, 64)
        shapes = [frame.image.shape for frame in source]
    assert shapes == [(64, 64, 3)] * 200


def test_compiled_network_cache_keeps_the_most_recently_used(tmp_path: Path) -> None:
    """Each new CenterFace input size compiles a 7.5 MB network into the cache; with CACHE_KEPT already there,
    a new one evicts the least recently used, and is itself kept (a second detector at that size compiles
    nothing new)."""
    models = tmp_path / "models"
    models.mkdir()
    spec = spec_for("centerface")
    shutil.copy(models_dir() / spec.filename, models / spec.filename)
    cache = models / CACHE_SUBDIR / spec.sha256[:16]
    cache.mkdir(parents=True)
    older = [cache / f"earlier-{i:02d}.blob" for i in range(CACHE_KEPT)]
    for i, blob in enumerate(older):  # networks of other sizes, last used a day apart, oldest first
        blob.write_bytes(b"compiled network of another input size")
        os.utime(blob, (1.7e9 + i * 86400, 1.7e9 + i * 86400))
    image = np.zeros((64, 96, 3), np.uint8)
    CenterFaceDetector(models_dir=models).detect(image)
    kept = set(cache.glob("*.blob"))
    assert len(kept) == CACHE_KEPT
    assert older[0] not in kept and set(older[1:]) <= kept
    CenterFaceDetector(models_dir=models).detect(image)
    assert set(cache.glob("*.blob")) == kept
