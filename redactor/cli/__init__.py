"""The `redactor` command. The CLI is the only layer that prints, exits or draws progress bars."""

from __future__ import annotations

import functools
import importlib
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


class _LazyGroup(click.Group):
    """Imports a subcommand's module only when it runs: `redact` need not load recognition, Ray or the
    live filter, which would add about a second to every run's start-up."""

    _commands = {
        "redact": "redactor.cli.redact:redact", "models": "redactor.cli.models:models",
        "verify": "redactor.cli.verify:verify", "watchlist": "redactor.cli.watchlist:watchlist",
        "audit": "redactor.cli.audit:audit", "keygen": "redactor.cli.keygen:keygen", "sar": "redactor.cli.sar:sar",
        "batch": "redactor.cli.batch:batch", "stream": "redactor.cli.stream:stream",
        "serve": "redactor.cli.stream:serve",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self._commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self._commands:
            return None
        module, attr = self._commands[cmd_name].split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="redactor")
def main() -> None:
    """redactor: blur every face in video before it is stored.

    \b
    Quick start:
      redactor redact samples/street.mp4 -o street.redacted.mp4
      redactor models fetch        # pre-load models (also done on first use)
    """


if __name__ == "__main__":
    sys.exit(main())
