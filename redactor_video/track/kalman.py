"""Constant-velocity Kalman filter over a box's centre and size.

State: cx, cy, w, h and their velocities, in pixels and pixels per second, so
the same tuning works at any frame rate (and across variable frame intervals).
"""

from __future__ import annotations

import numpy as np

from redactor_video.track.policy import POLICY, TrackingPolicy

_H = np.hstack([np.eye(4), np.zeros((4, 4))])


def xyxy_to_z(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dtype=np.float64)


def z_to_xyxy(z: np.ndarray) -> np.ndarray:
    cx, cy, w, h = z[:4]
    w, h = max(w, 1.0), max(h, 1.0)
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float32)


class KalmanBox:
    """One face's motion estimate; `predict` advances it, `update` corrects it with a detection."""

    def __init__(self, box: np.ndarray, velocity: tuple[float, float] = (0.0, 0.0),
                 policy: TrackingPolicy = POLICY) -> None:
        """velocity: the centre's motion (px/s) where it is already known, e.g. from faint finds before;
        policy: its noise levels and what counts as a jump (track/policy.py)."""
        self.policy = policy
        self._start(xyxy_to_z(box))
        self.x[4:6] = velocity

    def _start(self, z: np.ndarray) -> None:
        self.x = np.concatenate([z, np.zeros(4)])
        size = max(z[2], z[3], 4.0)
        p = self.policy
        self.P = np.diag([(p.start_spread * size) ** 2] * 4 + [(p.start_speed * size) ** 2] * 4)
        self._since_update = 0.0

    def predict(self, dt: float) -> np.ndarray:
        f = np.eye(8)
        f[:4, 4:] = np.eye(4) * dt
        size = max(self.x[2], self.x[3], 4.0)
        q = (self.policy.acceleration * size) ** 2
        g = np.vstack([np.eye(4) * dt * dt / 2, np.eye(4) * dt])
        self.x = f @ self.x
        self.P = f @ self.P @ f.T + g @ g.T * q
        self._since_update += dt
        self.x[2] = max(self.x[2], 1.0)
        self.x[3] = max(self.x[3], 1.0)
        return z_to_xyxy(self.x)

    def update(self, box: np.ndarray, faint: bool = False) -> np.ndarray:
        """Correct with a detection. One further from the prediction than a face could have gone
        (jump_speed) restarts the estimate there, at rest: a jump is a face seen anew (a camera cut, a
        looped clip, the tracker taking over a neighbour), and read as motion it would send the prediction,
        and the mask that follows it, flying off. A faint detection (under the start score) that far off
        restarts nothing and is not folded in: its box can sit a third of a face off, and the next
        confident find would then be read as motion."""
        z = xyxy_to_z(box)
        size = max(z[2], z[3], 4.0)
        jump = float(np.hypot(*(z[:2] - self.x[:2])))
        if jump > size * (self.policy.jump_slack + self.policy.jump_speed * self._since_update):
            if not faint:
                self._start(z)
            return z_to_xyxy(self.x)
        self._since_update = 0.0
        r = np.eye(4) * (self.policy.box_noise * max(z[2], z[3], 4.0)) ** 2
        s = _H @ self.P @ _H.T + r
        k = self.P @ _H.T @ np.linalg.inv(s)
        self.x = self.x + k @ (z - _H @ self.x)
        self.P = (np.eye(8) - k @ _H) @ self.P
        return z_to_xyxy(self.x)

    @property
    def box(self) -> np.ndarray:
        return z_to_xyxy(self.x)

    def position_sigma(self) -> float:
        """One standard deviation of the centre estimate, in pixels."""
        return float(np.sqrt(max(self.P[0, 0], self.P[1, 1])))

    def velocity(self) -> np.ndarray:
        """The centre's estimated motion, in pixels per second."""
        return self.x[4:6].astype(np.float32)
