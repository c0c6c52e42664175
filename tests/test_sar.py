"""Subject access requests on real faces: the export holds exactly the requester's footage, only they are clear.

The archive is three short clips composed from the public-domain portraits: the
requester (enrolled from obama.jpg) walks through two of them as obama2 and
obama3, strangers (biden in every clip, the astronaut) walk through all three.
One clip takes its recording time from container metadata, the others from
their file names. `redactor sar` runs as a user runs it (CliRunner), and its
package is checked against the ground truth frame by frame with
benchmarks.score's protection rule, against its own manifest, against the audit
log, for any trace of a face vector, and in headless Chromium.
"""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import av
import click
import cv2
import numpy as np
import pytest
from click.testing import CliRunner, Result

from benchmarks.score import compare_face
from benchmarks.synth import ClipSpec, FaceSpec, GroundTruth, make_clip
from redactor_video.errors import RequestError
from redactor_video.audit import verify
from redactor_video.cli import main
from redactor_video.cli.sar import Moment
from redactor_video.detect import create_detector
from redactor_video.recognise.embedder import Embedder, Look
from redactor_video.recognise.keys import generate_key, load_key
from redactor_video.recognise.matcher import MatchPolicy
from redactor_video.recognise.watchlist import enrol_photo
from redactor_video.sar import SubjectRequest, due_date
from redactor_video.sar.archive import Recording, in_scope, probe
from redactor_video.sar.search import Scanner, ScanResult, ScanSettings, segments
from tests.helpers import DoesNotRaise, detail_left, sha256

FPS = 12
FRAMES = 72
REQUEST = "R-2026-001"
REQUESTER = ("obama2", "obama3")
MIN_WIDTH = 40
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")

FIRST = "CAM1_20261115_101500.mp4"
STRANGERS_ONLY = "CAM2_20261115_110000.mp4"
TAGGED = "CAM1_20261116_090000.mp4"
TAGGED_TIME = "2026-11-16T08:00:05.000000Z"


def scenes() -> dict[str, ClipSpec]:
    """640x360, 12 fps, 6 s each; faces in lanes so that none overlaps another."""
    return {
        FIRST: ClipSpec(640, 360, FPS, FRAMES, (
            FaceSpec("obama2", 70, 90, ((90, 80), (520, 85)), 12, 60, (0, 5)),
            FaceSpec("biden", 90, 84, ((560, 285), (330, 290)), 0, FRAMES, (-3, 2)),
            FaceSpec("astronaut", 56, 60, ((100, 200), (300, 195)), 0, FRAMES),
        ), seed=1),
        STRANGERS_ONLY: ClipSpec(640, 360, FPS, FRAMES, (
            FaceSpec("biden", 80, 90, ((100, 90), (500, 100)), 0, FRAMES),
            FaceSpec("astronaut", 60, 64, ((520, 250), (200, 260)), 6, FRAMES),
        ), seed=2, background="coffee"),
        TAGGED: ClipSpec(640, 360, FPS, FRAMES, (
            FaceSpec("obama3", 64, 84, ((560, 190), (300, 185)), 30, FRAMES, (3, -3)),
            FaceSpec("biden", 76, 80, ((80, 80), (400, 90)), 0, FRAMES),
            FaceSpec("astronaut", 52, 56, ((120, 290), (420, 285)), 0, 50),
        ), seed=3, background="rocket"),
    }


@dataclass(frozen=True)
class Archive:
    folder: Path
    truth: dict[str, GroundTruth]


