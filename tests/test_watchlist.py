"""The watchlist refuses every entry that is not lawful, in date and for this camera; the file is sealed."""

from __future__ import annotations

import json
import os
import stat
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from redactor_video.cli import main
from redactor_video.errors import EnrolmentRefused, EntryRefused, KeyFileError, OutputError, WatchlistTampered
from redactor_video.recognise import build_recogniser
from redactor_video.recognise import embedder as embedder_module
from redactor_video.recognise.keys import generate_key, load_key
from redactor_video.recognise.watchlist import enrol_photo, load, read_entries, validate, write_entries
from tests.helpers import DoesNotRaise, data_dir, wait_for
from tests.recognition_helpers import TODAY, make_key, raw_entry

# ---------------------------------------------------------------- entries

ENTRY_CASES: list[tuple[str, dict, AbstractContextManager]] = [
    ("valid consent", {}, DoesNotRaise()),
    ("valid warrant", {"basis": "warrant", "category": "missing", "reference": "W-1", "authorised_by": "Judge"},
     DoesNotRaise()),
    ("expires today is still valid", {"expires": TODAY.isoformat()}, DoesNotRaise()),
    ("missing label", {"label": ""}, pytest.raises(EntryRefused, match="missing person label")),
    ("missing basis", {"basis": None}, pytest.raises(EntryRefused, match="missing lawful basis")),
    ("missing reference", {"reference": ""}, pytest.raises(EntryRefused, match="missing reference")),
    ("missing authoriser", {"authorised_by": ""}, pytest.raises(EntryRefused, match="missing authorising person")),
    ("missing category", {"category": None}, pytest.raises(EntryRefused, match="missing category")),
    ("missing expiry", {"expires": ""}, pytest.raises(EntryRefused, match="missing expiry date")),
    ("missing templates", {"templates": []}, pytest.raises(EntryRefused, match="missing face templates")),
    ("unknown basis", {"basis": "legitimate-interest"}, pytest.raises(EntryRefused, match="lawful basis")),
    ("catch-all category", {"category": "other"}, pytest.raises(EntryRefused, match="'other' is not one of")),
    ("warrant category on consent", {"category": "wanted"},
     pytest.raises(EntryRefused, match="'wanted' needs basis warrant, not consent")),
    ("consent category on warrant", {"basis": "warrant", "category": "sar-requester"},
     pytest.raises(EntryRefused, match="needs basis consent, not warrant")),
    ("expired", {"expires": (TODAY - timedelta(days=1)).isoformat()}, pytest.raises(EntryRefused, match="expired on")),
    ("bad date", {"expires": "next year"}, pytest.raises(EntryRefused, match="not a date")),
    ("wrong template size", {"templates": [[0.1] * 64]}, pytest.raises(EntryRefused, match="128-d")),
    ("non-finite template", {"templates": [[float("nan")] * 128]}, pytest.raises(EntryRefused, match="128-d")),
    ("cameras not a list", {"cameras": "gate-1"}, pytest.raises(EntryRefused, match="cameras")),
]


@pytest.mark.parametrize("name,overrides,raises", ENTRY_CASES, ids=[c[0] for c in ENTRY_CASES])
def test_entry_rules(name: str, overrides: dict, raises: AbstractContextManager) -> None:
    with raises:
        entry = validate(raw_entry(**overrides), TODAY)
        assert entry.templates.shape == (1, 128)
        assert not entry.templates.flags.writeable


@pytest.mark.parametrize("cameras,camera,refused", [
    ([], None, None),
    ([], "gate-2", None),
    (["gate-1"], "gate-1", None),
    (["gate-1"], "gate-2", "applies only to camera(s) gate-1, not gate-2"),
    (["gate-1", "gate-3"], None, "no camera was named"),
])
def test_camera_rules(cameras: list[str], camera: str | None, refused: str | None) -> None:
    reason = validate(raw_entry(cameras=cameras), TODAY).applies_to(camera)
    assert reason == refused or (refused is not None and reason is not None and refused in reason)


