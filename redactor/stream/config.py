"""Per-camera settings for `redactor stream` and `redactor serve cameras.toml`, validated before anything starts.

    metrics = "127.0.0.1:9400"        # one /metrics + /healthz for all cameras

    [defaults]                         # any camera key; each camera may override it
    latency_ms = 500

    [cameras.gate]
    input = "rtsp://10.0.0.5/stream1"
    secrets = "/etc/redactor/gate.toml" # user = "...", password = "..." (chmod 600)
    output = "rtsp://vms.local:8554/gate"
    record = "/var/lib/redactor/gate"   # rolling segments (optional)
    segment = "60s"
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from redactor.detect import DETECTOR_CHOICES
from redactor.errors import InputError
from redactor.mask.kernels import MODES, SHAPES
from redactor.pipeline import RedactSettings
from redactor.stream.outputs import SEGMENT_FORMATS

_FILE = RedactSettings()  # the file pipeline's defaults are the live ones too
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(text: str | int | float) -> float:
    """Seconds from 90, "90", "90s", "1.5m", "1h" or "500ms"."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if not math.isfinite(text):
            raise ValueError(f"not a duration: {text!r}")
        return float(text)
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 60s, 5m, 1h)")
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]
    return float(match.group(1)) * unit


def _check(name: str, key: str, value: object, ok: bool, expected: str) -> None:
    if not ok:
        raise ValueError(f"camera {name}: {key} = {value!r}: expected {expected}")


@dataclass(frozen=True)
class CameraConfig:
    """One camera's filter. Defaults are the file pipeline's; `latency_ms` also bounds the backward fill."""

    name: str
    input: str
    output: str | None = None
    record: Path | None = None
    segment: float = 60.0
    segment_format: str = ".mkv"
    transport: str = "tcp"
    input_format: str | None = None
    secrets: Path | None = None
    latency_ms: int = 500
    detector: str = _FILE.detector
    every: int = _FILE.every
    threshold: float = _FILE.threshold
    mode: str = _FILE.mode
    shape: str = _FILE.shape
    mask_scale: float = _FILE.mask_scale
    hold_seconds: float = _FILE.hold_seconds
    preset: str = "veryfast"
    crf: int = 23
    watchlist: Path | None = None
    reveal: bool = False
    alert_only: bool = False
    key_file: Path | None = None
    audit_log: Path | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"camera name {self.name!r}: use letters, digits, '.', '_' or '-' (max 64)")
        if self.output is None and self.record is None:
            raise ValueError(f"camera {self.name}: give an output URL, a record folder, or both")
        n = self.name

        def number(value: object, lo: float, hi: float, integer: bool = False) -> bool:
            kinds = (int,) if integer else (int, float)
            return (isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
                    and lo <= value <= hi)

        _check(n, "transport", self.transport, self.transport in ("tcp", "udp"), "tcp or udp")
        _check(n, "segment", self.segment, number(self.segment, 0.5, 86400), "0.5 s to 24 h")
        _check(n, "segment_format", self.segment_format, self.segment_format in SEGMENT_FORMATS,
               " or ".join(SEGMENT_FORMATS))
        _check(n, "latency_ms", self.latency_ms, number(self.latency_ms, 100, 60000, integer=True),
               "an integer from 100 to 60000")
        _check(n, "detector", self.detector, self.detector in DETECTOR_CHOICES, " or ".join(DETECTOR_CHOICES))
        _check(n, "every", self.every, number(self.every, 1, 30, integer=True), "an integer from 1 to 30")
        _check(n, "threshold", self.threshold, number(self.threshold, 0.05, 0.95), "0.05 to 0.95")
        _check(n, "mode", self.mode, self.mode in MODES, " or ".join(MODES))
        _check(n, "shape", self.shape, self.shape in SHAPES, " or ".join(SHAPES))
        _check(n, "mask_scale", self.mask_scale, number(self.mask_scale, 1.0, 4.0), "1 to 4")
        _check(n, "hold_seconds", self.hold_seconds, number(self.hold_seconds, 0.0, 10.0), "0 to 10")
        _check(n, "crf", self.crf, number(self.crf, 0, 51, integer=True), "an integer from 0 to 51")
        _check(n, "preset", self.preset, isinstance(self.preset, str) and self.preset.isidentifier(),
               "an x264 preset name such as veryfast")
        if self.watchlist is not None and self.reveal == self.alert_only:
            raise ValueError(f"camera {self.name}: with a watchlist, set exactly one of reveal = true "
                             "or alert_only = true")
        if self.watchlist is None and (self.reveal or self.alert_only):
            raise ValueError(f"camera {self.name}: reveal and alert_only need a watchlist")


_PATH_KEYS = {"record", "secrets", "watchlist", "key_file", "audit_log"}
_KEYS = {f.name for f in fields(CameraConfig)} - {"name"}


def camera_from_mapping(name: str, values: dict, base: Path) -> CameraConfig:
    """A CameraConfig from TOML values; relative paths are taken from the config file's folder."""
    unknown = set(values) - _KEYS
    if unknown:
        raise ValueError(f"camera {name}: unknown setting(s) {', '.join(sorted(unknown))}")
    kwargs = dict(values)
    for key in _PATH_KEYS & set(kwargs):
        kwargs[key] = base / Path(str(kwargs[key])).expanduser()
    if "segment" in kwargs:
        try:
            kwargs["segment"] = parse_duration(kwargs["segment"])
        except ValueError as exc:
            raise ValueError(f"camera {name}: segment: {exc}") from None
    if "reveal" in kwargs and not isinstance(kwargs["reveal"], bool):
        kwargs["reveal"] = kwargs["reveal"] == "matches"
    return CameraConfig(name=name, **kwargs)


@dataclass(frozen=True)
class ServeConfig:
    cameras: list[CameraConfig]
    metrics: str | None = "127.0.0.1:9400"


def load_serve_config(path: Path) -> ServeConfig:
    """Parse and validate the whole file; any problem is one InputError naming the file and the camera."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({type(exc).__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(data) - {"metrics", "defaults", "cameras"}
    if unknown:
        raise InputError(f"{path}: unknown top-level setting(s) {', '.join(sorted(unknown))}")
    defaults, cameras = data.get("defaults", {}), data.get("cameras", {})
    if not isinstance(cameras, dict) or not cameras or not all(isinstance(v, dict) for v in cameras.values()):
        raise InputError(f"{path}: no cameras; add a [cameras.NAME] table with input = \"...\"")
    base = path.parent
    try:
        parsed = [camera_from_mapping(name, {**defaults, **values}, base) for name, values in cameras.items()]
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: {exc}") from None
    metrics = data.get("metrics", "127.0.0.1:9400")
    if metrics is not None and not isinstance(metrics, str):
        raise InputError(f"{path}: metrics must be \"host:port\" or omitted")
    return ServeConfig(parsed, metrics or None)
