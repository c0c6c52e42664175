"""Every setting, from every front end, is either refused with a one-line usage error or gives an output in
which every face is masked: property-based over the command line (values of each option's type including
NaN, infinities, huge, negative, empty and odd strings) and over the camera config.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.score import compare_face
from redactor_video.cli import main
from redactor_video.errors import InputError
from redactor_video.settings import RedactSettings, knobs
from redactor_video.stream.config import LIVE_SETTINGS, load_serve_config
from tests.helpers import DoesNotRaise, grey, portrait

FACE_WIDTH = 320
NUMBER_FLAGS = [k.flag for k in knobs().values() if not k.choices] + ["--crf"]
CHOICE_FLAGS = [k.flag for k in knobs().values() if k.choices]

# What an operator might type, or a script might pass by mistake, for a number.
ODD_TEXT = st.sampled_from(["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e309", "-1e309", "1e-320", "-0", "",
                            " ", "0x10", "1_0", "1,5", "½", "١", "0.5\n", "--", "none", "True", "9" * 40])
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-10, 100).map(lambda x: f"{x:.3g}"),
    st.integers(-10**20, 10**20).map(str),
    st.integers(-5, 100).map(str),
    ODD_TEXT,
    st.text(max_size=6),
)


@pytest.fixture(scope="module")
def face_image(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> tuple[Path, np.ndarray, tuple]:
    """A real frontal portrait as a PNG, with its face box."""
    image, box = portrait("obama", FACE_WIDTH)
    path = tmp_path_factory.mktemp("settings") / "face.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path, image, box


def redact_outcome(face_image: tuple[Path, np.ndarray, tuple], out: Path, *options: str) -> None:
    """Run `redactor redact` on the portrait; the run must be a one-line usage error that writes nothing,
    or a success whose output has the face masked."""
    src, original, box = face_image
    out.unlink(missing_ok=True)
    result = CliRunner().invoke(main, ["redact", str(src), "-o", str(out), "-q", *options])
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        redacted = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
        verdict = compare_face(grey(original), grey(redacted), box, box[2] - box[0])
        assert verdict.protected, f"{options}: exit 0 with the face clear ({verdict})"
        return
    assert result.exit_code == 2, f"{options}: exit {result.exit_code}: {result.output}"
    assert isinstance(result.exception, SystemExit)
    assert len([line for line in result.output.splitlines() if line.startswith("Error:")]) == 1, result.output
    assert not out.exists()


def near_range(flag: str) -> st.SearchStrategy[str]:
    """Values in and just outside an option's declared range, its bounds included, where most bugs live."""
    knob = next((k for k in knobs().values() if k.flag == flag), None)
    low, high = (0, 63) if knob is None else (knob.low, knob.high)
    if knob is not None and knob.integer or knob is None:
        return st.integers(int(low) - 2, int(high) + 2).map(str)
    edges = [low, high, math.nextafter(low, -math.inf), math.nextafter(high, math.inf)]
    return st.one_of(st.floats(low, high).map(repr), st.sampled_from(edges).map(repr))


@pytest.mark.parametrize("flag", NUMBER_FLAGS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_number_option_is_refused_or_masks_every_face(face_image: tuple, tmp_path: Path, flag: str,
                                                          data: st.DataObject) -> None:
    value = data.draw(st.one_of(NUMBERS, near_range(flag)), label=flag)
    redact_outcome(face_image, tmp_path / "out.png", flag, value)


@pytest.mark.parametrize("flag", CHOICE_FLAGS)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(st.text(max_size=10), ODD_TEXT, st.sampled_from(["BLUR", "blur ", "ellipse\x00"])))
def test_any_choice_option_is_refused_or_masks_every_face(face_image: tuple, tmp_path: Path, flag: str,
                                                          value: str) -> None:
    redact_outcome(face_image, tmp_path / "out.png", flag, value)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(options=st.dictionaries(st.sampled_from(NUMBER_FLAGS), NUMBERS, min_size=2, max_size=5))
def test_options_together_are_refused_or_mask_every_face(face_image: tuple, tmp_path: Path,
                                                         options: dict[str, str]) -> None:
    redact_outcome(face_image, tmp_path / "out.png", *[part for item in options.items() for part in item])


NAN_CASES = [(command, flag) for command in ("redact", "batch") for flag in NUMBER_FLAGS] + [
    ("stream", knobs()[name].flag) for name in LIVE_SETTINGS if not knobs()[name].choices] + [
    ("stream", "--latency-ms"), ("stream", "--crf"), ("batch", "--chunk-seconds"), ("batch", "--workers"),
    ("verify", "--threshold"), ("sar", "--padding")]


@pytest.mark.parametrize(("command", "flag"), NAN_CASES)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_no_command_takes_a_non_finite_number(tmp_path: Path, command: str, flag: str, value: str) -> None:
    """`--mask-scale nan` once ran to exit 0 with every face clear: NaN passed click's FloatRange."""
    args = {"redact": ["in.mp4", "-o", "out.mp4"], "batch": [str(tmp_path), str(tmp_path / "out")],
            "stream": ["--input", "rtsp://h/s", "--output", "rtsp://v/s"], "verify": ["a.mp4", "b.mp4"],
            "sar": ["--request-id", "R-1", "--received", "2026-11-20", "--subject", "me.jpg", str(tmp_path),
                    "-o", str(tmp_path / "x")]}[command]
    result = CliRunner().invoke(main, [command, *args, flag, value])
    assert result.exit_code == 2, result.output
    assert f"'{flag}'" in result.output and "Traceback" not in result.output


