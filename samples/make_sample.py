"""Build samples/street.mp4, the short clip the README's first command redacts.

Five real faces (public-domain portraits, see PROVENANCE.md) of different sizes
cross a slowly panning photographic background; a 440 Hz tone is the audio
track so audio passthrough can be heard. Run from the repository root:

    python -m samples.make_sample
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.synth import ClipSpec, FaceSpec, make_clip

OUT = Path(__file__).with_name("street.mp4")


def sample_spec() -> ClipSpec:
    faces = (
        FaceSpec("obama", 150, 170, ((120, 230), (260, 220)), 0, 125, (-4, 4)),
        FaceSpec("biden", 90, 80, ((520, 160), (420, 170)), 0, 125, (3, -3), (1.0, 0.8)),
        FaceSpec("astronaut", 50, 55, ((330, 80), (420, 70)), 15, 125),
        FaceSpec("obama2", 36, 40, ((560, 300), (470, 300)), 0, 110),
        FaceSpec("obama3", 28, 30, ((40, 60), (140, 70)), 30, 125),
    )
    return ClipSpec(640, 360, 25, 125, faces, seed=7)


if __name__ == "__main__":
    gt = make_clip(sample_spec(), OUT, audio=True, crf=23)
    OUT.with_name("street.mp4.gt.json").unlink(missing_ok=True)
    print(f"{OUT}: {gt.n_frames} frames, {len(gt.tracks)} faces")
