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
from dataclasses import dataclass, field, fields
from pathlib import Path

from redactor_video.errors import InputError
from redactor_video.settings import RedactSettings
from redactor_video.stream.credentials import redact_url
from redactor_video.stream.outputs import SEGMENT_FORMATS

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")

LIVE_SETTINGS = ("detector", "threshold", "sweep_rate", "tile", "centerface_scale", "mode", "shape", "mask_scale",
                 "hold_seconds")
"""The redaction settings a camera takes, as declared in RedactSettings. Not `lookahead_seconds`: a live
filter holds frames for its latency budget (`latency_ms`), which is its look-ahead."""


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


_PATH_KEYS = ("record", "secrets", "watchlist", "key_file", "audit_log")


def _check(name: str, key: str, value: object, ok: bool, expected: str) -> None:
    if not ok:
        raise ValueError(f"camera {name}: {key} = {value!r}: expected {expected}")


@dataclass(frozen=True)
class CameraConfig:
    """One camera's filter. `redaction` holds the file pipeline's settings (its defaults too), checked
    where they are declared; `latency_ms` also bounds the backward fill."""

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
    redaction: RedactSettings = field(default_factory=RedactSettings)
    preset: str = "veryfast"
    crf: int = 23
    watchlist: Path | None = None
    reveal: bool = False
    alert_only: bool = False
    key_file: Path | None = None
    audit_log: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"camera name {self.name!r}: use letters, digits, '.', '_' or '-' (max 64)")
        n = self.name
        # URLs are shown masked: a value of the wrong type may still hold a password.
        _check(n, "input", redact_url(str(self.input)), isinstance(self.input, str) and bool(self.input.strip()),
               "a URL or device path as a string")
        for key in ("output", "input_format"):
            value = getattr(self, key)
            _check(n, key, redact_url(str(value)), value is None or (isinstance(value, str) and bool(value.strip())),
                   "a non-empty string")
        for key in _PATH_KEYS:
            value = getattr(self, key)
            _check(n, key, value, value is None or isinstance(value, Path), "a path")
        if self.output is None and self.record is None:
            raise ValueError(f"camera {self.name}: give an output URL, a record folder, or both")

        def number(value: object, lo: float, hi: float, integer: bool = False) -> bool:
            kinds = (int,) if integer else (int, float)
            return (isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
                    and lo <= value <= hi)

        _check(n, "transport", self.transport, isinstance(self.transport, str) and self.transport in ("tcp", "udp"),
               "tcp or udp")
        _check(n, "segment", self.segment, number(self.segment, 0.5, 86400), "0.5 s to 24 h")
        _check(n, "segment_format", self.segment_format,
               isinstance(self.segment_format, str) and self.segment_format in SEGMENT_FORMATS,
               " or ".join(SEGMENT_FORMATS))
        _check(n, "latency_ms", self.latency_ms, number(self.latency_ms, 100, 60000, integer=True),
               "an integer from 100 to 60000")
        _check(n, "redaction", self.redaction, isinstance(self.redaction, RedactSettings), "RedactSettings")
        _check(n, "crf", self.crf, number(self.crf, 0, 51, integer=True), "an integer from 0 to 51")
        _check(n, "preset", self.preset, isinstance(self.preset, str) and self.preset.isidentifier(),
               "an x264 preset name such as veryfast")
        _check(n, "reveal", self.reveal, isinstance(self.reveal, bool), 'true, false or "matches"')
        _check(n, "alert_only", self.alert_only, isinstance(self.alert_only, bool), "true or false")
        if self.watchlist is not None and self.reveal == self.alert_only:
            raise ValueError(f"camera {self.name}: with a watchlist, set exactly one of reveal = true "
                             "or alert_only = true")
        if self.watchlist is None and (self.reveal or self.alert_only):
            raise ValueError(f"camera {self.name}: reveal and alert_only need a watchlist")


def live_settings(name: str, values: dict) -> RedactSettings:
    """The redaction settings of camera `name` from LIVE_SETTINGS keys, checked against their declarations."""
    try:
        return RedactSettings(**values)
    except ValueError as exc:
        raise ValueError(f"camera {name}: {exc}") from None


_KEYS = ({f.name for f in fields(CameraConfig)} - {"name", "redaction"}) | set(LIVE_SETTINGS)


def camera_from_mapping(name: str, values: dict, base: Path) -> CameraConfig:
    """A CameraConfig from TOML values; relative paths are taken from the config file's folder."""
    unknown = set(values) - _KEYS
    if "lookahead_seconds" in unknown:
        raise ValueError(f"camera {name}: lookahead_seconds: a live filter looks ahead as far as latency_ms allows; "
                         "set latency_ms")
    if unknown:
        raise ValueError(f"camera {name}: unknown setting(s) {', '.join(sorted(unknown))}")
    if "input" not in values:
        raise ValueError(f"camera {name}: no input; add input = \"rtsp://...\"")
    kwargs = {k: v for k, v in values.items() if k not in LIVE_SETTINGS}
    for key in (k for k in _PATH_KEYS if k in kwargs):
        if not isinstance(kwargs[key], str):
            raise ValueError(f"camera {name}: {key} = {kwargs[key]!r}: expected a path as a string")
        kwargs[key] = base / Path(kwargs[key]).expanduser()
    if "segment" in kwargs:
        try:
            kwargs["segment"] = parse_duration(kwargs["segment"])
        except ValueError as exc:
            raise ValueError(f"camera {name}: segment: {exc}") from None
    if kwargs.get("reveal") == "matches":
        kwargs["reveal"] = True
    redaction = live_settings(name, {k: v for k, v in values.items() if k in LIVE_SETTINGS})
    return CameraConfig(name=name, redaction=redaction, **kwargs)


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
    if not isinstance(defaults, dict):
        raise InputError(f"{path}: defaults must be a table ([defaults] with camera settings)")
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
