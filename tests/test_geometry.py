"""Box geometry: the size, centre and overlap every stage measures faces by."""

from __future__ import annotations

import numpy as np

from redactor_video import geometry


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], np.float32)
    np.testing.assert_allclose(geometry.iou_matrix(a, b), [[1.0, 1 / 3], [0.0, 0.0]], rtol=1e-6)
    assert geometry.iou_matrix(a, np.zeros((0, 4), np.float32)).shape == (2, 0)


def test_a_face_is_as_large_as_its_box_is_long_and_centred_in_it() -> None:
    tall, wide = np.array([10, 20, 30, 60], np.float32), np.array([0, 0, 50, 10], np.float32)
    assert geometry.size(tall) == 40 and geometry.size(wide) == 50
    np.testing.assert_array_equal(geometry.sizes(np.stack([tall, wide])), [40, 50])
    assert geometry.sizes(np.zeros((0, 4))).shape == (0,)
    np.testing.assert_array_equal(geometry.centre(tall), [20, 40])