def test_load_sorts_entries_and_gives_reasons(tmp_path: Path) -> None:
    _, key = make_key(tmp_path)
    path = tmp_path / "w.watchlist"
    write_entries(path, key, [
        raw_entry(id="wl-ok"),
        raw_entry(id="wl-old", expires=(TODAY - timedelta(days=3)).isoformat()),
        raw_entry(id="wl-cam", cameras=["lobby"]),
        raw_entry(id="wl-noref", reference=None),
        "not an entry",
    ])
    loaded = load(path, key, "gate-1", TODAY)
    assert [e.id for e in loaded.entries] == ["wl-ok"]
    reasons = {r.entry_id: r.reason for r in loaded.refused}
    assert reasons["wl-old"].startswith("expired on")
    assert "not gate-1" in reasons["wl-cam"]
    assert reasons["wl-noref"].startswith("missing reference")
    assert "(not an entry)" in reasons


# ---------------------------------------------------------------- keys and the sealed file


def test_keygen_writes_owner_only_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    generate_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="never overwritten"):
        generate_key(path)
    assert path.read_bytes() == before
    assert load_key(path).secret != load_key(path).derive("watchlist")


@pytest.mark.parametrize("content,mode,message", [
    (None, 0o600, "key file not found"),
    ("hello", 0o600, "not a redactor key file"),
    ("redactor-key-v1:!!!", 0o600, "corrupt"),
    ("redactor-key-v1:AAAA", 0o600, "must be 32 bytes"),
    ("redactor-key-v1:" + "A" * 44, 0o644, "accessible to other users"),
])
def test_bad_key_files(tmp_path: Path, content: str | None, mode: int, message: str) -> None:
    path = tmp_path / "bad.key"
    if content is not None:
        path.write_text(content)
        os.chmod(path, mode)
    with pytest.raises(KeyFileError, match=message):
        load_key(path)


def test_key_from_environment_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, key = make_key(tmp_path)
    monkeypatch.setenv("REDACTOR_KEY_FILE", str(path))
    assert load_key(None).secret == key.secret
    monkeypatch.delenv("REDACTOR_KEY_FILE")
    with pytest.raises(KeyFileError, match="no key: pass --key-file or set REDACTOR_KEY_FILE"):
        load_key(None)


def test_file_is_encrypted_and_owner_only(tmp_path: Path) -> None:
    _, key = make_key(tmp_path)
    path = tmp_path / "w.watchlist"
    entry = raw_entry(label="Distinctive Name", reference="CONSENT-REF-XYZ")
    write_entries(path, key, [entry])
    blob = path.read_bytes()
    for secret in (b"Distinctive Name", b"CONSENT-REF-XYZ", b"consented", json.dumps(entry["templates"][0][0]).encode()):
        assert secret not in blob
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_entries(path, key) == [entry]


def test_a_new_watchlist_never_replaces_one(tmp_path: Path) -> None:
    """Its audit logs are bound to it: writing a fresh one over it would orphan them."""
    _, key = make_key(tmp_path)
    path = tmp_path / "w.watchlist"
    write_entries(path, key, [raw_entry()])
    before = path.read_bytes()
    with pytest.raises(OutputError, match="already exists"):
        write_entries(path, key, [raw_entry(id="wl-other")])
    assert path.read_bytes() == before


def test_wrong_key_is_a_clear_error(tmp_path: Path) -> None:
    _, key = make_key(tmp_path)
    _, other = make_key(tmp_path, "other.key")
    path = tmp_path / "w.watchlist"
    write_entries(path, key, [raw_entry()])
    with pytest.raises(KeyFileError, match="sealed with a different key"):
        read_entries(path, other)


@pytest.mark.parametrize("where", ["body", "tag", "nonce", "header", "truncated", "appended", "empty"])
def test_tampered_file_is_refused_whole(tmp_path: Path, where: str) -> None:
    _, key = make_key(tmp_path)
    path = tmp_path / "w.watchlist"
    write_entries(path, key, [raw_entry()])
    blob = bytearray(path.read_bytes())
    if where == "body":
        blob[60] ^= 0x01
    elif where == "tag":
        blob[-1] ^= 0x80
    elif where == "nonce":
        blob[30] ^= 0x01
    elif where == "header":
        blob[0:8] = b"XXXXXXXX"
    elif where == "truncated":
        blob = blob[:-10]
    elif where == "appended":
        blob += b"\x00"
    else:
        blob = bytearray()
    path.write_bytes(bytes(blob))
    with pytest.raises(WatchlistTampered):
        read_entries(path, key)


def test_missing_watchlist(tmp_path: Path) -> None:
    _, key = make_key(tmp_path)
    with pytest.raises(Exception, match="no such watchlist"):
        read_entries(tmp_path / "nope.watchlist", key)


# ---------------------------------------------------------------- enrolment photos (real detector and models)


