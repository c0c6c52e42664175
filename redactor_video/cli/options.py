"""Command-line options derived from the declared settings (redactor_video.settings), and finite number types.

click's FloatRange accepts "nan" (every comparison with NaN is false) and "inf"
where a bound is open, so every number option goes through `Bounded`, which
applies the same check the settings dataclass applies to the values it is built
from.
"""

from __future__ import annotations

from typing import Any, Callable

import click

from redactor_video.media.sink import EncodeSettings
from redactor_video.settings import THOROUGH_SCALE, Knob, RedactSettings, knobs


class Bounded(click.ParamType):
    """A finite int or float within a declared range; NaN, infinities and out-of-range values are usage errors."""

    def __init__(self, knob: Knob) -> None:
        self.knob = knob
        self.name = "integer" if knob.integer else "float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            try:
                value = int(str(value).strip()) if self.knob.integer else float(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a {'whole number' if self.knob.integer else 'number'}", param, ctx)
        problem = self.knob.check(value)
        if problem is not None:
            self.fail(f"{value!r}: {problem}", param, ctx)
        return value

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "INTEGER" if self.knob.integer else "FLOAT"


def finite(low: float | None = None, high: float | None = None, integer: bool = False, unit: str = "") -> Bounded:
    """A Bounded type for an option that is not a redaction setting (a time window, a worker count)."""
    return Bounded(Knob(flag="", help="", low=low, high=high, integer=integer, unit=unit))


def setting_option(name: str, default: Any = "declared", note: str = "") -> Callable:
    """The click option for RedactSettings field `name`, with its declared flag, type, range and help
    (`note` adds what one command does differently)."""
    knob = knobs()[name]
    if default == "declared":
        default = getattr(RedactSettings(), name)
    kind: click.ParamType = click.Choice(list(knob.choices)) if knob.choices else Bounded(knob)
    text = " ".join(part for part in (knob.help, note) if part)
    if not knob.choices:
        text += f" Range: {knob.range_text()}."
    return click.option(knob.flag, name, type=kind, default=default, show_default=default is not None, help=text)


def setting_options(*names: str) -> Callable:
    """Decorate a command with the options of these RedactSettings fields, in the order given."""
    def decorate(func: Callable) -> Callable:
        for name in reversed(names):
            func = setting_option(name)(func)
        return func
    return decorate


def settings_from_options(options: dict[str, Any]) -> RedactSettings:
    """The settings `redact` and `batch` build from their shared options (`--thorough` picks the scale
    unless --centerface-scale is given)."""
    scale = options["centerface_scale"]
    if scale is None:
        scale = THOROUGH_SCALE if options["thorough"] else RedactSettings().centerface_scale
    encode = EncodeSettings(codec=options["codec"], crf=options["crf"], preset=options["preset"],
                            keep_audio=not options["drop_audio"])
    declared = {name: options[name] for name in knobs() if name != "centerface_scale"}
    try:
        return RedactSettings(**declared, centerface_scale=scale, encode=encode)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
