"""The Numba kernels and the Masker: detail gone inside, every byte outside untouched, no sliver at the rim."""

from __future__ import annotations

import numpy as np
import pytest

from redactor_video.mask.kernels import MODES, SHAPES, apply_regions, redact_everything
from redactor_video.mask.masker import Masker
from tests.helpers import detail_left, portrait

H, W = 121, 161


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    """Seeded fine texture: any detail that survives redaction shows up in the high-pass band."""
    return np.random.default_rng(7).integers(0, 256, (H, W, 3), dtype=np.uint8)


def box_mask(shape: tuple[int, ...], boxes: list[list[int]]) -> np.ndarray:
    mask = np.zeros(shape[:2], bool)
    for x1, y1, x2, y2 in boxes:
        mask[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = True
    return mask


def core_mask(shape: tuple[int, ...], box: list[int], fraction: float) -> np.ndarray:
    """Pixels whose centre lies inside the ellipse inscribed in `box`, shrunk to `fraction` of its radii."""
    x1, y1, x2, y2 = box
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    rx, ry = (x2 - x1) / 2 * fraction, (y2 - y1) / 2 * fraction
    return ((xx - (x1 + x2) / 2) / rx) ** 2 + ((yy - (y1 + y2) / 2) / ry) ** 2 <= 1


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("mode", list(MODES))
def test_detail_gone_inside_and_untouched_outside(noise: np.ndarray, mode: str, shape: str) -> None:
    box = [30, 20, 111, 97]
    out = apply_regions(noise, np.array([box]), mode, shape)
    core = core_mask(noise.shape, box, 0.85)
    assert detail_left(noise, out, core) < 0.1
    outside = ~box_mask(noise.shape, [box])
    np.testing.assert_array_equal(out[outside], noise[outside])


@pytest.mark.parametrize("mode", list(MODES))
def test_real_face_loses_its_detail(mode: str) -> None:
    image, (x1, y1, x2, y2) = portrait("obama", 160)
    box = [int(x1), int(y1), int(np.ceil(x2)), int(np.ceil(y2))]
    out = apply_regions(image, np.array([box]), mode, "ellipse")
    assert detail_left(image, out, core_mask(image.shape, box, 0.85)) < 0.1


def test_input_is_not_modified(noise: np.ndarray) -> None:
    before = noise.copy()
    out = apply_regions(noise, np.array([[10, 10, 60, 60]]), "solid", "box")
    np.testing.assert_array_equal(noise, before)
    assert not np.shares_memory(out, noise)


@pytest.mark.parametrize("box", [[30, 20, 111, 97], [0, 0, 7, 5], [50, 40, 51, 41], [154, 114, 161, 121]])
def test_edge_pixels_covered_without_feather(noise: np.ndarray, box: list[int]) -> None:
    """With no feather a box region is filled to its last row and column: no 1-px sliver, no spill."""
    out = apply_regions(noise, np.array([box]), "solid", "box", feather=0.0)
    inside = box_mask(noise.shape, [box])
    assert not out[inside].any()
    np.testing.assert_array_equal(out[~inside], noise[~inside])


@pytest.mark.parametrize(
    "box",
    [[-20, -10, 40, 50], [130, 90, 200, 200], [-5, 30, 170, 60], [60, -40, 90, 130], [-50, -50, 300, 300]],
)
def test_regions_crossing_the_frame_border(noise: np.ndarray, box: list[int]) -> None:
    out = apply_regions(noise, np.array([box]), "solid", "box", feather=0.0)
    inside = box_mask(noise.shape, [box])
    assert not out[inside].any()
    np.testing.assert_array_equal(out[~inside], noise[~inside])


@pytest.mark.parametrize("box", [[-30, 10, 0, 50], [161, 10, 200, 50], [10, 121, 50, 150], [-9, -9, -1, -1]])
def test_regions_wholly_outside_change_nothing(noise: np.ndarray, box: list[int]) -> None:
    np.testing.assert_array_equal(apply_regions(noise, np.array([box])), noise)


@pytest.mark.parametrize("mode", list(MODES))
def test_overlapping_regions(noise: np.ndarray, mode: str) -> None:
    boxes = [[20, 20, 90, 90], [60, 40, 140, 110], [65, 45, 80, 60]]
    out = apply_regions(noise, np.array(boxes), mode, "box", feather=0.0)
    inside = box_mask(noise.shape, boxes)
    assert detail_left(noise, out, inside) < 0.1
    np.testing.assert_array_equal(out[~inside], noise[~inside])


@pytest.mark.parametrize("boxes", [np.zeros((0, 4), np.int32), np.zeros((0, 4), np.int64), []])
def test_no_regions_is_an_exact_copy(noise: np.ndarray, boxes: object) -> None:
    out = apply_regions(noise, boxes)
    np.testing.assert_array_equal(out, noise)
    assert out is not noise


@pytest.mark.parametrize(("h", "w"), [(1, 1), (3, 5), (121, 161), (240, 320)])
def test_odd_frame_sizes(h: int, w: int) -> None:
    image = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    box = [w // 4, h // 4, w - w // 4 + 1, h - h // 4 + 1]
    for mode in MODES:
        out = apply_regions(image, np.array([box]), mode, "box", feather=0.0)
        assert out.shape == image.shape and out.dtype == np.uint8
        outside = ~box_mask(image.shape, [box])
        np.testing.assert_array_equal(out[outside], image[outside])


@pytest.mark.parametrize(("mode", "shape", "strength", "feather"),
                         [("glow", "box", 0.1, 0.1), ("blur", "star", 0.1, 0.1),
                          ("blur", "box", 0.0, 0.1), ("blur", "box", 0.1, 1.0), ("blur", "box", 0.1, -0.1)])
def test_bad_settings_raise(noise: np.ndarray, mode: str, shape: str, strength: float, feather: float) -> None:
    with pytest.raises(ValueError):
        apply_regions(noise, np.array([[0, 0, 10, 10]]), mode, shape, strength, feather)


@pytest.mark.parametrize(("h", "w"), [(121, 161), (240, 320), (90, 160)])
def test_redact_everything_leaves_no_detail_anywhere(h: int, w: int) -> None:
    image, _ = portrait("biden", 320)
    image = np.ascontiguousarray(image[100:100 + h, :w])
    out = redact_everything(image)
    assert out.shape == image.shape
    cell = np.zeros((h, w), bool)
    for ys in np.array_split(np.arange(h), 4):
        for xs in np.array_split(np.arange(w), 4):
            cell[:] = False
            cell[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1] = True
            assert detail_left(image, out, cell) < 0.1


@pytest.mark.parametrize("face", [(40.3, 30.6, 90.2, 95.9), (70.0, 20.0, 110.5, 70.5)])
def test_masker_covers_the_face_ellipse_at_full_strength(face: tuple[float, ...]) -> None:
    """Every pixel of the face's inscribed ellipse gets the full effect (solid: black), even at mask scale 1."""
    image = np.full((H, W, 3), 200, np.uint8)
    masker = Masker("solid", "ellipse", mask_scale=1.0)
    out = masker.apply(image, masker.regions(np.array([face]), W, H))
    assert not out[core_mask(image.shape, list(face), 1.0)].any()


@pytest.mark.parametrize("face", [(-20.0, 30.0, 20.0, 80.0), (141.0, 30.0, 181.0, 80.0), (0.0, 0.0, 30.5, 41.2)])
def test_masker_covers_faces_at_the_frame_edge(face: tuple[float, ...]) -> None:
    image = np.full((H, W, 3), 200, np.uint8)
    masker = Masker("solid", "ellipse")
    out = masker.apply(image, masker.regions(np.array([face]), W, H))
    assert not out[core_mask(image.shape, list(face), 1.0)].any()


def test_masker_box_shape_covers_the_whole_face_box() -> None:
    image = np.full((H, W, 3), 200, np.uint8)
    masker = Masker("solid", "box", mask_scale=1.0)
    face = (40.0, 30.0, 90.0, 95.0)
    out = masker.apply(image, masker.regions(np.array([face]), W, H))
    assert not out[30:95, 40:90].any()


def test_masker_regions_round_outward_and_drop_outside() -> None:
    masker = Masker("blur", "box", mask_scale=1.0, feather=0.0)
    regions = masker.regions(np.array([[10.2, 20.7, 30.1, 40.9], [-5.0, -5.0, 5.5, 5.5], [150.0, 110.0, 170.0, 130.0]]),
                             W, H)
    # Regions keep their extent past the frame edge (the mask is fitted to the whole face); kernels clip.
    assert regions.boxes.tolist() == [[10, 20, 31, 41], [-5, -5, 6, 6], [150, 110, 170, 130]]
    assert len(masker.regions(np.array([[200.0, 200.0, 220.0, 220.0]]), W, H)) == 0


def test_masker_refuses_a_mask_smaller_than_the_face() -> None:
    with pytest.raises(ValueError, match="mask_scale"):
        Masker(mask_scale=0.9)
