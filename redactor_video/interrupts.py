"""Ctrl-C and SIGTERM: raised in the main thread, and remembered until the run ends.

Raising is not enough on its own. A signal that lands inside a library which
swallows every exception (a bare `except:` in an import, a C extension that
clears the error it was handed) is lost as an exception, and the run would go
on to put its output in place and exit 0. So every signal received is also
noted, and `check()` raises it again: the pipeline calls it once a frame and an
output is renamed into place only after it passes. A run that was asked to stop
never leaves an output behind, however the first exception was lost.
"""

from __future__ import annotations

import signal


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
