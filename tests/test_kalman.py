"""The Kalman motion model of one face: what it learns from finds, and what it refuses to learn."""

from __future__ import annotations

import numpy as np
import pytest

from redactor_video.track.kalman import KalmanBox


def test_a_jump_restarts_the_motion_estimate_instead_of_flinging_it() -> None:
    """A looped clip puts a 78 px face back 50 px away in one frame: read as motion that is 1250 px/s and
    the coasting mask would fly off; the estimate restarts there at rest instead."""
    kf = KalmanBox(np.array([78, 78, 156, 156], np.float32))
    for _ in range(3):
        kf.predict(0.04)
        kf.update(np.array([78, 78, 156, 156], np.float32))
    kf.predict(0.04)
    kf.update(np.array([39, 64, 99, 124], np.float32))
    assert not kf.velocity().any()
    np.testing.assert_allclose(kf.predict(0.5), [39, 64, 99, 124], atol=1e-3)


def test_steady_walking_keeps_its_velocity() -> None:
    """3 face widths a second, detected every frame: well inside the jump limit, so the speed is learnt."""
    kf = KalmanBox(np.array([100, 100, 150, 150], np.float32))
    for k in range(1, 20):
        kf.predict(0.04)
        kf.update(np.array([100 + 6 * k, 100, 150 + 6 * k, 150], np.float32))
    assert np.hypot(*kf.velocity()) == pytest.approx(150, rel=0.15)


def test_a_faint_box_off_the_face_neither_restarts_nor_flings_the_estimate() -> None:
    """Walkers seed 28: confident finds of a 36 px face walking right at 175 px/s, a faint 63 px box
    40 px below between them; taken as a restart, the next find read as motion sent the mask upwards."""
    kf = KalmanBox(np.array([84, 380, 118, 423], np.float32))
    kf.predict(0.2)
    kf.update(np.array([119, 380, 155, 423], np.float32))
    kf.predict(0.04)
    kf.update(np.array([128, 409, 191, 472], np.float32), faint=True)
    kf.predict(0.16)
    kf.update(np.array([155, 380, 192, 422], np.float32))
    vx, vy = kf.velocity()
    assert vx > 100 and abs(vy) < 50