@pytest.fixture(scope="module")
def enrol_tools():
    from redactor_video.detect import create_detector

    with create_detector("centerface", threshold=0.5) as detector:
        yield detector, embedder_module.Embedder()


def _write(path: Path, rgb: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def _photo(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(data_dir() / f"{name}.jpg")), cv2.COLOR_BGR2RGB)


def test_enrolment_accepts_one_face(enrol_tools) -> None:
    template = enrol_photo(data_dir() / "obama.jpg", *enrol_tools)
    assert template.shape == (128,) and np.all(np.isfinite(template))


def test_enrolment_refuses_a_photo_without_a_face(enrol_tools, tmp_path: Path) -> None:
    import skimage.data

    path = _write(tmp_path / "coffee.png", skimage.data.coffee())
    with pytest.raises(EnrolmentRefused, match="no face found"):
        enrol_photo(path, *enrol_tools)


def test_enrolment_refuses_several_faces(enrol_tools, tmp_path: Path) -> None:
    a, b = _photo("obama"), _photo("biden")
    b = cv2.resize(b, (round(b.shape[1] * a.shape[0] / b.shape[0]), a.shape[0]))
    path = _write(tmp_path / "two.jpg", np.hstack([a, b]))
    with pytest.raises(EnrolmentRefused, match="2 faces found"):
        enrol_photo(path, *enrol_tools)


def test_enrolment_refuses_a_tiny_face(enrol_tools, tmp_path: Path) -> None:
    small = cv2.resize(_photo("obama"), (120, 150), interpolation=cv2.INTER_AREA)
    canvas = np.full((600, 600, 3), 128, np.uint8)
    canvas[200:350, 240:360] = small
    path = _write(tmp_path / "far.png", canvas)
    with pytest.raises(EnrolmentRefused, match="enrolment needs at least 80 px"):
        enrol_photo(path, *enrol_tools)


