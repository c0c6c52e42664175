"""The `redactor` command. The CLI is the only layer that prints, exits or draws progress bars."""

from __future__ import annotations

import sys

EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C: 128 + SIGINT's number, what a shell reports for a command SIGINT ended."""
EXIT_TERMINATED = 143
"""Exit code after SIGTERM: 128 + its number, likewise."""
INTERRUPTED = "interrupted; no output was written"
TERMINATED = "terminated; no output was written"

try:
    import functools
    import importlib
    import os
    import signal
    import threading
    from contextlib import contextmanager
    from typing import Any, Callable, Iterator

    import click

    from redactor_video import interrupts
    from redactor_video.errors import RedactorError
    from redactor_video.interrupts import Terminated
except KeyboardInterrupt:  # Ctrl-C while the command is still starting: nothing was done, nothing to undo
    sys.stderr.write(f"Error: {INTERRUPTED}\n")
    raise SystemExit(EXIT_INTERRUPTED) from None

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class CLIError(click.ClickException):
    """A one-line error with the exit code of the error type behind it."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@contextmanager
def _signals_unwind() -> Iterator[None]:
    """Ctrl-C and SIGTERM raise in the main thread (outputs aborted, temporary files removed), and are noted;
    one whose exception Python could not raise prints no traceback (interrupts.quiet_unraisable)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, interrupts.raise_interrupted),
                signal.SIGTERM: signal.signal(signal.SIGTERM, interrupts.raise_terminated)}
    hook, sys.unraisablehook = sys.unraisablehook, interrupts.quiet_unraisable(sys.unraisablehook)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sys.unraisablehook = hook


def _signal_error() -> CLIError:
    """The one-line error of the signal received (SIGTERM over Ctrl-C)."""
    if interrupts.received() == signal.SIGTERM:
        return CLIError(TERMINATED, EXIT_TERMINATED)
    return CLIError(INTERRUPTED, EXIT_INTERRUPTED)


def reports_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our typed errors into one-line messages; never show a traceback to the user."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RedactorError as exc:
            raise CLIError(str(exc), exc.exit_code) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # last line of defence: a message, not a traceback
            raise CLIError(f"internal error: {type(exc).__name__}: {exc}", 1) from None

    return wrapper


@contextmanager
def _signals_end_commands() -> Iterator[None]:
    """Ctrl-C and SIGTERM become their one-line error and exit code (130, 143).

    Click turns a KeyboardInterrupt it catches into "Aborted!" and exit 1, so one
    that comes while a subcommand is imported (a second or more) or its options are
    parsed, or while the command runs, is turned into our error before click sees it.
    """
    try:
        yield
        interrupts.check()  # a signal whose exception something swallowed still ends the run as that signal
    except KeyboardInterrupt:
        raise CLIError(INTERRUPTED, EXIT_INTERRUPTED) from None
    except Terminated:
        raise CLIError(TERMINATED, EXIT_TERMINATED) from None
    except Exception:
        if interrupts.received() is not None:  # whatever a signal turned into on its way up, the run ends as it
            raise _signal_error() from None
        raise


class _LazyGroup(click.Group):
    """Imports a subcommand's module only when it runs: `redact` need not load recognition, Ray or the
    live filter, which would add about a second to every run's start-up."""

    _commands = {
        "redact": "redactor_video.cli.redact:redact", "models": "redactor_video.cli.models:models",
        "verify": "redactor_video.cli.verify:verify", "watchlist": "redactor_video.cli.watchlist:watchlist",
        "audit": "redactor_video.cli.audit:audit", "keygen": "redactor_video.cli.keygen:keygen", "sar": "redactor_video.cli.sar:sar",
        "batch": "redactor_video.cli.batch:batch", "stream": "redactor_video.cli.stream:stream",
        "serve": "redactor_video.cli.stream:serve",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self._commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self._commands:
            return None
        module, attr = self._commands[cmd_name].split(":")
        return getattr(importlib.import_module(module), attr)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """SIGTERM unwinds like Ctrl-C for the whole run, not only once a command has started. Either signal
        that comes outside `make_context` and `invoke` (which report their own) is reported here."""
        interrupts.forget()
        try:
            with _signals_unwind():
                return super().main(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo(f"Error: {INTERRUPTED}", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Terminated:
            click.echo(f"Error: {TERMINATED}", err=True)
            sys.exit(EXIT_TERMINATED)

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with _signals_end_commands():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        with _signals_end_commands():
            return super().invoke(ctx)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="redactor-video")
def main() -> None:
    """redactor: blur every face in video before it is stored.

    \b
    Quick start:
      redactor redact samples/people.mp4 -o people.redacted.mp4
      redactor models fetch        # pre-load models (also done on first use)
    """


if __name__ == "__main__":
    sys.exit(main())
