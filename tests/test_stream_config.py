"""The live filter's settings, credentials and operations surface, without servers: fast executable specs.

Tables are `(input, expected, raises)` with DoesNotRaise for the good cases.
"""

from __future__ import annotations

import json
import math
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from redactor_video.errors import InputError
from redactor_video.settings import RedactSettings
from redactor_video.stream.config import CameraConfig, load_serve_config, parse_duration
from redactor_video.stream.credentials import load_secrets, redact_url, with_credentials
from redactor_video.stream.metrics import LatencyWindow, OpsServer, StreamMetrics
from tests.helpers import DoesNotRaise

# ---- parse_duration -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds", "raises"), [
    ("60s", 60.0, DoesNotRaise()),
    ("5m", 300.0, DoesNotRaise()),
    ("1h", 3600.0, DoesNotRaise()),
    ("500ms", 0.5, DoesNotRaise()),
    ("1.5m", 90.0, DoesNotRaise()),
    (" 2 s ", 2.0, DoesNotRaise()),
    ("90", 90.0, DoesNotRaise()),
    (90, 90.0, DoesNotRaise()),
    (2.5, 2.5, DoesNotRaise()),
    ("", None, pytest.raises(ValueError, match="not a duration")),
    ("fast", None, pytest.raises(ValueError, match="not a duration")),
    ("5x", None, pytest.raises(ValueError, match="not a duration")),
    ("-5s", None, pytest.raises(ValueError, match="not a duration")),
    ("1 day", None, pytest.raises(ValueError, match="not a duration")),
    ("5 m s", None, pytest.raises(ValueError, match="not a duration")),
    (True, None, pytest.raises(ValueError, match="not a duration")),
])
def test_parse_duration(text: str | float, seconds: float | None, raises: AbstractContextManager) -> None:
    with raises:
        assert parse_duration(text) == seconds


@pytest.mark.parametrize("number", [math.nan, math.inf])
def test_parse_duration_refuses_numbers_that_are_no_length_of_time(number: float) -> None:
    """TOML has nan and inf floats; `segment = nan` passes every check (nan <= 0 is false) and the
    recorder then never rolls over. `--segment nan` is refused, as a string."""
    with pytest.raises(ValueError):
        parse_duration(number)


# ---- CameraConfig ---------------------------------------------------------------------------------------------


