"""The OpenVINO runtime both detectors share, with compiled networks cached beside the model files.

Compiling a network takes 0.15-0.3 s per input size, paid by every process:
a tenth of a short clip's run. OpenVINO can keep compiled networks on disk; the
cache lives in the model folder (same owner, same trust as the verified model
files it is derived from) and is only a speed-up: OpenVINO recompiles when an
entry is missing, stale or unreadable, and a folder we cannot write means no cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import openvino as ov

from redactor.errors import ModelError
from redactor.models import model_path, models_dir, spec_for

CACHE_SUBDIR = "openvino-cache"

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
        return core_for(name, models).compile_model(str(model_path(name, models)), "CPU", config)
    except RuntimeError as exc:
        raise ModelError(f"OpenVINO could not load {name}: {first_line(exc)}") from None


def first_line(exc: BaseException) -> str:
    """OpenVINO's messages run to many lines of C++ context; the first says what failed (never empty)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
