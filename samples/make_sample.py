"""Build samples/people.mp4, the clip the README's first command redacts: real camera footage.

Three real clips from ../shared/data/real (CC-BY 4.0, (c) Intel Corporation; see PROVENANCE.md) one
after another, 960x540 at 12 fps, 11 s: two people walking at the camera, three walking and pausing,
two turning their heads close up. A 440 Hz tone is the audio track, so audio passthrough can be heard.
Run from the repository root:

    python -m samples.make_sample [REAL_CLIPS_FOLDER]
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av

from benchmarks.synth import mux_tone

OUT = Path(__file__).with_name("people.mp4")
CLIPS = ("walking.mp4", "walking_pause.mp4", "headpose.mp4")
FPS = 12
AUDIO_RATE = 48000


def build(real: Path, out: Path = OUT) -> int:
    """Concatenate CLIPS from `real` into `out` (H.264 crf 18 and AAC); returns the frames written."""
    written, samples = 0, 0
    with av.open(str(out), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 960, 540, "yuv420p"
        video.options = {"crf": "18", "preset": "slow"}
        sound = container.add_stream("aac", rate=AUDIO_RATE)
        sound.layout = "mono"
        for name in CLIPS:
            with av.open(str(real / name)) as clip:
                for picture in clip.decode(video=0):
                    frame = av.VideoFrame.from_ndarray(picture.to_ndarray(format="rgb24"), format="rgb24")
                    frame.pts, frame.time_base = written, Fraction(1, FPS)
                    container.mux(video.encode(frame.reformat(format="yuv420p")))
                    written += 1
                    samples = mux_tone(container, sound, samples, written * AUDIO_RATE // FPS)
        container.mux(video.encode(None))
        container.mux(sound.encode(None))
    return written


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1].parent / "shared/data/real"
    print(f"{OUT}: {build(folder)} frames")