def test_enrolment_refuses_an_unreadable_file(enrol_tools, tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("not a picture")
    with pytest.raises(EnrolmentRefused, match="cannot read"):
        enrol_photo(path, *enrol_tools)


# ---------------------------------------------------------------- the command line


def _add(runner: CliRunner, watchlist: Path, *extra: str, photo: str = "obama.jpg") -> object:
    args = ["watchlist", "add", str(watchlist), "--label", "Barack Obama", "--photo", str(data_dir() / photo),
            "--basis", "consent", "--reference", "CR-77", "--authorised-by", "DPO", "--category", "consented",
            "--expires", "2099-01-01", *extra]
    return runner.invoke(main, args)


def test_cli_lifecycle(tmp_path: Path) -> None:
    key_path = tmp_path / "k.key"
    runner = CliRunner(env={"REDACTOR_KEY_FILE": str(key_path)})
    made = runner.invoke(main, ["keygen", str(key_path)])
    assert made.exit_code == 0 and stat.S_IMODE(key_path.stat().st_mode) == 0o600
    watchlist = tmp_path / "people.watchlist"
    added = _add(runner, watchlist, "--camera", "gate-1")
    assert added.exit_code == 0, added.output
    entry_id = added.stdout.strip().splitlines()[-1]
    assert entry_id.startswith("wl-")
    listed = runner.invoke(main, ["watchlist", "list", str(watchlist)])
    assert entry_id in listed.stdout and "Barack Obama" in listed.stdout and "ok" in listed.stdout
    shown = runner.invoke(main, ["watchlist", "show", str(watchlist), entry_id])
    assert "CR-77" in shown.stdout and "templates      1" in shown.stdout
    assert runner.invoke(main, ["watchlist", "verify", str(watchlist)]).exit_code == 0
    wrong_camera = runner.invoke(main, ["watchlist", "verify", str(watchlist), "--camera", "lobby"])
    assert wrong_camera.exit_code == 7 and "not lobby" in wrong_camera.output
    removed = runner.invoke(main, ["watchlist", "remove", str(watchlist), entry_id])
    assert removed.exit_code == 0
    assert entry_id not in runner.invoke(main, ["watchlist", "list", str(watchlist)]).stdout
    audit = [json.loads(line) for line in (tmp_path / "people.watchlist.audit.jsonl").read_text().splitlines()]
    assert [(e["event"], e["watchlist_version"]) for e in audit] == [("entry-added", 1), ("entry-removed", 2)]
    assert runner.invoke(main, ["audit", "verify", str(tmp_path / "people.watchlist.audit.jsonl")]).exit_code == 0


@pytest.mark.parametrize("extra,photo,code,message", [
    (("--category", "wanted"), "obama.jpg", 7, "'wanted' needs basis warrant"),
    (("--expires", "2001-01-01"), "obama.jpg", 7, "expired on 2001-01-01"),
    (("--expires", "someday"), "obama.jpg", 2, "not a date in YYYY-MM-DD form"),
    (("--category", "other"), "obama.jpg", 2, "'other' is not one of"),
    (("--basis", "interest"), "obama.jpg", 2, "'interest' is not one of"),
    ((), "no-such-photo.jpg", 7, "cannot read this photo"),
])
def test_cli_refusals(tmp_path: Path, extra: tuple[str, ...], photo: str, code: int, message: str) -> None:
    key_path, _ = make_key(tmp_path)
    runner = CliRunner(env={"REDACTOR_KEY_FILE": str(key_path)})
    watchlist = tmp_path / "people.watchlist"
    result = _add(runner, watchlist, *extra, photo=photo)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert not watchlist.exists()
    if code == 7:  # refused after the command line was accepted: audited
        events = (tmp_path / "people.watchlist.audit.jsonl").read_text()
        assert '"event":"enrolment-refused"' in events


def test_a_log_begun_before_its_watchlist_is_adopted_whole(tmp_path: Path) -> None:
    """A refused first enrolment leaves a log and no watchlist; the first enrolment that succeeds binds that
    log (checked against its head file, which then goes) rather than refusing it or starting another."""
    key_path, _ = make_key(tmp_path)
    runner = CliRunner(env={"REDACTOR_KEY_FILE": str(key_path)})
    watchlist, log = tmp_path / "people.watchlist", tmp_path / "people.watchlist.audit.jsonl"
    assert _add(runner, watchlist, photo="no-such-photo.jpg").exit_code == 7
    assert not watchlist.exists() and log.with_name(log.name + ".head").exists()
    assert _add(runner, watchlist).exit_code == 0
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == ["enrolment-refused", "entry-added"]
    assert "watchlist_id" not in events[0] and events[1]["watchlist_version"] == 1
    assert not log.with_name(log.name + ".head").exists()
    checked = runner.invoke(main, ["audit", "verify", str(log)])
    assert checked.exit_code == 0 and "2 lines, chain intact" in checked.stdout and "sealed" in checked.stdout


def flip_last_bit(path: Path) -> None:
    """Tamper with the authentication tag; overwriting its last byte with a fixed one left it unchanged
    one run in 256 (a CI run failed that way)."""
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))


def test_cli_key_problems(tmp_path: Path) -> None:
    key_path, key = make_key(tmp_path)
    watchlist = tmp_path / "people.watchlist"
    write_entries(watchlist, key, [raw_entry()])
    runner = CliRunner(env={"REDACTOR_KEY_FILE": ""})
    missing = runner.invoke(main, ["watchlist", "list", str(watchlist)])
    assert missing.exit_code == 8 and "no key" in missing.output
    other, _ = make_key(tmp_path, "other.key")
    wrong = runner.invoke(main, ["watchlist", "list", str(watchlist), "--key-file", str(other)])
    assert wrong.exit_code == 8 and "different key" in wrong.output
    literal = runner.invoke(main, ["watchlist", "list", str(watchlist), "--key", "c2VjcmV0"])
    assert literal.exit_code == 2
    flip_last_bit(watchlist)
    tampered = runner.invoke(main, ["watchlist", "verify", str(watchlist), "--key-file", str(key_path)])
    assert tampered.exit_code == 9 and "integrity check" in tampered.output


# ---------------------------------------------------------------- loading for a run


def test_no_applicable_entry_means_no_models_and_no_embedding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_path, key = make_key(tmp_path)
    watchlist = tmp_path / "people.watchlist"
    write_entries(watchlist, key, [raw_entry(id="wl-lobby", cameras=["lobby"]),
                                   raw_entry(id="wl-old", expires="2001-01-01")])

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the face models must not even be loaded")

    monkeypatch.setattr("redactor_video.recognise.Embedder", forbidden)
    audit = tmp_path / "audit.jsonl"
    matcher = build_recogniser(watchlist, key_path, "gate-1", True, audit)
    try:
        assert not matcher.active
        assert {r.entry_id for r in matcher.refusals} == {"wl-lobby", "wl-old"}
    finally:
        matcher.close()
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [e["event"] for e in events] == ["entry-refused", "entry-refused", "watchlist-load"]
    assert events[-1]["entries"] == [] and events[-1]["refused"] == 2 and events[-1]["camera"] == "gate-1"


