"""Watchlist recognition: only people on a lawful watchlist entry may stay visible; everyone else is masked.

`build_recogniser` is the one way the pipeline gets a recogniser: it loads the
key, opens the watchlist and its audit log (each checked against the other),
loads the entries (refusing and auditing unlawful ones, which the matcher hands
back for the command line to report) and only loads the face models if some
entry applies to this camera.
"""

from __future__ import annotations

from pathlib import Path

from redactor_video.audit import WatchlistLog, record_unbound
from redactor_video.errors import EnrolmentRefused, EntryRefused, KeyFileError, WatchlistError, WatchlistTampered
from redactor_video.recognise.embedder import Embedder
from redactor_video.recognise.keys import generate_key, load_key
from redactor_video.recognise.matcher import DEFAULT_THRESHOLD, MAX_THRESHOLD, MatchPolicy, WatchlistMatcher
from redactor_video.recognise.watchlist import CATEGORIES, Binding, Entry, load


def default_audit_path(watchlist: Path) -> Path:
    """Where a watchlist's actions are audited unless the deployment names another file."""
    watchlist = Path(watchlist)
    return watchlist.with_name(watchlist.name + ".audit.jsonl")


def build_recogniser(watchlist: Path, key_file: Path | None, camera: str | None, reveal: bool,
                     audit_log: Path | None, models_dir: str | Path | None = None,
                     policy: MatchPolicy | None = None) -> WatchlistMatcher:
    """A matcher for this run; a tampered watchlist, a log that does not match it or a wrong key is an error,
    an unlawful entry is refused (the matcher's `refusals`, for the caller to report).

    Refusals and the load itself are written to the audit log (`audit_log`, by
    default next to the watchlist) before any frame is seen. A key that did not
    seal the watchlist is refused before the log is opened: the log is
    authenticated with the same key, so a line written with the wrong one would
    make the genuine log fail verification from then on. A watchlist that
    cannot be opened cannot vouch for a line, so its refusal is recorded only in
    a log no watchlist has bound yet.
    """
    key = load_key(key_file)
    log_path = audit_log or default_audit_path(watchlist)
    try:
        audit = WatchlistLog(log_path, key, Binding(Path(watchlist), key))
    except WatchlistError as exc:  # a wrong key's KeyFileError is none: it goes up before the log is opened
        record_unbound(log_path, key, "watchlist-refused", watchlist=str(watchlist), camera=camera, reason=str(exc))
        raise
    try:
        loaded = load(Path(watchlist), key, camera)
        for refusal in loaded.refused:
            audit.record("entry-refused", watchlist=str(watchlist), camera=camera,
                         entry_id=refusal.entry_id, reason=refusal.reason)
        audit.record("watchlist-load", watchlist=str(watchlist), camera=camera,
                     entries=[e.id for e in loaded.entries], refused=len(loaded.refused),
                     action="reveal" if reveal else "alert-only")
        embedder = Embedder(models_dir) if loaded.entries else None
        return WatchlistMatcher(loaded.entries, embedder, audit, reveal=reveal, camera=camera, policy=policy,
                                refusals=loaded.refused)
    except BaseException:
        audit.close()
        raise


__all__ = ["CATEGORIES", "DEFAULT_THRESHOLD", "MAX_THRESHOLD", "EnrolmentRefused", "Entry", "EntryRefused",
           "KeyFileError", "MatchPolicy", "WatchlistError", "WatchlistMatcher", "WatchlistTampered",
           "build_recogniser", "default_audit_path", "generate_key", "load_key"]
