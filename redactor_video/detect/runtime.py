"""The OpenVINO runtime both detectors share, with compiled networks cached beside the model files.

Compiling a network takes 0.15-0.3 s per input size, paid by every process:
a tenth of a short clip's run. OpenVINO can keep compiled networks on disk; the
cache lives in the model folder (same owner, same trust as the verified model
files it is derived from) and is only a speed-up: OpenVINO recompiles when an
entry is missing, stale or unreadable, and a folder we cannot write means no cache.
CenterFace compiles one network per input size, so the folder keeps only the
CACHE_KEPT networks used last: inputs of ever new sizes cannot fill the disk.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import openvino as ov

from redactor_video.errors import ModelError
from redactor_video.models import model_path, models_dir, spec_for

CACHE_SUBDIR = "openvino-cache"
CACHE_KEPT = 32
"""Compiled networks kept per model file, in files. CenterFace compiles one per input size, 7.5 MB each (a
frame size and scale give one: the whole frame, or its strips). A site's cameras need a few and the test
suite about twenty, so 32 keep them all warm in at most 240 MB (fewer would make the suite recompile every
size on every run: LRU over a cycle longer than the cache always misses), where a folder of photos of
assorted sizes had added 7.5 MB per size, for ever. An evicted network costs its 0.15-0.5 s compile again."""

# OpenVINO's bindings set up their NumPy bridge (pybind11's npy_api) on first use, under a call_once that
# deadlocks when two threads reach it together: two cameras' detectors warming up at the same moment hung
# `redactor serve` at start in 2 runs of 9 (both threads waiting in InferRequest.infer). Crossing the bridge
# once here, while the first import holds the interpreter alone, leaves no first use to race for.
ov.Tensor(np.zeros(1, np.float32))


def core_for(name: str, models: str | os.PathLike[str] | None = None) -> ov.Core:
    """An OpenVINO core caching compiled networks of model `name` in a folder named by its SHA-256, so a
    replaced model file can never meet a network compiled from the old one."""
    runtime = ov.Core()
    cache = models_dir(models) / CACHE_SUBDIR / spec_for(name).sha256[:16]
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        return runtime
    if os.access(cache, os.W_OK):
        runtime.set_property({"CACHE_DIR": str(cache)})
    return runtime


def read_model(runtime: ov.Core, name: str, models: str | os.PathLike[str] | None = None) -> ov.Model:
    """The registry model `name` as an OpenVINO model (ONNX and TFLite files alike), to reshape first."""
    try:
        return runtime.read_model(str(model_path(name, models)))
    except RuntimeError as exc:
        raise ModelError(f"OpenVINO could not load {name}: {first_line(exc)}") from None


def compile_file(name: str, config: dict[str, object], models: str | os.PathLike[str] | None = None
                 ) -> ov.CompiledModel:
    """The registry model `name` compiled for the CPU; from a cached network when there is one, which
    also skips converting the model file (most of a TFLite model's load time)."""
    try:
        return compile_network(core_for(name, models), str(model_path(name, models)), config)
    except RuntimeError as exc:
        raise ModelError(f"OpenVINO could not load {name}: {first_line(exc)}") from None


def compile_network(runtime: ov.Core, model: ov.Model | str, config: dict[str, object]) -> ov.CompiledModel:
    """`model` compiled for the CPU by `runtime`; then its cache folder, if it has one, keeps only the
    CACHE_KEPT networks used last."""
    compiled = runtime.compile_model(model, "CPU", config)
    folder = runtime.get_property("CACHE_DIR")
    if folder:
        evict(Path(folder), CACHE_KEPT)
    return compiled


def evict(folder: Path, kept: int) -> None:
    """Delete all but the `kept` most recently used compiled networks in `folder`. Last use is the later of a
    file's access and modification times: loading a cached network reads it, which Linux's default relatime
    records at least daily (under noatime the oldest written go first). A file another process removes or
    is reading meanwhile is no error: the cache is only a speed-up, and an open file stays readable."""
    used: dict[Path, float] = {}
    for blob in folder.glob("*.blob"):
        try:
            info = blob.stat()
        except OSError:
            continue
        used[blob] = max(info.st_atime, info.st_mtime)
    for stale in sorted(used, key=used.__getitem__, reverse=True)[kept:]:
        try:
            stale.unlink()
        except OSError:
            continue


def first_line(exc: BaseException) -> str:
    """OpenVINO's messages run to many lines of C++ context; the first says what failed (never empty)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