def test_tampered_watchlist_refused_and_audited(tmp_path: Path) -> None:
    key_path, key = make_key(tmp_path)
    watchlist = tmp_path / "people.watchlist"
    write_entries(watchlist, key, [raw_entry()])
    flip_last_bit(watchlist)
    audit = tmp_path / "audit.jsonl"
    with pytest.raises(WatchlistTampered):
        build_recogniser(watchlist, key_path, None, True, audit)
    (event,) = [json.loads(line) for line in audit.read_text().splitlines()]
    assert event["event"] == "watchlist-refused" and "integrity check" in event["reason"]


# ---------------------------------------------------------------- what was refused, told to the operator

REFUSABLE = [raw_entry(id="wl-ok", expires="2099-12-31"), raw_entry(id="wl-old", expires="2001-01-01"),
             raw_entry(id="wl-lobby", expires="2099-12-31", cameras=["lobby"]),
             raw_entry(id="wl-noref", expires="2099-12-31", reference=None)]
REFUSALS = {"wl-old": "expired on 2001-01-01", "wl-lobby": "applies only to camera(s) lobby, not gate-1",
            "wl-noref": "missing reference (the consent record or warrant/authorisation)"}


def _template_needles() -> list[str]:
    values = np.asarray(raw_entry()["templates"][0][:8])
    return [repr(float(v)) for v in values] + [f"{v:.6f}" for v in values] + [raw_entry()["label"]]


def test_redact_reports_each_refused_entry_on_stderr(tmp_path: Path) -> None:
    """Expired, wrong camera, incomplete: one line each on stderr (even with -q), and the same in the audit
    log; the face itself (templates, label) appears in neither."""
    key_path, key = make_key(tmp_path)
    watchlist = tmp_path / "people.watchlist"
    write_entries(watchlist, key, REFUSABLE)
    picture = _write(tmp_path / "gate.png", np.full((96, 128, 3), 90, np.uint8))
    result = CliRunner().invoke(main, ["redact", str(picture), "-o", str(tmp_path / "out.png"), "-q", "--alert-only",
                                       "--watchlist", str(watchlist), "--key-file", str(key_path), "--camera", "gate-1"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [f"warning: watchlist entry {entry_id} refused: {reason}"
                                          for entry_id, reason in REFUSALS.items()]
    audit = [json.loads(line) for line in (tmp_path / "people.watchlist.audit.jsonl").read_text().splitlines()]
    assert {e["entry_id"]: e["reason"] for e in audit if e["event"] == "entry-refused"} == REFUSALS
    assert audit[-1]["event"] == "watchlist-load" and audit[-1]["entries"] == ["wl-ok"]
    for needle in _template_needles():
        assert needle not in result.stderr


@pytest.mark.integration
def test_stream_reports_each_refused_entry_as_a_warning(tmp_path: Path) -> None:
    """A real `redactor stream` (its camera unreachable, so it waits for it): each refused entry is a JSON
    warning line on stderr with the camera, the entry id and the reason, before the filter runs."""
    from tests.stream_helpers import FilterProcess

    key_path, key = make_key(tmp_path)
    watchlist = tmp_path / "people.watchlist"
    write_entries(watchlist, key, REFUSABLE)
    args = ["stream", "--input", "rtsp://127.0.0.1:9/cam", "--record", tmp_path / "segments", "--metrics", "off",
            "--camera", "gate-1", "--watchlist", watchlist, "--key-file", key_path, "--alert-only"]
    with FilterProcess(args) as proc:
        def started() -> bool:
            assert proc.running(), proc.tail()
            return '"event": "started"' in proc.stderr

        wait_for(started, 120)
        assert proc.terminate() == 0, proc.tail()
        records = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
        stderr = proc.stderr
    refused = [r for r in records if r.get("event") == "entry-refused"]
    assert [(r["level"], r["camera"], r["entry_id"], r["reason"]) for r in refused] == \
        [("warning", "gate-1", entry_id, reason) for entry_id, reason in REFUSALS.items()]
    assert records.index(refused[-1]) < [r.get("event") for r in records].index("started")
    for needle in _template_needles():
        assert needle not in stderr
