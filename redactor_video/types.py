"""The validated, immutable values that flow between pipeline stages.

Every stage takes and returns these types, so a stage can be tested on its own
and a malformed value is caught where it is made, not three stages later.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from fractions import Fraction
from typing import Any

import cv2
import numpy as np


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _boxes(value: Any) -> np.ndarray:
    """(n, 4) float32 boxes x1, y1, x2, y2, each finite with x2 >= x1 and y2 >= y1; ValueError otherwise."""
    boxes = np.array(value, dtype=np.float32).reshape(-1, 4) if np.size(value) else np.zeros((0, 4), np.float32)
    if len(boxes) and not np.all(np.isfinite(boxes)):
        raise ValueError("boxes and confidences must be finite")
    if len(boxes) and np.any(boxes[:, 2:] < boxes[:, :2]):
        raise ValueError("boxes must have x2 >= x1 and y2 >= y1")
    return boxes


@dataclass(frozen=True)
class Frame:
    """One decoded picture: RGB pixels plus where it sits in time.

    `pts` and `time_base` come from the source untouched so the sink can keep
    the original (possibly variable) timing.
    """

    index: int
    image: np.ndarray
    pts: int | None = None
    time_base: Fraction | None = None
    source: str = ""

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
            raise ValueError("Frame.image must be a uint8 numpy array")
        if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
            raise ValueError(f"Frame.image must be HxWx3, got shape {img.shape}")
        if self.index < 0:
            raise ValueError("Frame.index must be >= 0")
        object.__setattr__(self, "image", _readonly(img))

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def seconds(self) -> float | None:
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * self.time_base)

    @property
    def packable(self) -> bool:
        """Whether pack() can hold this frame: 4:2:0 needs even sides (odd ones are encoded 4:4:4 too)."""
        return self.width % 2 == 0 and self.height % 2 == 0

    @property
    def packed_bytes(self) -> int:
        return self.width * self.height * 3 // 2

    @property
    def nbytes(self) -> int:
        return int(self.image.nbytes)

    def pack(self) -> PackedFrame:
        """The frame as YUV 4:2:0, half the bytes of RGB, for a frame that waits (the look-ahead holds a
        second or more of them). The round trip moves a 1080p frame's pixels by 0.02 (luma) and 0.07
        (chroma) levels on average once the encoder has made 4:2:0 of them again, and costs about 1 ms
        each way (RESULTS.md), so it suits frames bound for a 4:2:0 video, not a lossless still."""
        if not self.packable:
            raise ValueError(f"a {self.width}x{self.height} frame cannot be held as 4:2:0")
        return PackedFrame(self.index, _readonly(cv2.cvtColor(self.image, cv2.COLOR_RGB2YUV_I420)), self.pts,
                           self.time_base, self.source)


@dataclass(frozen=True)
class PackedFrame:
    """A Frame held as YUV 4:2:0 (I420 planes stacked, 1.5 x height rows) until unpack() is called."""

    index: int
    yuv: np.ndarray
    pts: int | None = None
    time_base: Fraction | None = None
    source: str = ""

    @property
    def nbytes(self) -> int:
        return int(self.yuv.nbytes)

    def unpack(self) -> Frame:
        return Frame(self.index, cv2.cvtColor(self.yuv, cv2.COLOR_YUV2RGB_I420), self.pts, self.time_base,
                     self.source)


@dataclass(frozen=True)
class Detections:
    """Face boxes a detector found in one frame, with its score for each; arrays all have length n."""

    xyxy: np.ndarray
    confidence: np.ndarray
    detector: str = ""

    def __post_init__(self) -> None:
        xyxy = _boxes(self.xyxy)
        n = len(xyxy)
        conf = np.array(self.confidence, dtype=np.float32).reshape(-1)
        if len(conf) != n:
            raise ValueError(f"confidence has {len(conf)} entries for {n} boxes")
        if n and not np.all(np.isfinite(conf)):
            raise ValueError("boxes and confidences must be finite")
        object.__setattr__(self, "xyxy", _readonly(xyxy))
        object.__setattr__(self, "confidence", _readonly(conf))

    @classmethod
    def empty(cls, detector: str = "") -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), detector=detector)

    @classmethod
    def merge(cls, parts: list[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(np.concatenate([p.xyxy for p in parts]), np.concatenate([p.confidence for p in parts]),
                   detector="+".join(dict.fromkeys(p.detector for p in parts)))

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: Any) -> Detections:
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(self.xyxy[index], self.confidence[index], detector=self.detector)

    @property
    def widths(self) -> np.ndarray:
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def heights(self) -> np.ndarray:
        return self.xyxy[:, 3] - self.xyxy[:, 1]


@dataclass(frozen=True)
class Tracks:
    """Every live track at one frame: what the tracker hands to the look-ahead and the recogniser.

    One entry per track in every array. `xyxy` is where the face is taken to be now: the box it was
    detected at, or for a coasting track (`predicted`: no detection this frame) its prediction widened by
    its uncertainty. `hits` counts its detections so far (1: it is new, so the look-ahead paints it back
    over earlier frames); `velocity` is its centre's motion in px/s; `traced` says how many seconds before
    now faint finds at its place began, and `traced_box` where (for a track that is not new: 0 and its
    box); `faint` says it was detected now only by a find under the score that starts a track. Left out,
    they default to a track detected once, at rest, untraced and not faint.
    """

    xyxy: np.ndarray
    tracker_id: np.ndarray
    predicted: np.ndarray | None = None
    hits: np.ndarray | None = None
    velocity: np.ndarray | None = None
    traced: np.ndarray | None = None
    traced_box: np.ndarray | None = None
    faint: np.ndarray | None = None

    def __post_init__(self) -> None:
        xyxy = _boxes(self.xyxy)
        n = len(xyxy)
        given = {
            "tracker_id": (self.tracker_id, np.int64, (n,), 0),
            "predicted": (self.predicted, bool, (n,), False),
            "hits": (self.hits, np.int64, (n,), 1),
            "velocity": (self.velocity, np.float32, (n, 2), 0.0),
            "traced": (self.traced, np.float32, (n,), 0.0),
            "faint": (self.faint, bool, (n,), False),
        }
        for name, (value, dtype, shape, default) in given.items():
            array = np.full(shape, default, dtype) if value is None else np.array(value, dtype).reshape(-1, *shape[1:])
            if array.shape != shape:
                raise ValueError(f"{name} must have one entry per track ({n}), got {array.shape[0]}")
            object.__setattr__(self, name, _readonly(array))
        traced_box = xyxy if self.traced_box is None else _boxes(self.traced_box)
        if traced_box.shape != xyxy.shape:
            raise ValueError(f"traced_box must have one box per track ({n})")
        object.__setattr__(self, "xyxy", _readonly(xyxy))
        object.__setattr__(self, "traced_box", _readonly(traced_box))

    @classmethod
    def empty(cls) -> Tracks:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    @property
    def widths(self) -> np.ndarray:
        return self.xyxy[:, 2] - self.xyxy[:, 0]


@dataclass(frozen=True)
class Regions:
    """What the kernels blur in one frame: integer pixel boxes, or everything.

    `whole_frame` is the fail-closed answer when a stage could not decide.
    Float boxes are rounded outward, so no sliver of a face is left; boxes may
    extend past the frame (the kernels clip), so a mask keeps its shape at the edge.
    """

    boxes: np.ndarray
    whole_frame: bool = False
    reason: str = ""

    def __post_init__(self) -> None:
        raw = np.array(self.boxes, dtype=np.float64).reshape(-1, 4) if np.size(self.boxes) else np.zeros((0, 4))
        if not np.all(np.isfinite(raw)):
            raise ValueError("region boxes must be finite")
        boxes = np.column_stack([np.floor(raw[:, :2]), np.ceil(raw[:, 2:])]).astype(np.int32)
        if len(boxes) and np.any(boxes[:, 2:] <= boxes[:, :2]):
            raise ValueError("region boxes must have positive size")
        object.__setattr__(self, "boxes", _readonly(boxes))

    @classmethod
    def everything(cls, reason: str) -> Regions:
        return cls(np.zeros((0, 4), np.int32), whole_frame=True, reason=reason)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


@dataclass(frozen=True)
class MaskPlan:
    """A frame leaving the look-ahead: every box to mask on it with the track behind each, or why the whole
    frame must be masked. Built once, when the frame is released; a later stage that must mask more (the
    live filter's timing checks) makes a new plan with `failing`, so no stage changes what another read.

    Boxes are not checked for sense here: the masker is the last stage and masks the whole frame for an
    impossible one, so it must see it.
    """

    held: Frame | PackedFrame
    boxes: tuple[np.ndarray, ...] = ()
    owners: tuple[int, ...] = ()
    failure: str = ""

    def __post_init__(self) -> None:
        boxes = tuple(_readonly(np.asarray(b, np.float32).reshape(4)) for b in self.boxes)
        owners = tuple(int(o) for o in self.owners)
        if len(owners) != len(boxes):
            raise ValueError(f"{len(owners)} owners for {len(boxes)} boxes")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "owners", owners)

    @property
    def index(self) -> int:
        return self.held.index

    @cached_property
    def frame(self) -> Frame:
        """The pixels as a Frame, unpacked on first use: in whichever thread masks it."""
        return self.held.unpack() if isinstance(self.held, PackedFrame) else self.held

    @property
    def tracks(self) -> list[int]:
        return sorted(set(self.owners))

    def failing(self, reason: str) -> MaskPlan:
        """This plan with the whole frame to be masked; a reason it already has is kept."""
        return self if self.failure else replace(self, failure=reason)
