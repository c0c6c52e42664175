"""Every redaction setting, declared once: its range, unit and meaning.

`RedactSettings` is the one place a setting's limits live. The command-line
options of `redact`, `batch` and `stream`, and the keys of a `serve` camera
config, are all derived from these declarations, so a value one front end
refuses is refused by all of them, and a value that reaches the pipeline has
been checked here: finite, in range, of the right type. A NaN compares false
with every bound, so a range check alone would wave it through; `check` tests
finiteness first.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from redactor_video.detect import DETECTOR_CHOICES
from redactor_video.mask.kernels import MODES, SHAPES
from redactor_video.media.sink import EncodeSettings

LOOKAHEAD_SECONDS = 3.0
LOOKAHEAD_MIB = 96.0
LOOKAHEAD_MIN_SECONDS = 1.0
"""The default look-ahead: 3 s, shortened to no less than 1 s where 3 s of frames would take more than 96 MiB
(held as 4:2:0: 2.9 s at 1280x720 and 25 fps; at 1920x1080 the buffer holds 1.3 s). Small night-IR faces
the sweep first sees 1-2.6 s after they enter were left clear that long with a shorter buffer (3 of 98
untuned scenes met every target only with 2 s, and a 24 px face found 2.2 s in was clear 15 frames with
2 s, none with 3 s); at 1080p, 2 s brought the peak memory of a 40 s run to 1018 MiB, past the 1 GiB
budget (RESULTS.md). An explicit --lookahead is held in full."""

THOROUGH_SCALE = 1.5
"""CenterFace input scale of `--thorough`: faces 16-24 px wide become 24-36 px at the detector's input, where
it finds them (100% of 16-24 px face-frames on the 720p and 1080p speed clips, RESULTS.md)."""


@dataclass(frozen=True)
class Knob:
    """How one setting is given and checked: its option name, unit, range or choices, and help text."""

    flag: str
    help: str
    unit: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    integer: bool = False
    optional: bool = False

    def check(self, value: Any) -> str | None:
        """Why `value` is not allowed for this setting, or None if it is."""
        if value is None and self.optional:
            return None
        if self.choices:
            return None if isinstance(value, str) and value in self.choices else f"choose from {', '.join(self.choices)}"
        kinds = (int,) if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            return "expected a whole number" if self.integer else "expected a number"
        if not math.isfinite(value):
            return "expected a finite number"
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            return f"expected {self.range_text()}"
        return None

    def range_text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.low is not None and self.high is not None:
            return f"{self.low:g} to {self.high:g}{unit}"
        if self.low is not None:
            return f"at least {self.low:g}{unit}"
        return f"at most {self.high:g}{unit}" if self.high is not None else "a finite number"


def _knob(default: Any, **spec: Any) -> Any:
    return field(default=default, metadata={"knob": Knob(**spec)})


@dataclass(frozen=True)
class RedactSettings:
    """Everything that changes what gets masked; recorded in reports so a run can be reproduced.

    Construction checks every value against its declaration and raises
    ValueError naming the option, so no front end can pass an impossible value.
    """

    detector: str = _knob("centerface", flag="--detector", choices=DETECTOR_CHOICES,
                          help="Small-face sweep detector (BlazeFace also runs on every whole frame): centerface, "
                               "blazeface (tiled), ensemble (both).")
    # At most 0.8: clear, frontal, well-lit portraits score 0.84-0.94 (four public-domain portraits at
    # 160-640 px wide), so a higher threshold would leave even those clear.
    threshold: float = _knob(0.5, flag="--threshold", low=0.05, high=0.8,
                             help="Detection confidence needed to start a track (half of it extends one; a faint "
                                  "find of a small face (under 3.75% of the frame's long side, 48 px at 720p) that "
                                  "two sweeps repeat, or that extends a steady walking line through two earlier "
                                  "ones, starts one too).")
    # 5 a second: every 5th frame at 25 fps, where the benchmark speeds were measured; at 5 fps and below
    # (archive recorders often keep 2) every frame. On six 2 fps design scenes (crowd and walkers seeds 1-3,
    # 720p) a sweep every 4th frame protected 83.5% of face-frames >= 24 px, every frame 98.4% (RESULTS.md).
    sweep_rate: float = _knob(5.0, flag="--sweep-rate", low=0.5, high=60.0, unit="per s",
                              help="Small-face sweeps per second of video, at least: every frame at or below this "
                                   "frame rate; tracking and look-ahead cover the frames between.")
    tile: int = _knob(320, flag="--tile", low=0, high=4096, integer=True, unit="px",
                      help="BlazeFace tile size in px for small faces (0: whole frame only).")
    centerface_scale: float = _knob(1.0, flag="--centerface-scale", low=0.25, high=4.0,
                                    help="CenterFace input scale: higher finds smaller faces; the cost grows with its "
                                         "square. [default: 1.0]")
    mode: str = _knob("blur", flag="--mode", choices=tuple(MODES), help="How faces are hidden.")
    shape: str = _knob("ellipse", flag="--shape", choices=tuple(SHAPES), help="Mask shape around each face.")
    mask_scale: float = _knob(1.5, flag="--mask-scale", low=1.0, high=4.0,
                              help="Mask size relative to the detected face box.")
    hold_seconds: float = _knob(1.0, flag="--hold", low=0.0, high=10.0, unit="s",
                                help="Seconds a face stays masked after it was last detected (twice that for faces "
                                     "under 3.75% of the frame's long side found three times, which only the "
                                     "small-face sweep sees).")
    lookahead_seconds: float | None = _knob(
        None, flag="--lookahead", low=0.0, high=5.0, unit="s", optional=True,
        help="Seconds of frames held back so a newly found face is masked before it was found too (a value given "
             f"here is held in full) [default: {LOOKAHEAD_SECONDS:g} s, or what fits in {LOOKAHEAD_MIB:g} MiB of "
             f"frames but at least {LOOKAHEAD_MIN_SECONDS:g} s: 2.9 s at 720p, 1.3 s at 1080p].")
    encode: EncodeSettings = field(default_factory=EncodeSettings)

    def __post_init__(self) -> None:
        for name, spec in knobs().items():
            problem = spec.check(getattr(self, name))
            if problem is not None:
                raise ValueError(f"{spec.flag} {getattr(self, name)!r}: {problem}")

    def sweep_period(self, fps: float) -> int:
        """Frames from one sweep to the next at `fps`: as many as keep at least `sweep_rate` sweeps a second."""
        return max(1, math.floor(fps / self.sweep_rate)) if math.isfinite(fps) and fps > 0 else 1

    @property
    def longest_lookahead(self) -> float:
        """Seconds of frames the look-ahead may hold (the default's upper end)."""
        return LOOKAHEAD_SECONDS if self.lookahead_seconds is None else self.lookahead_seconds

    @property
    def low_threshold(self) -> float:
        """Scores in [low_threshold, threshold) only extend an existing track (ByteTrack's second pass)."""
        return self.threshold / 2

    def to_dict(self) -> dict:
        return asdict(self)


def knobs() -> dict[str, Knob]:
    """The declared settings of RedactSettings, by field name, in declaration order."""
    return {f.name: f.metadata["knob"] for f in fields(RedactSettings) if "knob" in f.metadata}