def _tag_creation_time(src: Path, dst: Path, when: str) -> None:
    """Remux `src` into `dst` with a container creation_time, as a recorder writes it."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        out.metadata["creation_time"] = when
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    folder = tmp_path_factory.mktemp("archive") / "cctv"
    work = tmp_path_factory.mktemp("render")
    folder.mkdir()
    truth = {}
    for name, spec in scenes().items():
        rendered = work / name
        truth[name] = make_clip(spec, rendered, crf=23)
        if name == TAGGED:
            _tag_creation_time(rendered, folder / name, TAGGED_TIME)
        else:
            shutil.copy(rendered, folder / name)
    return Archive(folder, truth)


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "site.key"
    generate_key(path)
    return path


@dataclass
class Run:
    result: Result
    package: Path
    audit: Path
    seconds: float
    vectors: list[tuple[np.ndarray, np.ndarray]]


def run_sar(folder: Path, args: list[str]) -> Run:
    """`redactor sar` into `folder`/package, keeping (copy, original) of every face vector the run computed."""
    vectors: list[tuple[np.ndarray, np.ndarray]] = []
    real = Embedder.describe  # every descriptor, searched or exported, is computed here

    def recording(self: Embedder, look: Look) -> np.ndarray:
        vector = real(self, look)
        vectors.append((vector.copy(), vector))
        return vector

    package = folder / "package"
    started = time.perf_counter()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Embedder, "describe", recording)
        result = CliRunner().invoke(main, ["sar", "--request-id", REQUEST, "--received", "2026-11-20",
                                           "-o", str(package), *args])
    return Run(result, package, folder / "package.audit.jsonl", time.perf_counter() - started, vectors)


@pytest.fixture(scope="module")
def disclosed(archive: Archive, key_file: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The whole archive searched for obama.jpg, clips padded by half a second, with the site key."""
    run = run_sar(tmp_path_factory.mktemp("sar"), ["--subject", str(shared_data / "obama.jpg"), "--padding", "0.5",
                                                   "--key-file", str(key_file), str(archive.folder)])
    assert run.result.exit_code == 0, run.result.output
    return run


def manifest(run: Run) -> dict:
    return json.loads((run.package / "manifest.json").read_text())


def _grey(path: Path) -> Iterator[np.ndarray]:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="gray")


def requester_frames(truth: GroundTruth) -> tuple[int, int]:
    frames = [row[0] for t in truth.tracks if t.photo in REQUESTER for row in t.frames]
    return min(frames), max(frames)


def clear_calls(archive: Archive, package: Path, clip: dict) -> tuple[list[bool], list[bool]]:
    """(requester face-frames >= 40 px and half visible: clear?, every visible stranger face-frame: clear?)
    over every frame of one clip."""
    truth = archive.truth[Path(clip["source"]).name]
    first = round(clip["source_start_seconds"] * FPS)
    source = list(_grey(archive.folder / Path(clip["source"]).name))
    mine, others = [], []
    redacted = list(_grey(package / clip["file"]))
    assert len(redacted) == clip["frames"]
    for i, red in enumerate(redacted):
        for b in truth.boxes_at(first + i):
            if b.visible_fraction == 0:
                continue
            clear = not compare_face(source[first + i], red, b.box, b.face_width).protected
            if b.photo not in REQUESTER:
                others.append(clear)
            elif b.face_width >= MIN_WIDTH and b.visible_fraction >= 0.5:
                mine.append(clear)
    return mine, others


# ------------------------------------------------------------------ the request's own rules


@pytest.mark.parametrize("received,due", [
    ("2026-11-20", "2026-12-20"),
    ("2026-12-15", "2027-01-15"),
    ("2026-01-31", "2026-02-28"),
    ("2028-01-31", "2028-02-29"),
    ("2026-03-31", "2026-04-30"),
])
def test_due_one_month_after_receipt(received: str, due: str) -> None:
    assert due_date(date.fromisoformat(received)) == date.fromisoformat(due)


@pytest.mark.parametrize("text,end,expected,raises", [
    ("2026-11-20", False, datetime(2026, 11, 20), DoesNotRaise()),
    ("2026-11-20", True, datetime(2026, 11, 21), DoesNotRaise()),
    ("2026-11-20T10:15", False, datetime(2026, 11, 20, 10, 15), DoesNotRaise()),
    ("2026-11-20T10:15:00+02:00", False, datetime(2026, 11, 20, 8, 15, tzinfo=timezone.utc), DoesNotRaise()),
    ("20.11.2026", False, None, pytest.raises(click.BadParameter, match="not a date")),
])
def test_window_times(text: str, end: bool, expected: datetime | None, raises: object) -> None:
    with raises:
        moment = Moment(end).convert(text, None, None)
        assert moment.tzinfo is not None
        assert moment == (expected if expected.tzinfo else expected.astimezone())


