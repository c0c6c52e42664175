"""File mode: `redactor redact` and `redactor verify` on video and image files, one file at a time."""
