"""Numba kernels: blur, pixelate or fill many face regions of one frame in one call.

These run on every frame, so they are ours and compiled: each region is read
once, processed in a float scratch buffer and blended back through an
elliptical (or box) mask whose feathered edge lies outside the region's core,
so the face itself always gets the full effect.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

MODES = {"blur": 0, "pixelate": 1, "solid": 2}
SHAPES = {"ellipse": 0, "box": 1}


@njit(cache=True, nogil=True, parallel=True)
def _box_pass_rows(src: np.ndarray, dst: np.ndarray, r: int) -> None:
    h, w, c = src.shape
    norm = 1.0 / (2 * r + 1)
    for y in prange(h):
        for ch in range(c):
            acc = 0.0
            for k in range(-r, r + 1):
                acc += src[y, min(max(k, 0), w - 1), ch]
            for x in range(w):
                dst[y, x, ch] = acc * norm
                acc += src[y, min(x + r + 1, w - 1), ch] - src[y, max(x - r, 0), ch]


@njit(cache=True, nogil=True, parallel=True)
def _box_pass_cols(src: np.ndarray, dst: np.ndarray, r: int) -> None:
    h, w, c = src.shape
    norm = 1.0 / (2 * r + 1)
    for x in prange(w):
        for ch in range(c):
            acc = 0.0
            for k in range(-r, r + 1):
                acc += src[min(max(k, 0), h - 1), x, ch]
            for y in range(h):
                dst[y, x, ch] = acc * norm
                acc += src[min(y + r + 1, h - 1), x, ch] - src[max(y - r, 0), x, ch]


@njit(cache=True, nogil=True)
def _blurred(patch: np.ndarray, r: int) -> np.ndarray:
    """Three box passes each way: a close approximation of a Gaussian with sigma ~ r."""
    a = patch.astype(np.float32)
    b = np.empty_like(a)
    for _ in range(3):
        _box_pass_rows(a, b, r)
        _box_pass_cols(b, a, r)
    return a


@njit(cache=True, nogil=True)
def _pixelated(patch: np.ndarray, block: int) -> np.ndarray:
    h, w, c = patch.shape
    out = np.empty((h, w, c), np.float32)
    for by in range(0, h, block):
        for bx in range(0, w, block):
            y1, x1 = min(by + block, h), min(bx + block, w)
            n = (y1 - by) * (x1 - bx)
            for ch in range(c):
                s = 0.0
                for y in range(by, y1):
                    for x in range(bx, x1):
                        s += patch[y, x, ch]
                m = s / n
                for y in range(by, y1):
                    for x in range(bx, x1):
                        out[y, x, ch] = m
    return out


@njit(cache=True, nogil=True, parallel=True)
def _blend(out: np.ndarray, effect: np.ndarray, x0: int, y0: int, shape: int, feather: float) -> None:
    """Write `effect` into `out` at (x0, y0) through a mask that is 1 in the core and fades at the rim."""
    h, w, c = effect.shape
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    ax, ay = max(w / 2.0, 1.0), max(h / 2.0, 1.0)
    inner = 1.0 - feather
    for y in prange(h):
        for x in range(w):
            if shape == 0:
                dx, dy = (x - cx) / ax, (y - cy) / ay
                d = np.sqrt(dx * dx + dy * dy)
            else:
                d = max(abs(x - cx) / ax, abs(y - cy) / ay)
            if d <= inner or feather <= 0.0:
                alpha = 1.0 if d <= 1.0 else 0.0
            elif d >= 1.0:
                alpha = 0.0
            else:
                alpha = (1.0 - d) / feather
            if alpha <= 0.0:
                continue
            for ch in range(c):
                v = out[y0 + y, x0 + x, ch] * (1.0 - alpha) + effect[y, x, ch] * alpha
                out[y0 + y, x0 + x, ch] = np.uint8(min(max(v + 0.5, 0.0), 255.0))


@njit(cache=True, nogil=True)
def _apply(out: np.ndarray, boxes: np.ndarray, mode: int, shape: int, strength: float, feather: float) -> None:
    for i in range(boxes.shape[0]):
        x0, y0, x1, y1 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        if x1 <= x0 or y1 <= y0:
            continue
        patch = out[y0:y1, x0:x1, :]
        size = max(x1 - x0, y1 - y0)
        if mode == 0:
            effect = _blurred(patch, max(2, int(size * strength)))
        elif mode == 1:
            effect = _pixelated(patch, max(2, int(np.ceil(size * strength))))
        else:
            effect = np.zeros(patch.shape, np.float32)
        _blend(out, effect, x0, y0, shape, feather)


def apply_regions(
    image: np.ndarray,
    boxes: np.ndarray,
    mode: str = "blur",
    shape: str = "ellipse",
    strength: float = 0.125,
    feather: float = 0.15,
) -> np.ndarray:
    """A redacted copy of `image` (HxWx3 uint8) with every box in `boxes` (n x 4 int, xyxy) masked.

    `strength` is relative to each region's size: the blur radius (~ Gaussian
    sigma) or the pixel-block size as a fraction of the region's longer side.
    """
    if mode not in MODES or shape not in SHAPES:
        raise ValueError(f"unknown mode {mode!r} or shape {shape!r}")
    if not 0.0 <= feather < 1.0 or strength <= 0.0:
        raise ValueError("feather must be in [0, 1) and strength > 0")
    out = np.array(image, dtype=np.uint8, order="C", copy=True)
    if len(boxes):
        h, w = out.shape[:2]
        clipped = np.asarray(boxes, dtype=np.int64).reshape(-1, 4).copy()
        clipped[:, 0::2] = np.clip(clipped[:, 0::2], 0, w)
        clipped[:, 1::2] = np.clip(clipped[:, 1::2], 0, h)
        _apply(out, clipped, MODES[mode], SHAPES[shape], float(strength), float(feather))
    return out


def redact_everything(image: np.ndarray) -> np.ndarray:
    """The fail-closed frame: the whole picture blurred past recognition."""
    h, w = image.shape[:2]
    return apply_regions(image, np.array([[0, 0, w, h]]), mode="blur", shape="box", strength=1 / 16, feather=0.0)
