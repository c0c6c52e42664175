"""Merging overlapping finds from several detectors, strips or tiles into one box per face."""

from __future__ import annotations

import numpy as np
import pytest

from redactor_video.detect.base import merge_union
from redactor_video.types import Detections


def test_union_merge_keeps_the_whole_face_when_a_tile_edge_truncates_it() -> None:
    truncated = (100.0, 100.0, 130.0, 160.0)  # a strip edge cut the face at x=130, and it scored higher
    whole = (100.0, 100.0, 160.0, 160.0)
    elsewhere = (300.0, 300.0, 340.0, 340.0)
    merged = merge_union(Detections(np.array([truncated, whole, elsewhere]), [0.9, 0.6, 0.8]))
    assert sorted(merged.xyxy.tolist()) == [list(whole), list(elsewhere)]
    assert sorted(merged.confidence.tolist()) == pytest.approx([0.8, 0.9])
