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


class RequestError(RedactorError):
    """A subject access request's own details (id, dates, time window) are unusable."""

    exit_code = 2


class WatchlistError(RedactorError):
    """The watchlist or an entry in it cannot be used."""

    exit_code = 7


class EntryRefused(WatchlistError):
    """One entry fails the lawfulness checks; `reason` says which, in words an operator can act on."""

    def __init__(self, entry_id: str, reason: str) -> None:
        super().__init__(f"watchlist entry {entry_id}: {reason}")
        self.entry_id = entry_id
        self.reason = reason


class EnrolmentRefused(WatchlistError):
    """An enrolment photo does not show exactly one usable face."""


class KeyFileError(RedactorError):
    """The key is missing, unreadable, malformed, too widely readable, or not the one the data was sealed with."""

    exit_code = 8


class IntegrityError(RedactorError):
    """A sealed file fails its integrity check: something changed it, or it is not what it claims to be."""

    exit_code = 9


class WatchlistTampered(IntegrityError, WatchlistError):
    """The watchlist file was changed, truncated, rolled back, or is not a watchlist."""


class AuditError(IntegrityError):
    """The audit log fails verification: a line was edited, deleted or forged, or the log does not match its
    watchlist (deleted, truncated, swapped or rolled back, or the watchlist rolled back)."""


class VerificationFailed(RedactorError):
    """An independent check still finds faces clear in a redacted output."""

    exit_code = 10