def _recording(duration: float = 60.0) -> Recording:
    return Recording(Path("CAM9_20261120_100000.mp4"), "CAM9", None, "unknown", duration, 10.0)


@pytest.mark.parametrize("seen,span,expected", [
    ([], (0, 60), []),
    ([(10, 20)], (0, 60), [(7, 23, 10, 20)]),
    ([(10, 20), (24, 30)], (0, 60), [(7, 33, 10, 30)]),
    ([(10, 20), (30, 40)], (0, 60), [(7, 23, 10, 20), (27, 43, 30, 40)]),
    ([(1, 2), (58, 59)], (0, 60), [(0, 5, 1, 2), (55, 60, 58, 59)]),
    ([(12, 12)], (11, 60), [(11, 15, 12, 12)]),
])
def test_sightings_padded_and_merged(seen: list, span: tuple, expected: list) -> None:
    result = ScanResult(_recording(), span, seen=seen)
    got = [(s.start, s.end, s.seen_from, s.seen_to) for s in segments(result, padding=3.0)]
    assert got == expected


def test_window_and_cameras_choose_what_is_searched() -> None:
    start = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
    hour = Recording(Path("CAM1_x.mp4"), "CAM1", start, "file name", 3600.0, 25.0)
    other = Recording(Path("CAM2_x.mp4"), "CAM2", start, "file name", 3600.0, 25.0)
    unknown = Recording(Path("clip.mp4"), None, None, "unknown", 60.0, 25.0)
    window = SubjectRequest(REQUEST, date(2026, 11, 20), start + timedelta(minutes=10), start + timedelta(minutes=20))
    assert hour.span(window) == (600.0, 1200.0)
    assert unknown.span(window) == (0.0, 60.0), "a recording of unknown time is searched whole"
    later = SubjectRequest(REQUEST, date(2026, 11, 20), start + timedelta(hours=2))
    assert hour.span(later) is None
    only_cam1 = SubjectRequest(REQUEST, date(2026, 11, 20), cameras=("CAM1",))
    assert [r.camera for r, _ in in_scope([hour, other, unknown], only_cam1)] == ["CAM1"]
    with pytest.raises(RequestError, match="later than"):
        SubjectRequest(REQUEST, date(2026, 11, 20), start, start)


def test_recording_time_from_metadata_else_file_name(archive: Archive) -> None:
    tagged, named = probe(archive.folder / TAGGED), probe(archive.folder / FIRST)
    assert (tagged.time_source, tagged.start) == ("metadata", datetime(2026, 11, 16, 8, 0, 5, tzinfo=timezone.utc))
    assert named.time_source == "file name"
    assert named.start == datetime(2026, 11, 15, 10, 15).astimezone()
    assert (tagged.camera, named.camera) == ("CAM1", "CAM1")
    assert named.duration == pytest.approx(FRAMES / FPS, abs=0.1)


# ------------------------------------------------------------------ the disclosure


@pytest.mark.integration
def test_exports_exactly_the_requester_clips_and_times(archive: Archive, disclosed: Run) -> None:
    clips = manifest(disclosed)["clips"]
    assert sorted(Path(c["source"]).name for c in clips) == sorted([FIRST, TAGGED])
    for clip in clips:
        first, last = (f / FPS for f in requester_frames(archive.truth[Path(clip["source"]).name]))
        assert clip["requester_seen_from_seconds"] == pytest.approx(first, abs=1.0)
        assert clip["requester_seen_to_seconds"] == pytest.approx(last, abs=1.0)
        assert clip["source_start_seconds"] == pytest.approx(first, abs=1.0)
        assert clip["source_end_seconds"] == pytest.approx(last, abs=1.0)
    tagged = next(c for c in clips if Path(c["source"]).name == TAGGED)
    start = datetime.fromisoformat(TAGGED_TIME.replace("Z", "+00:00"))
    recorded = datetime.fromisoformat(tagged["recording_start"])
    assert abs(recorded - (start + timedelta(seconds=tagged["source_start_seconds"]))) < timedelta(milliseconds=2)


