"""The one secret of a watchlist deployment: a random key kept in a file, never on a command line.

A key given as a command-line literal ends up in shell history and in every
process listing, so the key is only ever read from a file named by
`--key-file` or $REDACTOR_KEY_FILE. Separate subkeys (HKDF) encrypt the
watchlist and authenticate the audit log, so neither use can weaken the other.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from redactor_video.errors import KeyFileError

ENV_KEY_FILE = "REDACTOR_KEY_FILE"
KEY_BYTES = 32
_HEADER = "redactor-key-v1:"


@dataclass(frozen=True)
class Key:
    """A loaded master key; only its derived subkeys are ever used directly."""

    secret: bytes
    source: str

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise KeyFileError(f"{self.source}: a key must be {KEY_BYTES} bytes")

    def derive(self, purpose: str, length: int = KEY_BYTES) -> bytes:
        """A subkey bound to one purpose, so the watchlist and audit keys are independent."""
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                    info=f"redactor {purpose}".encode()).derive(self.secret)

    @property
    def key_id(self) -> bytes:
        """Eight public bytes that tell 'wrong key' apart from 'tampered file' without revealing the key."""
        return self.derive("key id", 8)

    def __repr__(self) -> str:
        return f"Key(source={self.source!r})"


def generate_key(path: Path) -> None:
    """Write a new random key, readable by its owner only; never replaces an existing file."""
    encoded = _HEADER + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode() + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path}: already exists; a key is never overwritten (data sealed with it would be lost)") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create key file ({exc.strerror})") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(encoded)
    os.chmod(path, 0o600)


def load_key(path: Path | None = None) -> Key:
    """The key from `path`, else from $REDACTOR_KEY_FILE; missing, malformed or world-readable keys are errors."""
    if path is None:
        env = os.environ.get(ENV_KEY_FILE)
        if not env:
            raise KeyFileError(f"no key: pass --key-file or set {ENV_KEY_FILE} (create one with `redactor keygen`)")
        path = Path(env)
    path = Path(path).expanduser()
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: key file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot read key file ({getattr(exc, 'strerror', None) or 'not text'})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path}: key file is accessible to other users (mode {stat.S_IMODE(mode):o}); "
                           f"run chmod 600 {path}")
    if not text.startswith(_HEADER):
        raise KeyFileError(f"{path}: not a redactor key file (create one with `redactor keygen`)")
    try:
        secret = base64.b64decode(text[len(_HEADER):], validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{path}: key file is corrupt") from None
    return Key(secret, str(path))
