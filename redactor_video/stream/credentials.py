"""Camera credentials: from the URL or a secrets file, and never in logs, metrics or error text."""

from __future__ import annotations

import re
import stat
import tomllib
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from redactor_video.errors import InputError


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_CREDENTIAL_PARAM = re.compile(r"(?i)([/?&;](?:user(?:name)?|pass(?:word|wd)?|pwd)=)[^&]*")


def redact_url(text: str) -> str:
    """A URL (or a message that may hold one) as it may be shown to people: credentials replaced by ***.

    Everything from after the first `scheme://` (or from the start, with none) up to the last '@' is
    masked, not only what urlsplit takes for user info: an unencoded '#', '/' or '?' in a password ends
    urlsplit's netloc early, so it finds no user at all in `rtsp://admin:Pa#ss55@host/s`, and FFmpeg
    splits such a URL its own way again. An '@' in a path or query cannot be told from one in such a
    password, so the mask runs up to it too: an odd URL may show less of itself, never a password.
    The values of user and password parameters (`?user=admin&password=...`, which some cameras take
    instead) are masked up to the next '&'.
    """
    at = text.rfind("@")
    if at >= 0:
        scheme = _SCHEME.search(text, 0, at)
        start = scheme.end() if scheme else 0
        text = text[:start] + "***" + text[at:]
    return _CREDENTIAL_PARAM.sub(r"\1***", text)


def safe_reason(exc: BaseException) -> str:
    """An FFmpeg error's reason without its file name (for a URL it may carry credentials), masked as
    redact_url masks a URL in case the reason quotes one."""
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