@pytest.mark.integration
def test_requester_clear_and_every_stranger_blurred(archive: Archive, disclosed: Run) -> None:
    for clip in manifest(disclosed)["clips"]:
        mine, others = clear_calls(archive, disclosed.package, clip)
        assert len(mine) >= 30 and len(others) >= 60
        assert sum(mine) / len(mine) >= 0.9, f"{clip['file']}: requester clear in {sum(mine)}/{len(mine)} frames"
        assert not any(others), f"{clip['file']}: a stranger is clear in {sum(others)} face-frames"
        assert clip["requester_frames"] > 0 and len(clip["thumbnails"]) == 3


@pytest.mark.integration
def test_manifest_hashes_every_file(disclosed: Run) -> None:
    m = manifest(disclosed)
    on_disk = {p.relative_to(disclosed.package).as_posix() for p in disclosed.package.rglob("*") if p.is_file()}
    assert set(m["files"]) == on_disk - {"manifest.json"}
    assert all(sha256(disclosed.package / name) == digest for name, digest in m["files"].items())
    assert m["request"] == {"request_id": REQUEST, "received": "2026-11-20", "due": "2026-12-20", "from": None,
                            "to": None, "cameras": []}
    assert {"scan", "redact", "match_policy", "blur_subject_context", "art15_template"} <= set(m["settings"])
    assert len(m["searched"]) == 3
    assert not list(disclosed.package.parent.glob(".package.*")), "no temporary folder is left behind"


@pytest.mark.integration
def test_audit_log_records_creation_and_destruction(disclosed: Run, key_file: Path) -> None:
    assert verify(disclosed.audit, load_key(key_file)).lines >= 5
    lines = [json.loads(line) for line in disclosed.audit.read_text().splitlines()]
    events = [line["event"] for line in lines]
    created = lines[events.index("sar-enrolment-created")]
    assert (created["basis"], created["category"], created["reference"]) == ("consent", "sar-requester", REQUEST)
    assert events.index("sar-enrolment-created") < events.index("sar-enrolment-destroyed") < events.index("sar-package")
    matches = [line for line in lines if line["event"] == "match"]
    assert matches and all(m["entry_id"] == created["entry_id"] for m in matches)


def _needles(vector: np.ndarray) -> list[bytes]:
    out = [struct.pack("<4d", *vector[:4]), struct.pack("<4f", *vector[:4])]
    return out + [f"{abs(x):.6f}".encode() for x in vector[:16]] + [repr(float(x)).encode() for x in vector[:16]]


@pytest.mark.integration
def test_no_face_vector_is_written_anywhere(disclosed: Run) -> None:
    """Not the requester's template, not a stranger's sample: no vector reaches the package, log or output."""
    assert len(disclosed.vectors) >= 10
    assert all(not original.any() for _, original in disclosed.vectors), "every vector is zeroed after use"
    files = [*disclosed.package.rglob("*"), disclosed.audit, disclosed.audit.with_name(disclosed.audit.name + ".head")]
    hay = {str(p): p.read_bytes() for p in files if p.is_file()}
    hay["output"] = disclosed.result.output.encode()
    for copy, _ in disclosed.vectors:
        for needle in _needles(copy):
            assert not any(needle in h for h in hay.values())


