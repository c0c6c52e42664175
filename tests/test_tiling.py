"""Tiling: a detector run on overlapping crops finds faces too small for it on the whole frame."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import portrait
from redactor_video.detect.base import create_detector
from redactor_video.detect.tiling import EnsembleDetector, TiledDetector, tile_grid
from redactor_video.geometry import iou_matrix


def street(face_width: int, at: tuple[int, int] = (700, 400)) -> tuple[np.ndarray, np.ndarray]:
    """A 1280x720 grey frame with a real portrait pasted in, and the face's box in it."""
    picture, (x1, y1, x2, y2) = portrait("obama", face_width)
    frame = np.full((720, 1280, 3), 90, np.uint8)
    x, y = at
    frame[y:y + picture.shape[0], x:x + picture.shape[1]] = picture
    return frame, np.array([x1 + x, y1 + y, x2 + x, y2 + y], np.float32)


@pytest.mark.parametrize("width", [60, 120])
def test_a_face_whole_frame_blazeface_cannot_see_is_found_on_a_tile(width: int) -> None:
    """A 19-38 px face in 720p shrinks to 3-6 px in BlazeFace's 192 px input; on a 320 px tile it stays whole."""
    frame, face = street(width)
    with create_detector("blazeface", threshold=0.5) as detector:
        assert len(detector.detect(frame)) == 0
        found = TiledDetector(detector, 320).detect(frame)
    assert len(found) == 1
    assert iou_matrix(found.xyxy, face[None])[0, 0] > 0.3


def test_a_face_on_a_tile_seam_is_one_box_in_frame_coordinates() -> None:
    """Overlapping tiles both see a face on their seam; the finds merge into one box where the face is."""
    grid = tile_grid(1280, 720, 320, 0.25)
    seam = grid[1][0]
    frame, face = street(120, at=(seam - 20, 400))
    with create_detector("blazeface", threshold=0.5) as detector:
        found = TiledDetector(detector, 320).detect(frame)
    assert len(found) == 1
    assert iou_matrix(found.xyxy, face[None])[0, 0] > 0.3


@pytest.mark.parametrize(("width", "height", "tile"), [(1280, 720, 320), (1920, 1080, 480), (300, 200, 320), (641, 479, 160)])
def test_tiles_cover_every_pixel_and_stay_inside_the_frame(width: int, height: int, tile: int) -> None:
    covered = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in tile_grid(width, height, tile, 0.25):
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        covered[y0:y1, x0:x1] = True
    assert covered.all()


def test_an_ensemble_keeps_what_either_member_finds() -> None:
    """A face only the tiled member sees is still in the ensemble's finds, as one box."""
    frame, face = street(90)
    with create_detector("blazeface", threshold=0.5) as whole, create_detector("blazeface", threshold=0.5) as base:
        found = EnsembleDetector([whole, TiledDetector(base, 320, whole=False)]).detect(frame)
    assert len(found) == 1
    assert iou_matrix(found.xyxy, face[None])[0, 0] > 0.3


@pytest.mark.parametrize(("tile", "overlap"), [(16, 0.25), (320, 0.95), (320, -0.1)])
def test_impossible_tiling_is_refused(tile: int, overlap: float) -> None:
    with create_detector("blazeface", threshold=0.5) as detector, pytest.raises(ValueError):
        TiledDetector(detector, tile, overlap)
