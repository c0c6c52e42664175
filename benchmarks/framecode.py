"""A frame number stamped into the bottom rows of a picture, readable after lossy encoding.

The live filter drops frames when it falls behind and stamps its own
timestamps, so a received recording cannot be lined up with its source by
position. A strip of large black/white blocks says which source frame each
received picture is; the number is written twice (the second time inverted),
so a strip partly covered by a face's mask reads as unknown, never as a wrong
frame.
"""

from __future__ import annotations

import numpy as np

BITS = 12
STRIP = 16  # rows at the bottom of the frame
_GUARD = (1, 0)  # a white block first and a black block last tell a stamped frame from any other


def _cells(width: int) -> list[tuple[int, int]]:
    n = 2 * BITS + len(_GUARD)
    edges = np.linspace(0, width, n + 1).astype(int)
    return list(zip(edges[:-1], edges[1:]))


def stamp(image: np.ndarray, number: int) -> np.ndarray:
    """A copy of `image` (HxWx3 uint8) with `number` (< 2**BITS) in its bottom STRIP rows."""
    if not 0 <= number < 2 ** BITS:
        raise ValueError(f"frame number must be in [0, {2 ** BITS})")
    out = image.copy()
    code = [(number >> i) & 1 for i in range(BITS)]
    bits = [_GUARD[0]] + code + [1 - b for b in code] + [_GUARD[1]]
    for bit, (x0, x1) in zip(bits, _cells(image.shape[1])):
        out[-STRIP:, x0:x1] = 235 if bit else 16
    return out


def read(image: np.ndarray) -> int | None:
    """The stamped number, or None when the strip does not hold one."""
    strip = image[-STRIP + 3:-3].astype(np.float32).mean(axis=2)
    bits = []
    for x0, x1 in _cells(image.shape[1]):
        pad = (x1 - x0) // 4
        bits.append(int(strip[:, x0 + pad:x1 - pad].mean() > 125))
    code, check = bits[1:1 + BITS], bits[1 + BITS:-1]
    if (bits[0], bits[-1]) != _GUARD or any(a == b for a, b in zip(code, check)):
        return None
    return sum(bit << i for i, bit in enumerate(code))