@pytest.mark.integration
def test_index_html_in_chromium(disclosed: Run) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium); .ci/run installs it")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.TemporaryDirectory(prefix="chromium-")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile.name}",
                "--window-size=1200,2400"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.get((disclosed.package / "index.html").resolve().as_uri())
        deadline = time.monotonic() + 20
        videos: list = []
        while time.monotonic() < deadline:
            videos = driver.execute_script(
                "return Array.from(document.querySelectorAll('video'))"
                ".map(v => [v.readyState, v.videoWidth, v.duration, v.error && v.error.code])")
            if videos and all(v[0] >= 1 for v in videos):
                break
            time.sleep(0.2)
        images = driver.execute_script("return Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        text = driver.find_element("tag name", "body").text
        driver.save_screenshot(str(disclosed.package.parent / "index.png"))
    finally:
        driver.quit()
        profile.cleanup()
    assert len(videos) == 2 and all(v[0] >= 1 and v[1] == 640 and v[2] > 2 and v[3] is None for v in videos), videos
    assert len(images) == 6 and all(done and width > 0 for done, width in images), images
    for expected in (f"Subject access request {REQUEST}", "2026-12-20 (one month after receipt)", "Clip 1", "Clip 2",
                     FIRST, TAGGED, "Information about the processing of your personal data (Art. 15 GDPR)"):
        assert expected in text
    assert (disclosed.package.parent / "index.png").stat().st_size > 10_000


# ------------------------------------------------------------------ other runs


@pytest.mark.integration
def test_search_judges_samples_by_the_match_policy(archive: Archive, shared_data: Path) -> None:
    """The search has no threshold of its own: the requester's track is found under the calibrated policy and
    under none stricter than every one of her samples, so it never proposes by a looser rule than the export."""
    embedder = Embedder()
    with create_detector("centerface", threshold=0.5) as detector:
        template = enrol_photo(shared_data / "obama.jpg", detector, embedder)[None, :]
    rec = probe(archive.folder / FIRST)
    seen = {}
    for threshold in (MatchPolicy().threshold, 0.2):
        with Scanner(ScanSettings(), embedder, policy=MatchPolicy(threshold=threshold)) as scanner:
            seen[threshold] = scanner.scan(rec, (0.0, rec.duration), template).seen
    assert seen[MatchPolicy().threshold] and seen[0.2] == []


@pytest.mark.integration
def test_no_match_is_still_a_valid_package(archive: Archive, shared_data: Path, tmp_path: Path) -> None:
    art15 = tmp_path / "our-art15.html"
    art15.write_text("<h2>Ihre Rechte</h2><p>Anfrage {{ request.request_id }}, fällig am {{ request.due }}.</p>")
    run = run_sar(tmp_path, ["--subject", str(shared_data / "obama.jpg"), "--camera", "CAM2",
                             "--art15-template", str(art15), str(archive.folder)])
    assert run.result.exit_code == 0, run.result.output
    assert f"Anfrage {REQUEST}, fällig am 2026-12-20." in (run.package / "index.html").read_text()
    assert "no footage of the requester found" in run.result.output and "one-off key" in run.result.output
    m = manifest(run)
    assert m["clips"] == [] and list(m["files"]) == ["index.html"]
    assert [Path(s["file"]).name for s in m["searched"]] == [STRANGERS_ONLY]
    assert "We found no footage of you in the recordings searched." in (run.package / "index.html").read_text()
    events = [json.loads(line)["event"] for line in run.audit.read_text().splitlines()]
    assert "sar-enrolment-created" in events and "sar-enrolment-destroyed" in events


@pytest.mark.integration
def test_blur_subject_context_leaves_only_the_requester_head(archive: Archive, shared_data: Path,
                                                             tmp_path: Path) -> None:
    run = run_sar(tmp_path, ["--subject", str(shared_data / "obama.jpg"), "--from", "2026-11-15", "--to",
                             "2026-11-15", "--padding", "0", "--blur-subject-context", str(archive.folder)])
    assert run.result.exit_code == 0, run.result.output
    m = manifest(run)
    assert sorted(Path(s["file"]).name for s in m["searched"]) == sorted([FIRST, STRANGERS_ONLY])
    (clip,) = m["clips"]
    mine, others = clear_calls(archive, run.package, clip)
    assert sum(mine) / len(mine) >= 0.9 and not any(others)
    truth = archive.truth[FIRST]
    first = round(clip["source_start_seconds"] * FPS)
    source = list(_grey(archive.folder / FIRST))
    for i, red in enumerate(_grey(run.package / clip["file"])):
        background = np.ones(red.shape, bool)
        for b in truth.boxes_at(first + i):
            x1, y1, x2, y2 = b.box
            grow = b.face_width
            background[max(0, int(y1 - grow)):int(y2 + grow), max(0, int(x1 - grow)):int(x2 + grow)] = False
        assert detail_left(source[first + i], red, background) < 0.2


def _image(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), image)
    return path


