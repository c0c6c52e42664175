"""Ctrl-C and SIGTERM: raised in the main thread, and remembered until the run ends.

Raising is not enough on its own. A signal that lands inside a library which
swallows every exception (a bare `except:` in an import, a C extension that
clears the error it was handed) is lost as an exception, and the run would go
on to put its output in place and exit 0. So every signal received is also
noted, and `check()` raises it again: the pipeline calls it once a frame and an
output is renamed into place only after it passes. A run that was asked to stop
never leaves an output behind, however the first exception was lost.

Nor may a lost signal print anything. One that lands in code Python cannot
raise from (a finaliser, the import system's lock callbacks) is reported by
`sys.unraisablehook` as "Exception ignored in ..." and a traceback;
`quiet_unraisable` drops exactly those, since `check()` raises them again.
"""

from __future__ import annotations

import signal
from typing import Any, Callable


class Terminated(BaseException):
    """SIGTERM as an exception, so a `kill` unwinds like Ctrl-C: outputs aborted, temporary files removed."""


_RECEIVED: list[int] = []


def raise_interrupted(signum: int, frame: object) -> None:
    """SIGINT handler: note it, raise KeyboardInterrupt."""
    _RECEIVED.append(signum)
    raise KeyboardInterrupt()


def raise_terminated(signum: int, frame: object) -> None:
    """SIGTERM handler: note it, raise Terminated."""
    _RECEIVED.append(signum)
    raise Terminated()


def quiet_unraisable(previous: Callable[[Any], object]) -> Callable[[Any], None]:
    """An unraisable hook that drops the exception of a signal received (noted, and raised again by
    `check()`) and hands every other to `previous`."""

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, (KeyboardInterrupt, Terminated)) and _RECEIVED:
            return
        previous(unraisable)

    return hook


def received() -> int | None:
    """The signal that ends this run (SIGTERM over SIGINT), or None."""
    if signal.SIGTERM in _RECEIVED:
        return signal.SIGTERM
    return signal.SIGINT if _RECEIVED else None


def forget() -> None:
    """A new run in the same process (tests invoke several) starts with none received."""
    _RECEIVED.clear()


def check() -> None:
    """Raise again the signal received, if any: its first exception may have been swallowed on the way up."""
    signum = received()
    if signum == signal.SIGTERM:
        raise Terminated()
    if signum is not None:
        raise KeyboardInterrupt()