def camera(**changes: object) -> CameraConfig:
    values: dict[str, object] = {"name": "gate", "input": "rtsp://10.0.0.5/stream1", "output": "rtsp://vms/gate"}
    values.update(changes)
    return CameraConfig(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(("changes", "raises"), [
    ({}, DoesNotRaise()),
    ({"name": "cam-1.north_gate"}, DoesNotRaise()),
    ({"name": "a" * 64}, DoesNotRaise()),
    ({"name": "a" * 65}, pytest.raises(ValueError, match="camera name")),
    ({"name": ""}, pytest.raises(ValueError, match="camera name")),
    ({"name": "-gate"}, pytest.raises(ValueError, match="camera name")),
    ({"name": ".gate"}, pytest.raises(ValueError, match="camera name")),
    ({"name": "north gate"}, pytest.raises(ValueError, match="camera name")),
    ({"name": "../gate"}, pytest.raises(ValueError, match="camera name")),
    ({"name": "gate/1"}, pytest.raises(ValueError, match="camera name")),
    ({"name": "caméra"}, pytest.raises(ValueError, match="camera name")),
    ({"output": None}, pytest.raises(ValueError, match="output URL, a record folder, or both")),
    ({"output": None, "record": Path("rec")}, DoesNotRaise()),
    ({"record": Path("rec")}, DoesNotRaise()),
    ({"transport": "udp"}, DoesNotRaise()),
    ({"transport": "http"}, pytest.raises(ValueError, match="transport = .http.: expected tcp or udp")),
    ({"segment": 0.0}, pytest.raises(ValueError, match="segment = 0.0: expected")),
    ({"segment": -60.0}, pytest.raises(ValueError, match="segment = -60.0: expected")),
    ({"watchlist": Path("w.enc"), "reveal": True}, DoesNotRaise()),
    ({"watchlist": Path("w.enc"), "alert_only": True}, DoesNotRaise()),
    ({"watchlist": Path("w.enc")}, pytest.raises(ValueError, match="exactly one of reveal")),
    ({"watchlist": Path("w.enc"), "reveal": True, "alert_only": True},
     pytest.raises(ValueError, match="exactly one of reveal")),
    ({"reveal": True}, pytest.raises(ValueError, match="need a watchlist")),
    ({"alert_only": True}, pytest.raises(ValueError, match="need a watchlist")),
])
def test_camera_config_validation(changes: dict, raises: AbstractContextManager) -> None:
    with raises:
        camera(**changes)


def test_camera_config_errors_name_the_camera() -> None:
    with pytest.raises(ValueError, match="^camera gate: "):
        camera(output=None)


# ---- load_serve_config ----------------------------------------------------------------------------------------


def write(folder: Path, text: str, name: str = "cameras.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_serve_config_merges_defaults_and_resolves_paths_against_its_folder(tmp_path: Path) -> None:
    path = write(tmp_path, """
        metrics = "0.0.0.0:9500"
        [defaults]
        latency_ms = 800
        segment = "5m"
        record = "recordings"
        [cameras.gate]
        input = "rtsp://10.0.0.5/stream1"
        secrets = "secrets/gate.toml"
        [cameras.yard]
        input = "rtsp://10.0.0.6/stream1"
        output = "rtsp://vms.local:8554/yard"
        record = "/var/lib/redactor/yard"
        latency_ms = 1500
        segment = 30
        reveal = "matches"
        watchlist = "lists/yard.enc"
        key_file = "~/yard.key"
    """)
    config = load_serve_config(path)
    assert config.metrics == "0.0.0.0:9500"
    gate, yard = config.cameras
    assert (gate.name, gate.latency_ms, gate.segment, gate.output) == ("gate", 800, 300.0, None)
    assert gate.record == tmp_path / "recordings"
    assert gate.secrets == tmp_path / "secrets" / "gate.toml"
    assert (yard.name, yard.latency_ms, yard.segment, yard.reveal) == ("yard", 1500, 30.0, True)
    assert yard.record == Path("/var/lib/redactor/yard")
    assert yard.watchlist == tmp_path / "lists" / "yard.enc"
    assert yard.key_file == Path("~/yard.key").expanduser()
    assert gate.redaction == RedactSettings() and gate.transport == "tcp"  # the rest keep their defaults


def test_serve_config_metrics_default_and_off(tmp_path: Path) -> None:
    one = '[cameras.gate]\ninput = "rtsp://h/s"\noutput = "rtsp://v/g"\n'
    assert load_serve_config(write(tmp_path, one)).metrics == "127.0.0.1:9400"
    assert load_serve_config(write(tmp_path, 'metrics = ""\n' + one)).metrics is None


@pytest.mark.parametrize(("text", "message"), [
    ('[cameras.gate]\ninput = "rtsp://h/s"\noutput = "rtsp://v/g"\nlatency = 500\n',
     r"camera gate: unknown setting\(s\) latency"),
    ('[defaults]\nfps = 25\n[cameras.gate]\ninput = "rtsp://h/s"\noutput = "rtsp://v/g"\n',
     r"camera gate: unknown setting\(s\) fps"),
    ('cameraz = 1\n[cameras.gate]\ninput = "rtsp://h/s"\noutput = "rtsp://v/g"\n',
     r"unknown top-level setting\(s\) cameraz"),
    ('metrics = "127.0.0.1:9400"\n', "no cameras"),
    ("[cameras]\n", "no cameras"),
    ('cameras = "gate"\n', "no cameras"),
    ('[cameras]\ngate = "rtsp://h/s"\n', "no cameras"),
    ('[cameras.gate]\ninput = "rtsp://h/s"\n', "camera gate: give an output URL"),
    ('[cameras.gate]\noutput = "rtsp://v/g"\n', "input"),
    ('[cameras."bad name"]\ninput = "rtsp://h/s"\noutput = "rtsp://v/g"\n', "camera name 'bad name'"),
    ('[cameras.gate]\ninput = "rtsp://h/s"\noutput = "rtsp://v/g"\nsegment = "soon"\n', "not a duration"),
    ('metrics = 9400\n[cameras.gate]\ninput = "rtsp://h/s"\noutput = "rtsp://v/g"\n', "metrics must be"),
    ('[cameras.gate\ninput = "rtsp://h/s"\n', "not valid TOML"),
    ('[cameras.gate]\ninput = rtsp://h/s\n', "not valid TOML"),
])
def test_serve_config_problems_are_one_input_error_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=message) as caught:
        load_serve_config(path)
    assert str(caught.value).startswith(f"{path}: ")


@pytest.mark.parametrize("setting", [
    "latency_ms = 50",
    'latency_ms = "fast"',
    "sweep_rate = 0",
    'detector = "yolo"',
    "threshold = 1.5",
    'mode = "smudge"',
    'shape = "star"',
    'segment_format = ".avi"',
    "crf = 99",
    "segment = nan",
])
def test_serve_config_refuses_what_stream_refuses(tmp_path: Path, setting: str) -> None:
    """Every value `redactor stream` refuses as an option, cameras.toml refuses too, as an InputError naming
    the camera ("validated before anything starts", config.py). Otherwise `serve --check` passes the file
    and `serve` ends in "internal error: ValueError: ..." (exit 1) once the models are loaded, or runs
    with it (crf 99: x264 clamps silently; segment = nan: one segment that never ends)."""
    path = write(tmp_path, f'[cameras.gate]\ninput = "rtsp://h/s"\noutput = "rtsp://v/g"\n{setting}\n')
    with pytest.raises(InputError, match="camera gate"):
        load_serve_config(path)


def test_serve_config_missing_or_unreadable(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_serve_config(tmp_path / "absent.toml")
    with pytest.raises(InputError, match="cannot read"):
        load_serve_config(tmp_path)  # a folder
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="cannot read"):
        load_serve_config(binary)


# ---- credentials ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "shown"), [
    ("rtsp://operator:s3cret@10.0.0.5:554/stream1", "rtsp://***@10.0.0.5:554/stream1"),
    ("rtsp://operator:s3cret@cam.local/stream1?channel=2", "rtsp://***@cam.local/stream1?channel=2"),
    ("rtsp://operator@cam.local/stream1", "rtsp://***@cam.local/stream1"),
    ("rtsp://operator:p%40ss%3Aw%2Frd@cam.local/s", "rtsp://***@cam.local/s"),
    ("rtsp://operator:p@ss@cam.local/s", "rtsp://***@cam.local/s"),
    ("rtsp://operator:s3cret@[fe80::1]:8554/stream1", "rtsp://***@[fe80::1]:8554/stream1"),
    ("rtsp://operator:s3cret@[2001:db8::7]/stream1", "rtsp://***@[2001:db8::7]/stream1"),
    ("srt://operator:s3cret@10.0.0.5:9000", "srt://***@10.0.0.5:9000"),
    # Unencoded, a '#', '/' or '?' in the password ends urlsplit's netloc: it finds no user at all.
    ("rtsp://operator:s3cret#55@10.0.0.5/stream1", "rtsp://***@10.0.0.5/stream1"),
    ("rtsp://operator:s3cret/55@10.0.0.5/stream1", "rtsp://***@10.0.0.5/stream1"),
    ("rtsp://operator:s3cret?55@10.0.0.5:554/stream1?channel=2", "rtsp://***@10.0.0.5:554/stream1?channel=2"),
    ("rtsp://operator:p@ss#s3cret@cam.local/s", "rtsp://***@cam.local/s"),
    ("rtsp:operator:s3cret@cam.local/s", "***@cam.local/s"),  # FFmpeg reads auth without the slashes too
    ("rtsp://10.0.0.5:554/user=operator&password=s3cret&channel=1",
     "rtsp://10.0.0.5:554/user=***&password=***&channel=1"),
    ("http://10.0.0.5/video.cgi?User=operator&pwd=s3cret", "http://10.0.0.5/video.cgi?User=***&pwd=***"),
    # An '@' in a path cannot be told from one in a password with an unencoded '/': masked up to as well.
    ("rtsp://cam.local/live@main", "rtsp://***@main"),
    ("rtsp://10.0.0.5:554/stream1", "rtsp://10.0.0.5:554/stream1"),
    ("rtsp://[fe80::1]:8554/stream1", "rtsp://[fe80::1]:8554/stream1"),
    ("/dev/video0", "/dev/video0"),
])
def test_redact_url_hides_user_and_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    for secret in ("s3cret", "p@ss", "p%40ss", "operator"):
        assert secret not in redact_url(url)