@pytest.mark.integration
@pytest.mark.parametrize("photo,message", [("none", "no face found"), ("two", "2 faces found")])
def test_refused_photo_writes_nothing(archive: Archive, shared_data: Path, tmp_path: Path, photo: str,
                                      message: str) -> None:
    if photo == "none":
        bad = _image(tmp_path / "wall.jpg", np.tile(np.linspace(40, 200, 400, dtype=np.uint8), (300, 1))[..., None]
                     .repeat(3, axis=2))
    else:
        a, b = (cv2.imread(str(shared_data / name)) for name in ("obama.jpg", "biden.jpg"))
        b = cv2.resize(b, (round(b.shape[1] * a.shape[0] / b.shape[0]), a.shape[0]))
        bad = _image(tmp_path / "group.jpg", np.hstack([a, b]))
    run = run_sar(tmp_path, ["--subject", str(shared_data / "obama.jpg"), "--subject", str(bad), str(archive.folder)])
    assert run.result.exit_code == 7 and message in run.result.output
    assert not run.package.exists() and not list(tmp_path.glob(".package.*"))
    events = [json.loads(line)["event"] for line in run.audit.read_text().splitlines()]
    assert events == ["sar-request", "sar-enrolment-refused"]


def test_existing_package_is_never_replaced_without_overwrite(archive: Archive, shared_data: Path,
                                                              tmp_path: Path) -> None:
    (tmp_path / "package").mkdir()
    (tmp_path / "package" / "mine.txt").write_text("keep")
    run = run_sar(tmp_path, ["--subject", str(shared_data / "obama.jpg"), str(archive.folder)])
    assert run.result.exit_code == 4 and "already exists" in run.result.output
    assert [p.name for p in (tmp_path / "package").iterdir()] == ["mine.txt"]


@pytest.mark.parametrize("extra,code,message", [
    (["--art15-template", "{broken}"], 3, "template error on line 1"),
    (["--audit-log", "{package}/audit.jsonl"], 4, "cannot go inside the package folder"),
    (["--from", "2026-11-20", "--to", "2026-11-19"], 2, "later than --from"),
])
def test_refused_before_any_search(archive: Archive, shared_data: Path, tmp_path: Path, extra: list[str], code: int,
                                   message: str) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text("<p>{% if %}</p>")
    args = [a.format(broken=broken, package=tmp_path / "package") for a in extra]
    run = run_sar(tmp_path, ["--subject", str(shared_data / "obama.jpg"), *args, str(archive.folder)])
    assert run.result.exit_code == code and message in run.result.output, run.result.output
    assert not run.package.exists() and not run.audit.exists() and not run.vectors


@pytest.mark.integration
def test_failed_export_leaves_no_package_and_destroys_the_entry(
        archive: Archive, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from redactor_video.media.sink import VideoSink

    real = VideoSink.write
    written: list[int] = []

    def failing(self: VideoSink, *args: object) -> None:
        written.append(1)
        if len(written) > 10:
            raise OSError("disk full")
        real(self, *args)

    monkeypatch.setattr(VideoSink, "write", failing)
    run = run_sar(tmp_path, ["--subject", str(shared_data / "obama.jpg"), "--camera", "CAM1", "--to", "2026-11-15",
                             str(archive.folder)])
    assert run.result.exit_code == 6 and "disk full" in run.result.output
    assert not run.package.exists() and not list(tmp_path.glob(".package.*"))
    events = [json.loads(line)["event"] for line in run.audit.read_text().splitlines()]
    assert events[-1] == "sar-enrolment-destroyed" and "sar-package" not in events
