"""The masker is the last stage before pixels leave: it trusts nothing upstream. A box it cannot draw masks
the whole frame; a mask scale that would not cover the face is refused."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from redactor_video.mask.masker import Masker
from redactor_video.pipeline import Pipeline
from redactor_video.types import Frame, MaskPlan
from tests.helpers import detail_left, portrait

FACE_WIDTH = 320

IMPOSSIBLE = [
    ("NaN corner", [np.nan, 10, 50, 60]),
    ("infinite corner", [10, 10, np.inf, 60]),
    ("inverted", [200, 200, 100, 100]),
    ("far past the frame", [10, 10, 1e12, 60]),
]


@pytest.mark.parametrize("box", [b for _, b in IMPOSSIBLE], ids=[n for n, _ in IMPOSSIBLE])
def test_a_box_nobody_can_draw_masks_the_whole_frame(pipeline: Pipeline, shared_data: Path,
                                                     box: list[float]) -> None:
    """Whatever an upstream stage hands over, the last stage fails closed: the frame leaves masked whole,
    and says why (the report and the fail-closed counters read `Regions.whole_frame`)."""
    image, face = portrait("obama", FACE_WIDTH)
    plan = MaskPlan(Frame(0, image), (np.array(face, np.float32), np.array(box, np.float32)), (1, 2))  # found; broken
    regions = pipeline.regions(plan)
    assert regions.whole_frame and regions.reason == "impossible box"
    out = pipeline.masker.apply(image, regions)
    assert detail_left(image, out) < 0.05


def test_masker_refuses_a_scale_that_would_not_cover_the_face() -> None:
    for scale in (math.nan, math.inf, 0.5):
        with pytest.raises(ValueError, match="mask_scale"):
            Masker(mask_scale=scale)