@pytest.mark.parametrize(("url", "expected"), [
    ("rtsp://10.0.0.5:554/stream1", "rtsp://operator:p%40ss%3Aw%2Frd@10.0.0.5:554/stream1"),
    ("rtsp://old:older@cam.local/s?x=1", "rtsp://operator:p%40ss%3Aw%2Frd@cam.local/s?x=1"),
    ("rtsp://[fe80::1]:8554/s", "rtsp://operator:p%40ss%3Aw%2Frd@[fe80::1]:8554/s"),
])
def test_with_credentials_percent_encodes(url: str, expected: str) -> None:
    out = with_credentials(url, "operator", "p@ss:w/rd")
    assert out == expected
    parts = urlsplit(out)
    assert (unquote(parts.username or ""), unquote(parts.password or "")) == ("operator", "p@ss:w/rd")
    assert "p@ss" not in redact_url(out) and "operator" not in redact_url(out)


def test_with_credentials_encodes_any_character() -> None:
    out = with_credentials("rtsp://cam/s", "ops team", "pässwörd#?&%")
    parts = urlsplit(out)
    assert (parts.hostname, parts.path) == ("cam", "/s")
    assert (unquote(parts.username or ""), unquote(parts.password or "")) == ("ops team", "pässwörd#?&%")


