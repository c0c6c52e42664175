"""Numba kernels: blur, pixelate or fill many face regions of one frame in one call.

These run on every frame, so they are ours and compiled: each region is read
once, processed in a float scratch buffer and blended back through an
elliptical (or box) mask whose feathered edge lies outside the region's core,
so the face itself always gets the full effect.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MODES = {"blur": 0, "pixelate": 1, "solid": 2}
SHAPES = {"ellipse": 0, "box": 1}


@njit(cache=True, nogil=True)
def _box_pass_rows(src: np.ndarray, dst: np.ndarray, r: int) -> None:
    h, w, c = src.shape
    norm = 1.0 / (2 * r + 1)
    for y in range(h):
        for ch in range(c):
            acc = 0.0
            for k in range(-r, r + 1):
                acc += src[y, min(max(k, 0), w - 1), ch]
            for x in range(w):
                dst[y, x, ch] = acc * norm
                acc += src[y, min(x + r + 1, w - 1), ch] - src[y, max(x - r, 0), ch]


@njit(cache=True, nogil=True)
def _box_pass_cols(src: np.ndarray, dst: np.ndarray, r: int) -> None:
    """Vertical pass, row-major: one running sum per column keeps memory access sequential."""
    h, w, c = src.shape
    norm = 1.0 / (2 * r + 1)
    acc = np.zeros((w, c), np.float32)
    for k in range(-r, r + 1):
        row = src[min(max(k, 0), h - 1)]
        for x in range(w):
            for ch in range(c):
                acc[x, ch] += row[x, ch]
    for y in range(h):
        add = src[min(y + r + 1, h - 1)]
        sub = src[max(y - r, 0)]
        for x in range(w):
            for ch in range(c):
                dst[y, x, ch] = acc[x, ch] * norm
                acc[x, ch] += add[x, ch] - sub[x, ch]


@njit(cache=True, nogil=True)
def _block_means(patch: np.ndarray, block: int) -> np.ndarray:
    """Average each block x block cell: the pixelate effect, and a cheap first step of a large blur."""
    h, w, c = patch.shape
    gh, gw = (h + block - 1) // block, (w + block - 1) // block
    out = np.zeros((gh, gw, c), np.float32)
    counts = np.zeros((gh, gw), np.float32)
    for y in range(h):
        gy = y // block
        for x in range(w):
            gx = x // block
            counts[gy, gx] += 1.0
            for ch in range(c):
                out[gy, gx, ch] += patch[y, x, ch]
    for gy in range(gh):
        for gx in range(gw):
            for ch in range(c):
                out[gy, gx, ch] /= counts[gy, gx]
    return out


@njit(cache=True, nogil=True)
def _blurred_grid(patch: np.ndarray, r: int) -> tuple[np.ndarray, int]:
    """Gaussian-like blur (three box passes each way, sigma ~ r) computed on a grid shrunk by `step`.

    A blur of radius r removes all detail finer than r, so working on a grid of
    r/3-pixel cells loses nothing visible and keeps the cost flat in region size.
    """
    step = max(1, r // 3)
    grid = _block_means(patch, step)
    rr = max(1, int(round(r / step)))
    tmp = np.empty_like(grid)
    for _ in range(3):
        _box_pass_rows(grid, tmp, rr)
        _box_pass_cols(tmp, grid, rr)
    return grid, step


@njit(cache=True, nogil=True)
def _axis_weights(n: int, step: int, cells: int, smooth: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each full-resolution coordinate: the two grid cells to read and the weight of the second."""
    lo = np.empty(n, np.int64)
    hi = np.empty(n, np.int64)
    wt = np.zeros(n, np.float32)
    for i in range(n):
        if smooth and step > 1:
            f = min(max((i + 0.5) / step - 0.5, 0.0), cells - 1.0)
            lo[i] = int(f)
            hi[i] = min(lo[i] + 1, cells - 1)
            wt[i] = f - lo[i]
        else:
            lo[i] = min(i // step, cells - 1)
            hi[i] = lo[i]
    return lo, hi, wt


@njit(cache=True, nogil=True)
def _blend(out: np.ndarray, grid: np.ndarray, step: int, smooth: bool, box: np.ndarray, clip: np.ndarray,
           shape: int, feather: float) -> None:
    """Write the effect (grid upsampled) into the clipped part of `box` through a mask that is 1 in the
    core and fades at the rim; the mask is fitted to the whole box, even where it runs past the frame.

    Per row, the spans where the mask is 1 or 0 are solved exactly, so only the
    feathered rim pays for a distance and a blend.
    """
    c = out.shape[2]
    x0, y0, x1, y1 = clip[0], clip[1], clip[2], clip[3]
    gy0, gy1, wy = _axis_weights(y1 - y0, step, grid.shape[0], smooth)
    gx0, gx1, wx = _axis_weights(x1 - x0, step, grid.shape[1], smooth)
    cx, cy = (box[0] + box[2] - 1) / 2.0, (box[1] + box[3] - 1) / 2.0
    ax, ay = max((box[2] - box[0]) / 2.0, 1.0), max((box[3] - box[1]) / 2.0, 1.0)
    inner = 1.0 - feather if feather > 0.0 else 1.0
    pixel = np.empty(c, np.float32)
    for y in range(y1 - y0):
        r0, r1, fy = grid[gy0[y]], grid[gy1[y]], wy[y]
        dy = (y0 + y - cy) / ay
        if abs(dy) >= 1.0:
            continue
        if shape == 0:
            outer_half = np.sqrt(1.0 - dy * dy) * ax
            inner_half = np.sqrt(inner * inner - dy * dy) * ax if abs(dy) < inner else -1.0
        else:
            outer_half = ax
            inner_half = inner * ax if abs(dy) <= inner else -1.0
        lo = max(int(np.floor(cx - outer_half)) - x0, 0)
        hi = min(int(np.ceil(cx + outer_half)) - x0 + 1, x1 - x0)
        for x in range(lo, hi):
            dx = (x0 + x - cx) / ax
            if abs(x0 + x - cx) < inner_half:
                alpha = 1.0
            else:
                d = np.sqrt(dx * dx + dy * dy) if shape == 0 else max(abs(dx), abs(dy))
                if d >= 1.0:
                    continue
                alpha = 1.0 if d <= inner else (1.0 - d) / feather
            a, b, fx = gx0[x], gx1[x], wx[x]
            if smooth:
                for ch in range(c):
                    top = r0[a, ch] + (r0[b, ch] - r0[a, ch]) * fx
                    bottom = r1[a, ch] + (r1[b, ch] - r1[a, ch]) * fx
                    pixel[ch] = top + (bottom - top) * fy
            else:
                for ch in range(c):
                    pixel[ch] = r0[a, ch]
            if alpha >= 1.0:
                for ch in range(c):
                    out[y0 + y, x0 + x, ch] = np.uint8(min(max(pixel[ch] + 0.5, 0.0), 255.0))
            else:
                for ch in range(c):
                    v = out[y0 + y, x0 + x, ch] * (1.0 - alpha) + pixel[ch] * alpha
                    out[y0 + y, x0 + x, ch] = np.uint8(min(max(v + 0.5, 0.0), 255.0))


@njit(cache=True, nogil=True)
def _apply(out: np.ndarray, boxes: np.ndarray, mode: int, shape: int, strength: float, feather: float) -> None:
    h, w = out.shape[0], out.shape[1]
    clip = np.empty(4, np.int64)
    for i in range(boxes.shape[0]):
        box = boxes[i]
        clip[0], clip[1] = min(max(box[0], 0), w), min(max(box[1], 0), h)
        clip[2], clip[3] = min(max(box[2], 0), w), min(max(box[3], 0), h)
        if clip[2] <= clip[0] or clip[3] <= clip[1]:
            continue
        patch = out[clip[1]:clip[3], clip[0]:clip[2], :]
        size = max(box[2] - box[0], box[3] - box[1])
        if mode == 0:
            grid, step = _blurred_grid(patch, max(2, int(size * strength)))
            _blend(out, grid, step, True, box, clip, shape, feather)
        elif mode == 1:
            step = max(2, int(np.ceil(size * strength)))
            _blend(out, _block_means(patch, step), step, False, box, clip, shape, feather)
        else:
            _blend(out, np.zeros((1, 1, out.shape[2]), np.float32), size, False, box, clip, shape, feather)


def apply_regions(
    image: np.ndarray,
    boxes: np.ndarray,
    mode: str = "blur",
    shape: str = "ellipse",
    strength: float = 0.125,
    feather: float = 0.15,
) -> np.ndarray:
    """A redacted copy of `image` (HxWx3 uint8) with every box in `boxes` (n x 4 int, xyxy) masked.

    Boxes may run past the frame edge: the mask is fitted to the whole box and
    applied to the part inside the frame.

    `strength` is relative to each region's size: the blur radius (~ Gaussian
    sigma) or the pixel-block size as a fraction of the region's longer side.
    """
    if mode not in MODES or shape not in SHAPES:
        raise ValueError(f"unknown mode {mode!r} or shape {shape!r}")
    if not 0.0 <= feather < 1.0 or strength <= 0.0:
        raise ValueError("feather must be in [0, 1) and strength > 0")
    out = np.array(image, dtype=np.uint8, order="C", copy=True)
    if len(boxes):
        whole = np.ascontiguousarray(np.asarray(boxes, dtype=np.int64).reshape(-1, 4))
        _apply(out, whole, MODES[mode], SHAPES[shape], float(strength), float(feather))
    return out


def redact_everything(image: np.ndarray) -> np.ndarray:
    """The fail-closed frame: the whole picture blurred past recognition."""
    h, w = image.shape[:2]
    return apply_regions(image, np.array([[0, 0, w, h]]), mode="blur", shape="box", strength=1 / 16, feather=0.0)
