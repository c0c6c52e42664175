"""Camera credentials never reach logs, metrics or error text, however the URL spells them.

Properties over any user and password drawn from printable text (spaces, '@', '#', '/', '?', ':', '%'
and non-ASCII letters included): the URL as shown keeps its scheme, host and path and loses both. A
secret shorter than 4 characters, or one that the rest of the URL spells anyway ("rtsp", the host),
could be "found" in the shown URL without having leaked, so those are not drawn.
"""

from __future__ import annotations

from urllib.parse import quote

import av
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from redactor_video.stream.credentials import redact_url, safe_reason, with_credentials

SECRET = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=4, max_size=24)
SCHEMES = st.sampled_from(["rtsp", "rtsps", "http", "srt"])
HOSTS = st.sampled_from(["cam.local", "10.0.0.5:554", "[fe80::1]:8554", "[2001:db8::7]"])
PATHS = st.sampled_from(["", "/stream1", "/cam/realmonitor?channel=1&subtype=0", "/s#frag"])


def assert_hidden(shown: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in shown and quote(secret, safe="") not in shown, (secret, shown)


@settings(max_examples=300, deadline=None)
@given(SCHEMES, SECRET, SECRET, HOSTS, PATHS)
def test_a_user_and_password_typed_into_the_url_never_show(scheme: str, user: str, password: str, host: str,
                                                            path: str) -> None:
    """Unencoded, as an operator types them: a '#', '/' or '?' in the password ends urlsplit's netloc early
    (it then finds no user at all), an '@' in it is not the last one; the mask runs to the last '@'."""
    shown_anyway = f"{scheme}://***@{host}{path}"
    assume(not any(secret in shown_anyway for secret in (user, password)))
    shown = redact_url(f"{scheme}://{user}:{password}@{host}{path}")
    assert shown == shown_anyway
    assert_hidden(shown, user, password)


@settings(max_examples=200, deadline=None)
@given(SECRET, SECRET, HOSTS, PATHS)
def test_credentials_from_a_secrets_file_never_show(user: str, password: str, host: str, path: str) -> None:
    """with_credentials percent-encodes them; neither the encoded nor the plain form is shown."""
    shown_anyway = f"rtsp://***@{host}{path}"
    assume(not any(secret in shown_anyway or quote(secret, safe="") in shown_anyway for secret in (user, password)))
    shown = redact_url(with_credentials(f"rtsp://old:older@{host}{path}", user, password))
    assert shown == shown_anyway
    assert_hidden(shown, user, password)


@settings(max_examples=200, deadline=None)
@given(SECRET, HOSTS)
def test_a_user_alone_never_shows(user: str, host: str) -> None:
    shown_anyway = f"rtsp://***@{host}/s"
    assume(user not in shown_anyway)
    assert redact_url(f"rtsp://{user}@{host}/s") == shown_anyway


PLAIN = SECRET.filter(lambda s: not set(s) & set("&@"))


@settings(max_examples=200, deadline=None)
@given(PLAIN, PLAIN)
def test_user_and_password_parameters_never_show(user: str, password: str) -> None:
    """Cameras that take them as parameters (`?user=...&pwd=...`, or in the path); a value ends at the next
    '&', so one with an '&' in it is not drawn (nor an '@': the mask would run to it, as above)."""
    for url, shown_anyway in (
            (f"http://10.0.0.5/video.cgi?channel=1&user={user}&pwd={password}",
             "http://10.0.0.5/video.cgi?channel=1&user=***&pwd=***"),
            (f"rtsp://10.0.0.5:554/user={user}&password={password}&channel=1&stream=0.sdp",
             "rtsp://10.0.0.5:554/user=***&password=***&channel=1&stream=0.sdp")):
        assume(not any(secret in shown_anyway for secret in (user, password)))
        shown = redact_url(url)
        assert shown == shown_anyway
        assert_hidden(shown, user, password)


@settings(max_examples=200, deadline=None)
@given(SECRET, SECRET)
def test_an_error_that_quotes_the_url_never_shows_its_credentials(user: str, password: str) -> None:
    """FFmpeg's reason (strerror) is kept and its file name dropped; a reason that quotes the URL anyway is
    masked like the URL."""
    url = f"rtsp://{user}:{password}@10.0.0.5/stream1"
    shown_anyway = "cannot open rtsp://***@10.0.0.5/stream1: Connection refused"
    assume(not any(secret in shown_anyway for secret in (user, password)))
    assert safe_reason(av.FFmpegError(111, "Connection refused", url)) == "Connection refused"
    assert safe_reason(OSError(111, f"cannot open {url}: Connection refused")) == shown_anyway