def secrets_file(folder: Path, text: str, mode: int = 0o600) -> Path:
    path = folder / "gate.toml"
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_load_secrets_reads_an_owner_only_file(tmp_path: Path, mode: int) -> None:
    path = secrets_file(tmp_path, 'user = "operator"\npassword = "p@ss:w/rd"\n', mode)
    assert load_secrets(path) == ("operator", "p@ss:w/rd")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o620, 0o602, 0o610])
def test_load_secrets_refuses_a_file_others_can_use(tmp_path: Path, mode: int) -> None:
    path = secrets_file(tmp_path, 'user = "operator"\npassword = "p@ss:w/rd"\n', mode)
    with pytest.raises(InputError, match="chmod 600") as caught:
        load_secrets(path)
    assert "p@ss" not in str(caught.value)


@pytest.mark.parametrize(("text", "message"), [
    ('user = "operator"\n', "exactly two strings"),
    ('password = "p@ss:w/rd"\n', "exactly two strings"),
    ('user = "operator"\npassword = 1234\n', "exactly two strings"),
    ('user = "operator"\npassword = "p@ss:w/rd"\nhost = "cam"\n', "exactly two strings"),
    ('[gate]\nuser = "operator"\npassword = "p@ss:w/rd"\n', "exactly two strings"),
    ('user = operator\npassword = "p@ss:w/rd"\n', "not valid TOML"),
    ('user: operator\npassword: p@ss:w/rd\n', "not valid TOML"),
])
def test_load_secrets_refuses_wrong_shapes_without_echoing_them(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        load_secrets(secrets_file(tmp_path, text))
    assert "p@ss" not in str(caught.value) and "1234" not in str(caught.value)


def test_load_secrets_missing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_secrets(tmp_path / "absent.toml")


# ---- LatencyWindow --------------------------------------------------------------------------------------------


def test_latency_window_percentiles() -> None:
    window = LatencyWindow()
    assert window.percentiles(50, 95) == [None, None]
    values = np.random.default_rng(0).uniform(0.3, 0.6, 500)
    for v in values:
        window.add(float(v))
    assert window.percentiles(50, 95, 99) == pytest.approx(list(np.percentile(values, [50, 95, 99])))


def test_latency_window_keeps_the_last_values() -> None:
    window = LatencyWindow(size=10)
    for v in range(100):
        window.add(float(v))
    assert window.percentiles(0, 100) == [90.0, 99.0]


# ---- OpsServer ------------------------------------------------------------------------------------------------


class Health:
    """A health callback the test can flip."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.ok, self.detail = True, {"cameras": [{"camera": "gate", "detector_stalled": False}]}

    def __call__(self) -> tuple[bool, dict]:
        return self.ok, self.detail


@pytest.fixture(scope="module")
def ops() -> Iterator[tuple[OpsServer, StreamMetrics, Health]]:
    """One server for the module: closing one waits out serve_forever's 0.5 s poll."""
    metrics, health = StreamMetrics(), Health()
    server = OpsServer("127.0.0.1", 0, metrics.registry, health).start()  # port 0: the OS picks a free one
    try:
        yield server, metrics, health
    finally:
        server.close()


def get(server: OpsServer, path: str) -> tuple[int, str, bytes]:
    host, port = server.address[:2]
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers["Content-Type"], exc.read()


def test_ops_server_serves_prometheus_metrics(ops: tuple[OpsServer, StreamMetrics, Health]) -> None:
    server, metrics, _ = ops
    metrics.frames_out.labels("gate").inc(3)
    metrics.fail_closed.labels("gate", "detection stalled").inc()
    metrics.stalled.labels("gate").set(1)
    metrics.latency.labels("gate").observe(0.42)
    status, kind, body = get(server, "/metrics")
    assert status == 200 and kind.startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(body.decode()) for s in family.samples}
    assert samples[("redactor_frames_out_total", (("camera", "gate"),))] == 3
    assert samples[("redactor_fail_closed_frames_total", (("camera", "gate"), ("reason", "detection stalled")))] == 1
    assert samples[("redactor_detector_stalled", (("camera", "gate"),))] == 1
    assert samples[("redactor_latency_seconds_bucket", (("camera", "gate"), ("le", "0.5")))] == 1
    assert samples[("redactor_latency_seconds_bucket", (("camera", "gate"), ("le", "0.4")))] == 0


