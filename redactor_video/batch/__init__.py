"""Batch redaction of archives: resumable (SQLite manifest in DST), parallel (local processes or Ray), long files
split into chunks and joined frame-exact."""

from redactor_video.batch.driver import DEFAULT_CHUNK_SECONDS, ENGINES, BatchOptions, BatchSummary, Observer, run_batch

__all__ = ["DEFAULT_CHUNK_SECONDS", "ENGINES", "BatchOptions", "BatchSummary", "Observer", "run_batch"]
