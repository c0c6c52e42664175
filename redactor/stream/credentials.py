"""Camera credentials: from the URL or a secrets file, and never in logs, metrics or error text."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from redactor.errors import InputError


def redact_url(url: str) -> str:
    """The URL as it may be shown to people: any user:password replaced by ***."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def safe_reason(exc: BaseException) -> str:
    """An FFmpeg error's reason without its file name, which for a URL may carry credentials."""
    return redact_url(str(getattr(exc, "strerror", None) or type(exc).__name__))


def with_credentials(url: str, user: str, password: str) -> str:
    """`url` with the given user and password, percent-encoded, replacing any it had."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}@"
    return urlunsplit((parts.scheme, auth + host, parts.path, parts.query, parts.fragment))


def load_secrets(path: Path) -> tuple[str, str]:
    """`user` and `password` from a TOML file only its owner can read, as SSH demands of private keys."""
    try:
        mode = path.stat().st_mode
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: secrets file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read secrets file ({type(exc).__name__})") from None
    except tomllib.TOMLDecodeError:
        raise InputError(f"{path}: secrets file is not valid TOML (expected user = \"...\" and password = \"...\")") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(f"{path}: secrets file is readable by others; run: chmod 600 {path}")
    user, password = data.get("user"), data.get("password")
    if not isinstance(user, str) or not isinstance(password, str) or set(data) - {"user", "password"}:
        raise InputError(f"{path}: secrets file must hold exactly two strings, user and password")
    return user, password