# ---- the camera config ----------------------------------------------------------------------------------------

def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


CAMERA_KEYS = ["input", "output", "record", "segment", "segment_format", "transport", "input_format", "latency_ms",
               "preset", "crf", "reveal", "alert_only", *LIVE_SETTINGS, "lookahead_seconds"]
TOML_VALUES = st.one_of(
    st.booleans(), st.integers(-10**12, 10**12), st.integers(-2, 64), st.floats(allow_nan=True),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=8), st.lists(st.integers(), max_size=2),
    st.sampled_from(["centerface", "blur", "box", "tcp", ".mkv", "60s", "matches", "rtsp://h/s"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.dictionaries(st.sampled_from(CAMERA_KEYS), TOML_VALUES, max_size=4))
def test_any_camera_config_is_refused_in_one_line_or_holds_valid_settings(tmp_path: Path, values: dict) -> None:
    path = tmp_path / "cameras.toml"
    body = {"input": "rtsp://h/s", "output": "rtsp://v/g", **values}
    path.write_text("[cameras.gate]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in body.items()), "utf-8")
    result = CliRunner().invoke(main, ["serve", str(path), "--check"])
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        camera = load_serve_config(path).cameras[0]
        RedactSettings(**{name: getattr(camera.redaction, name) for name in knobs()})  # still valid
        assert all(math.isfinite(getattr(camera.redaction, name)) for name in knobs()
                   if not knobs()[name].choices and getattr(camera.redaction, name) is not None)
        return
    assert result.exit_code == 3, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "camera gate" in errors[0], result.output


def write_config(folder: Path, extra: str, input_line: str = 'input = "rtsp://h/s"') -> Path:
    path = folder / "cameras.toml"
    path.write_text(f'[cameras.gate]\n{input_line}\noutput = "rtsp://v/g"\n{extra}\n', "utf-8")
    return path


@pytest.mark.parametrize(("setup", "input_line", "message"), [
    ("open secrets", 'input = "rtsp://h/s"', "readable by others"),
    ("missing secrets", 'input = "rtsp://h/s"', "secrets file not found"),
    ("missing watchlist", 'input = "rtsp://h/s"', "watchlist"),
    ("number as input", "input = 12345", "input = '12345'"),
    ("no input", "", "no input"),
])
def test_serve_check_refuses_what_running_refuses(tmp_path: Path, setup: str, input_line: str, message: str) -> None:
    """`serve --check` said OK for configs that `serve` then refused, and a missing `input` printed Python's
    own text (`CameraConfig.__init__() missing 1 required positional argument`)."""
    extra = ""
    if setup.endswith("secrets"):
        extra = 'secrets = "gate-secrets.toml"'
        if setup == "open secrets":
            (tmp_path / "gate-secrets.toml").write_text('user = "u"\npassword = "p"\n')
            os.chmod(tmp_path / "gate-secrets.toml", 0o644)
    if setup == "missing watchlist":
        extra = 'watchlist = "absent.wl"\nreveal = true'
    result = CliRunner().invoke(main, ["serve", str(write_config(tmp_path, extra, input_line)), "--check"])
    assert result.exit_code == 3, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0] and "camera gate" in errors[0], result.output
    assert "Traceback" not in result.output and "__init__" not in result.output


def test_serve_check_passes_a_private_secrets_file(tmp_path: Path) -> None:
    (tmp_path / "gate-secrets.toml").write_text('user = "u"\npassword = "p"\n')
    os.chmod(tmp_path / "gate-secrets.toml", 0o600)
    result = CliRunner().invoke(main, ["serve", str(write_config(tmp_path, 'secrets = "gate-secrets.toml"')),
                                       "--check"])
    assert result.exit_code == 0, result.output
    assert "1 camera(s) OK: gate" in result.output


@pytest.mark.parametrize(("extra", "expected", "raises"), [
    ("tile = 0\ncenterface_scale = 1.5\nmask_scale = 2.0", {"tile": 0, "centerface_scale": 1.5, "mask_scale": 2.0},
     DoesNotRaise()),
    ("hold_seconds = 0.25", {"hold_seconds": 0.25}, DoesNotRaise()),
    ("tile = -1", None, pytest.raises(InputError, match="camera gate: --tile -1")),
    ("mask_scale = nan", None, pytest.raises(InputError, match="camera gate: --mask-scale nan")),
    ("lookahead_seconds = 2.0", None, pytest.raises(InputError, match="latency_ms")),
])
def test_camera_redaction_settings_reach_the_pipeline_checked(tmp_path: Path, extra: str, expected: dict | None,
                                                               raises: object) -> None:
    """The live path once dropped tile and centerface_scale silently; every redaction setting a camera
    takes is now a RedactSettings field, checked where it is declared."""
    with raises:  # type: ignore[attr-defined]
        camera = load_serve_config(write_config(tmp_path, extra)).cameras[0]
        assert {k: getattr(camera.redaction, k) for k in expected} == expected


def test_a_mistyped_input_is_refused_without_showing_its_password(tmp_path: Path) -> None:
    """A URL given as a list is refused; its error must not carry the password it holds."""
    path = write_config(tmp_path, "", input_line='input = ["rtsp://admin:Pa55word@10.0.0.5/s"]')
    result = CliRunner().invoke(main, ["serve", str(path), "--check"])
    assert result.exit_code == 3, result.output
    assert "camera gate: input" in result.output and "Pa55word" not in result.output and "admin" not in result.output
