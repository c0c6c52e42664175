"""The `redactor` command. The CLI is the only layer that prints, exits or draws progress bars."""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import click

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from redactor.errors import RedactorError  # noqa: E402


class CLIError(click.ClickException):
    """A one-line error with the exit code of the error type behind it."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(BaseException):
    """SIGTERM as an exception, so a `kill` unwinds like Ctrl-C: outputs aborted, temporary files removed."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def reports_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our typed errors into one-line messages; never show a traceback to the user."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with _sigterm_unwinds():
                return func(*args, **kwargs)
        except RedactorError as exc:
            raise CLIError(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise CLIError("interrupted; no output was written", 130) from None
        except Terminated:
            raise CLIError("terminated; no output was written", 143) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # last line of defence: a message, not a traceback
            raise CLIError(f"internal error: {type(exc).__name__}: {exc}", 1) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="redactor")
def main() -> None:
    """redactor: blur every face in video before it is stored.

    \b
    Quick start:
      redactor redact samples/street.mp4 -o street.redacted.mp4
      redactor models fetch        # pre-load models (also done on first use)
    """


def _register() -> None:
    from redactor.cli import audit, keygen, models, redact, verify, watchlist
    from redactor.cli.sar import sar
    from redactor.cli.batch import batch
    from redactor.cli.stream import serve, stream

    main.add_command(redact.redact)
    main.add_command(models.models)
    main.add_command(verify.verify)
    main.add_command(watchlist.watchlist)
    main.add_command(audit.audit)
    main.add_command(keygen.keygen)
    main.add_command(sar)
    main.add_command(batch)
    main.add_command(stream)
    main.add_command(serve)


_register()

if __name__ == "__main__":
    sys.exit(main())
