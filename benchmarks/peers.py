"""Peer tools run on the same clips as redactor, each in a venv of its own.

deface (https://github.com/ORB-HD/deface) is the best-known open-source face
blurring tool. It pins its own NumPy/OpenCV/onnxruntime, so it lives in
`benchmarks/.venv-deface` (git-ignored), built once from PyPI with pip and never
imported here: we only run its command line, exactly as a user would.

Encoder settings are the one thing we change from deface's defaults, so that
both tools spend the same effort on encoding: deface writes through
imageio-ffmpeg, whose default `quality=5` means libx264 at CRF 25 with preset
medium, and whose `macro_block_size=16` would rescale 1080-line video to 1088.
We pass CRF 20, preset veryfast (redactor's defaults) and no rescaling.
Detection settings stay at deface's defaults: threshold 0.2, mask scale 1.3,
blurred ellipses, full-resolution CenterFace on onnxruntime (which deface only
uses when the `onnx` package is installed too, so we install it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import av
import click

from redactor_video.media.sink import EncodeSettings

DEFACE_VERSION = "1.5.0"
DEFACE_VENV = Path(__file__).resolve().parent / ".venv-deface"
DEFACE_PACKAGES = (f"deface=={DEFACE_VERSION}", "onnx", "onnxruntime")
"""deface only uses onnxruntime (its fast path) when `onnx` imports too; otherwise it silently falls back to
OpenCV's DNN module."""


def deface_ffmpeg_config(encode: EncodeSettings = EncodeSettings()) -> dict:
    """imageio-ffmpeg writer options matching redactor's encoder settings (no quality scale, no resize)."""
    return {
        "codec": encode.codec,
        "quality": None,
        "macro_block_size": 1,
        "pixelformat": "yuv420p",
        "output_params": ["-crf", str(encode.crf), "-preset", encode.preset],
    }


def deface_args(encode: EncodeSettings = EncodeSettings(), backend: str = "auto") -> list[str]:
    """Every option we give deface beyond input and output; all others are its defaults.

    `backend="auto"` (deface's default) picks onnxruntime; "opencv" runs the same
    CenterFace model on OpenCV's DNN module, as redactor does.
    """
    args = ["--ffmpeg-config", json.dumps(deface_ffmpeg_config(encode), separators=(",", ":"))]
    return args + (["--backend", backend] if backend != "auto" else [])


def ensure_deface(venv: Path = DEFACE_VENV) -> Path:
    """The deface executable, creating its venv or installing missing packages first if needed."""
    exe = venv / "bin" / "deface"
    marker = venv / "installed.txt"
    wanted = "\n".join(DEFACE_PACKAGES)
    if not (exe.exists() and marker.exists() and marker.read_text() == wanted):
        if not (venv / "bin" / "pip").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", *DEFACE_PACKAGES], check=True)
        marker.write_text(wanted)
    return exe


def deface_versions(venv: Path = DEFACE_VENV) -> dict[str, str]:
    """Installed versions of the packages that decide deface's speed, for the results file."""
    code = ("import importlib.metadata as m, json; "
            "print(json.dumps({p: m.version(p) for p in ('deface', 'onnx', 'onnxruntime', 'imageio-ffmpeg', "
            "'numpy', 'opencv-python')}))")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def count_frames(path: Path) -> int:
    """Frames actually decodable from a video (container headers can be wrong after re-muxing)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


@dataclass(frozen=True)
class PeerRun:
    """One timed run of a peer tool: wall-clock seconds of the whole process and what it wrote."""

    command: list[str]
    seconds: float
    output_frames: int


def run_deface(src: Path, dst: Path, encode: EncodeSettings = EncodeSettings(), backend: str = "auto") -> PeerRun:
    """Run deface on `src` into `dst` (replaced if present); raises if it fails or writes nothing."""
    exe = ensure_deface()
    dst.unlink(missing_ok=True)
    command = [str(exe), str(src), "-o", str(dst), *deface_args(encode, backend)]
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    # deface prints its own errors and still exits 0, so a missing output is the real failure signal.
    if done.returncode != 0 or not dst.exists():
        raise RuntimeError(f"deface failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return PeerRun(command, seconds, count_frames(dst))


@click.command()
@click.argument("src", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", "dst", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--backend", type=click.Choice(["auto", "opencv"]), default="auto", show_default=True)
def main(src: Path, dst: Path, backend: str) -> None:
    """Run deface on SRC into OUTPUT and print its wall-clock time and output frame count."""
    run = run_deface(src, dst, backend=backend)
    click.echo(f"{' '.join(run.command)}\n{run.seconds:.2f} s, {run.output_frames} frames written")


if __name__ == "__main__":
    main()
