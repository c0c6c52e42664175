"""Our Numba masking kernels against the obvious OpenCV code doing the same job.

For every region the OpenCV baseline does what `redactor_video.mask.kernels` does:
blur (a Gaussian with sigma equal to our box-blur radius, which three box passes
approximate), pixelate (area-average down, nearest up) or fill, then blend back
through the same feathered ellipse (alpha from NumPy, `cv2.blendLinear`). Both
start from a copy of the frame, as `apply_regions` does. For blur we also time
`cv2.stackBlur`, OpenCV's constant-time blur, since GaussianBlur's cost grows
with sigma. A blur that is faster only because it is weaker would prove nothing,
so we report how much detail (Laplacian variance of the region's core) each
leaves behind. Implementations are timed in rotation, so a shared CPU's load
falls on all of them alike, and with all their thread pools alive, as in the
pipeline.

Run: python -m benchmarks.kernels [--runs 50]
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import click
import cv2
import numba
import numpy as np
import skimage.data

from redactor_video.mask import kernels
from redactor_video.mask.kernels import apply_regions

STRENGTH = 0.125
FEATHER = 0.15
"""Masker's defaults: blur radius (or block) 1/8 of the region's longer side, 15 % feathered rim."""


@dataclass(frozen=True)
class Scenario:
    """A frame size and a seeded set of face regions, as the masker would hand them to the kernels."""

    name: str
    width: int
    height: int
    count: int
    min_side: int
    max_side: int
    seed: int = 0

    def boxes(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        w = rng.integers(self.min_side, self.max_side + 1, self.count)
        h = np.minimum((w * rng.uniform(1.0, 1.3, self.count)).astype(int), self.height)
        x0 = rng.integers(0, self.width - w + 1)
        y0 = rng.integers(0, self.height - h + 1)
        return np.column_stack([x0, y0, x0 + w, y0 + h]).astype(np.int64)

    def frame(self) -> np.ndarray:
        """A detailed natural picture at this size, so blur has something to remove."""
        tiles = np.concatenate([skimage.data.astronaut(), cv2.resize(skimage.data.coffee(), (512, 512))], axis=1)
        return cv2.resize(tiles, (self.width, self.height), interpolation=cv2.INTER_CUBIC)


SCENARIOS = (
    Scenario("720p, 5 faces 40-120 px", 1280, 720, 5, 40, 120),
    Scenario("1080p, 20 faces 20-200 px", 1920, 1080, 20, 20, 200),
    Scenario("1080p, 2 faces 400 px", 1920, 1080, 2, 400, 400),
)


def _alpha(h: int, w: int, feather: float) -> np.ndarray:
    """The kernels' feathered ellipse: 1 inside 1 - feather of the radius, linear to 0 at the rim."""
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    ay, ax = max(h / 2.0, 1.0), max(w / 2.0, 1.0)
    yy, xx = np.ogrid[:h, :w]
    d = np.sqrt(((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2)
    return np.clip((1.0 - d) / feather, 0.0, 1.0).astype(np.float32)


def opencv_regions(image: np.ndarray, boxes: np.ndarray, mode: str = "blur", strength: float = STRENGTH,
                   feather: float = FEATHER, blur: str = "gaussian") -> np.ndarray:
    """The same redaction as `apply_regions(..., shape="ellipse")`, one OpenCV call per step.

    `blur="gaussian"` is `cv2.GaussianBlur` with sigma = our radius; `blur="stack"` is
    `cv2.stackBlur`, OpenCV's constant-time-per-pixel blur, sized to the same sigma
    (a stack blur of radius R is a triangle filter with variance R(R+2)/6).
    """
    out = image.copy()
    for x0, y0, x1, y1 in boxes:
        roi = out[y0:y1, x0:x1]
        h, w = roi.shape[:2]
        size = max(w, h)
        if mode == "blur":
            sigma = max(2, int(size * strength))
            if blur == "stack":
                radius = round(math.sqrt(6.0) * sigma)
                effect = cv2.stackBlur(roi, (2 * radius + 1, 2 * radius + 1))
            else:
                effect = cv2.GaussianBlur(roi, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REPLICATE)
        elif mode == "pixelate":
            block = max(2, math.ceil(size * strength))
            small = cv2.resize(roi, (max(1, math.ceil(w / block)), max(1, math.ceil(h / block))),
                               interpolation=cv2.INTER_AREA)
            effect = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
        else:
            effect = np.zeros_like(roi)
        alpha = _alpha(h, w, feather)
        roi[:] = cv2.blendLinear(effect, roi, alpha, 1.0 - alpha)
    return out


def numba_regions(image: np.ndarray, boxes: np.ndarray, mode: str = "blur", threads: int | None = None) -> np.ndarray:
    """`apply_regions` with the masker's defaults, on `threads` Numba threads (None: Numba's default)."""
    if threads is None:
        return apply_regions(image, boxes, mode=mode, shape="ellipse", strength=STRENGTH, feather=FEATHER)
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        return apply_regions(image, boxes, mode=mode, shape="ellipse", strength=STRENGTH, feather=FEATHER)
    finally:
        numba.set_num_threads(before)


def median_ms(fns: dict[str, Callable[[], object]], runs: int, warmup: int = 3) -> dict[str, float]:
    """Median wall-clock ms of each function, timed in rotation so a shared CPU's load hits all alike.

    Every function gets `warmup` untimed calls first (Numba compiles on the first).
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for i in range(runs):
        for name in names[i % len(names):] + names[:i % len(names)]:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return {name: 1000.0 * statistics.median(t) for name, t in times.items()}


def detail_left(before: np.ndarray, after: np.ndarray, boxes: np.ndarray) -> float:
    """Mean over regions of Laplacian variance in the central half of the region, after / before."""
    ratios = []
    g0 = cv2.cvtColor(before, cv2.COLOR_RGB2GRAY)
    g1 = cv2.cvtColor(after, cv2.COLOR_RGB2GRAY)
    for x0, y0, x1, y1 in boxes:
        w, h = x1 - x0, y1 - y0
        sl = np.s_[y0 + h // 4:y1 - h // 4, x0 + w // 4:x1 - w // 4]
        v0 = cv2.Laplacian(g0[sl], cv2.CV_32F).var()
        if v0 > 0:
            ratios.append(cv2.Laplacian(g1[sl], cv2.CV_32F).var() / v0)
    return float(np.mean(ratios))


@dataclass(frozen=True)
class KernelResult:
    """One implementation on one scenario and mode: time, and how it compares with our kernel's output."""

    scenario: str
    mode: str
    implementation: str
    ms: float
    detail_left: float
    mean_abs_diff: float


def kernels_parallel() -> bool:
    """Whether any of redactor's kernels is compiled with parallel=True (then thread count matters)."""
    return any(getattr(f, "targetoptions", {}).get("parallel") for f in vars(kernels).values())


def implementations(image: np.ndarray, boxes: np.ndarray, mode: str) -> dict[str, Callable[[], np.ndarray]]:
    """What we time for a mode. Parallel kernels also run on one thread: on a loaded machine every
    prange launch waits for a worker that may not be scheduled."""
    if kernels_parallel():
        impls = {f"Numba, {numba.get_num_threads()} threads": lambda: numba_regions(image, boxes, mode),
                 "Numba, 1 thread": lambda: numba_regions(image, boxes, mode, threads=1)}
    else:
        impls = {"Numba (single-threaded kernels)": lambda: numba_regions(image, boxes, mode)}
    impls["OpenCV"] = lambda: opencv_regions(image, boxes, mode)
    if mode == "blur":
        impls["OpenCV stackBlur"] = lambda: opencv_regions(image, boxes, mode, blur="stack")
    return impls


def run(runs: int, modes: tuple[str, ...] = ("blur", "pixelate", "solid")) -> list[KernelResult]:
    results = []
    for sc in SCENARIOS:
        image, boxes = sc.frame(), sc.boxes()
        for mode in modes:
            impls = implementations(image, boxes, mode)
            ours = numba_regions(image, boxes, mode)
            times = median_ms(impls, runs)
            for name, fn in impls.items():
                out = fn()
                results.append(KernelResult(sc.name, mode, name, times[name], detail_left(image, out, boxes),
                                            float(np.abs(out.astype(np.int16) - ours.astype(np.int16)).mean())))
    return results


def markdown(results: list[KernelResult]) -> str:
    """ms per frame and ratio to our default kernel; detail left (Laplacian variance after/before) is for blur."""
    lines = ["| scenario | mode | implementation | ms / frame | x Numba | detail left | "
             "mean abs diff to Numba (0-255) |",
             "|---|---|---|---:|---:|---:|---:|"]
    base: dict[tuple[str, str], float] = {}
    for r in results:
        base.setdefault((r.scenario, r.mode), r.ms)
        detail = f"{r.detail_left:.3f}" if r.mode == "blur" else "-"
        lines.append(f"| {r.scenario} | {r.mode} | {r.implementation} | {r.ms:.2f} | "
                     f"{r.ms / base[(r.scenario, r.mode)]:.2f} | {detail} | {r.mean_abs_diff:.2f} |")
    return "\n".join(lines)


@click.command()
@click.option("--runs", type=click.IntRange(1), default=50, show_default=True, help="Timed runs per cell (median).")
def main(runs: int) -> None:
    """Time the masking kernels against OpenCV and print a Markdown table."""
    threads = f"parallel, {numba.get_num_threads()} threads" if kernels_parallel() else "single-threaded"
    click.echo(f"Numba {numba.__version__} (redactor's kernels: {threads}), OpenCV {cv2.__version__} "
               f"({cv2.getNumThreads()} threads); median of {runs} runs after warm-up\n")
    click.echo(markdown(run(runs)))


if __name__ == "__main__":
    main()
