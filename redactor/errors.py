"""Typed errors. Stages raise these; only the CLI turns them into messages and exit codes.

Exit codes are part of the command-line contract that scripts rely on:
1 generic failure, 2 usage (click's own), 3 input, 4 output, 5 model, 6 processing,
7 watchlist entry or photo refused, 8 key, 9 integrity (watchlist or audit log), 10 verification.
"""

from __future__ import annotations


class RedactorError(Exception):
    """Base of every error the CLI reports as a one-line message."""

    exit_code = 1


class InputError(RedactorError):
    """The input is missing, unreadable, not a video or image, or corrupt."""

    exit_code = 3


class OutputError(RedactorError):
    """The output cannot be written where the user asked."""

    exit_code = 4


class ModelError(RedactorError):
    """A model file is missing, cannot be fetched, or fails its checksum."""

    exit_code = 5


class ProcessingError(RedactorError):
    """Redaction could not complete; nothing was written."""

    exit_code = 6


class DetectorFailure(RedactorError):
    """A detector raised or timed out on one frame; the pipeline blurs the whole frame."""

    exit_code = 6


class VerificationFailed(RedactorError):
    """An independent check still finds faces clear in a redacted output."""

    exit_code = 10