def test_ops_server_health_reflects_the_callback(ops: tuple[OpsServer, StreamMetrics, Health]) -> None:
    server, _, health = ops
    health.reset()
    status, kind, body = get(server, "/healthz")
    assert (status, kind, json.loads(body)) == (200, "application/json", health.detail)
    health.ok, health.detail = False, {"cameras": [{"camera": "gate", "detector_stalled": True}]}
    status, kind, body = get(server, "/healthz?verbose=1")
    assert (status, kind, json.loads(body)) == (503, "application/json", health.detail)


@pytest.mark.parametrize("path", ["/", "/metricsz", "/health", "/healthz/x", "/../etc/passwd"])
def test_ops_server_answers_404_elsewhere(ops: tuple[OpsServer, StreamMetrics, Health], path: str) -> None:
    status, kind, body = get(ops[0], path)
    assert (status, kind) == (404, "text/plain") and b"/metrics" in body


def test_ops_server_closes() -> None:
    server = OpsServer("127.0.0.1", 0, StreamMetrics().registry, Health()).start()
    assert get(server, "/healthz")[0] == 200
    server.close()
    with pytest.raises(urllib.error.URLError):
        get(server, "/healthz")


def test_capture_clock_sees_through_a_burst_of_frames_that_waited_in_the_socket() -> None:
    """25 fps frames arrive 50 ms after capture; then the process stalls for 2 s and the frames taken meanwhile
    arrive together. Their capture times keep their 40 ms spacing and show them 2 s old, so the filter drops
    them as stale instead of sending them as fresh and tracking faces across 1 ms of "time"."""
    from redactor_video.stream.source import CaptureClock

    clock = CaptureClock()
    taken = [clock.taken(k / 25, 100.05 + k / 25) for k in range(50)]
    assert np.allclose(np.diff(taken), 0.04)
    burst_arrival = 100.05 + 100 / 25  # frames 50-99 (taken 2.0-3.96 s in) all arrive when the last one would
    burst = [clock.taken(k / 25, burst_arrival + 0.001 * (k - 50)) for k in range(50, 100)]
    assert np.allclose(np.diff(burst), 0.04, atol=1e-3)
    assert burst_arrival - burst[0] > 1.9, "the first frame of the burst is seen as about 2 s old"
    # A source that loops or restarts its clock is taken as a jump, not as frames seconds or hours old.
    assert clock.taken(0.0, burst_arrival + 0.05) == pytest.approx(burst_arrival + 0.05)
    assert clock.taken(0.04, burst_arrival + 0.09) == pytest.approx(burst_arrival + 0.09)


def test_capture_clock_absorbs_a_camera_clock_running_slow() -> None:
    """A camera clock 200 ppm slow over an hour: frames must not drift into looking seconds old."""
    from redactor_video.stream.source import CaptureClock

    clock = CaptureClock()
    for k in range(0, 25 * 3600, 25):
        arrival = 10.0 + k / 25 * 1.0002
        taken = clock.taken(k / 25, arrival)
    assert arrival - taken < 0.05
