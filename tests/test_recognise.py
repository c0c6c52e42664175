"""Per-track matching: masked until the vote confirms, non-matches never embedded again, work bounded.

The unit tests script the embedder (each track's box maps to a vector) and
step the matcher frame by frame; the integration tests run the real models
and the whole pipeline on real faces.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from redactor.audit import AuditLog
from redactor.recognise import build_recogniser
from redactor.recognise.matcher import DEFAULT_THRESHOLD, MAX_THRESHOLD, MatchPolicy, WatchlistMatcher
from redactor.recognise.watchlist import validate
from redactor.types import Frame
from tests.helpers import data_dir
from tests.recognition_helpers import ScriptedEmbedder, make_key, raw_entry, tracked, unit

WATCHED = (100.0, 100.0, 200.0, 200.0)
STRANGER = (300.0, 100.0, 400.0, 200.0)
IMAGE = np.zeros((480, 640, 3), np.uint8)


def frame(index: int, source: str = "cam.mp4") -> Frame:
    """Frames 0.1 s apart, so the default 0.2 s sampling gap is two frames."""
    return Frame(index, IMAGE, pts=index, time_base=Fraction(1, 10), source=source)


def identity(box: tuple[float, ...]) -> np.ndarray:
    """Boxes left of x=250 are the watchlist person (distance 0.1), the rest are strangers (about 1.4)."""
    if box[0] < 250:
        return unit(1) + 0.1 * unit(99) / np.linalg.norm(unit(99))
    return unit(int(box[0]) + 1000)


@pytest.fixture
def make(tmp_path: Path):
    """Build a matcher with one entry (template unit(1)), a scripted embedder and a real audit log."""
    _, key = make_key(tmp_path)
    audits: list[AuditLog] = []

    def build(reveal: bool = True, entries: bool = True, **policy: float) -> tuple[WatchlistMatcher, ScriptedEmbedder]:
        embedder = ScriptedEmbedder(identity)
        audit = AuditLog(tmp_path / "audit.jsonl", key)
        audits.append(audit)
        chosen = (validate(raw_entry(expires=(date.today() + timedelta(days=30)).isoformat())),) if entries else ()
        return WatchlistMatcher(chosen, embedder, audit, reveal=reveal, camera="gate-1",
                                policy=MatchPolicy(**policy)), embedder

    yield build
    for audit in audits:
        audit.close()


def events(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("threshold,ok", [(0.3, True), (DEFAULT_THRESHOLD, True), (MAX_THRESHOLD, True),
                                          (0.6001, False), (0.8, False), (0.0, False)])
def test_threshold_cannot_be_loosened(threshold: float, ok: bool) -> None:
    if ok:
        assert MatchPolicy(threshold=threshold).threshold == threshold
    else:
        with pytest.raises(ValueError, match="may not be loosened"):
            MatchPolicy(threshold=threshold)


def test_masked_until_the_vote_confirms(make, tmp_path: Path) -> None:
    matcher, embedder = make()
    seen = []
    for i in range(6):
        matcher.observe(frame(i), tracked([WATCHED], [1]))
        seen.append(matcher.revealed())
    assert seen[:2] == [frozenset(), frozenset()]  # one agreeing sample is not enough
    assert seen[2] == frozenset({1}) and seen[-1] == frozenset({1})
    assert len(embedder.calls) == 2
    match = [e for e in events(tmp_path) if e["event"] == "match"]
    assert len(match) == 1
    assert match[0]["entry_id"] == "wl-test0001" and match[0]["reference"] == "CR-2030-17"
    assert match[0]["basis"] == "consent" and match[0]["camera"] == "gate-1" and match[0]["track"] == 1
    assert 0.05 < match[0]["score"] < 0.15 and match[0]["action"] == "reveal"


def test_non_match_is_never_embedded_again_and_forgotten(make, tmp_path: Path) -> None:
    matcher, embedder = make()
    for i in range(40):
        matcher.observe(frame(i), tracked([STRANGER], [7]))
        assert matcher.revealed() == frozenset()
    assert len(embedder.calls) == 2  # two disagreeing samples decide; never again
    assert all(not v.any() for v in embedder.returned)  # every vector zeroed in place after its vote
    assert 7 not in matcher._tracks and 7 in matcher._rejected
    assert matcher.stats.rejected == 1
    assert [e["event"] for e in events(tmp_path)] == []  # nothing about a non-match is written


def test_alert_only_never_reveals_but_logs_alerts(make, tmp_path: Path) -> None:
    matcher, embedder = make(reveal=False)
    for i in range(30):
        matcher.observe(frame(i), tracked([WATCHED, STRANGER], [1, 2]))
        assert matcher.revealed() == frozenset()
    alerts = [e for e in events(tmp_path) if e["event"] == "alert"]
    assert len(alerts) == 1 and alerts[0]["action"] == "alert-only" and alerts[0]["track"] == 1
    assert len(embedder.calls) == 4  # no periodic re-checks when nothing is revealed


def test_without_entries_nothing_is_embedded(make) -> None:
    matcher, embedder = make(entries=False)
    assert not matcher.active
    for i in range(10):
        matcher.observe(frame(i), tracked([WATCHED, STRANGER], [1, 2]))
    assert embedder.calls == [] and matcher.revealed() == frozenset()


def test_work_is_bounded_per_frame_and_per_stranger(make) -> None:
    matcher, embedder = make()
    boxes = [(260.0 + 75 * k, 300.0, 320.0 + 75 * k, 360.0) for k in range(5)]
    per_frame = []
    for i in range(60):
        before = len(embedder.calls)
        matcher.observe(frame(i), tracked(boxes, [10, 11, 12, 13, 14]))
        per_frame.append(len(embedder.calls) - before)
    assert max(per_frame) == 1
    assert len(embedder.calls) == 10  # five strangers, two samples each, then never again
    assert matcher.stats.rejected == 5


@pytest.mark.parametrize("box,predicted", [
    ((100.0, 100.0, 135.0, 135.0), False),  # 35 px: too small to judge
    ((0.0, 100.0, 100.0, 200.0), False),  # cut by the frame edge
    ((100.0, 100.0, 200.0, 200.0), True),  # coasting: no face detected there in this frame
])
def test_unusable_faces_are_not_embedded(make, box: tuple[float, ...], predicted: bool) -> None:
    matcher, embedder = make()
    for i in range(10):
        matcher.observe(frame(i), tracked([box], [1], [predicted]))
    assert embedder.calls == [] and matcher.revealed() == frozenset()


def test_overlap_masks_until_a_new_vote(make, tmp_path: Path) -> None:
    matcher, embedder = make()
    for i in range(4):
        matcher.observe(frame(i), tracked([WATCHED, STRANGER], [1, 2]))
    assert matcher.revealed() == frozenset({1})
    crossing = (150.0, 110.0, 250.0, 210.0)
    matcher.observe(frame(4), tracked([WATCHED, crossing], [1, 2]))
    assert matcher.revealed() == frozenset()  # the tracker could swap the two here
    calls = len(embedder.calls)
    matcher.observe(frame(5), tracked([WATCHED, crossing], [1, 2]))
    assert len(embedder.calls) == calls  # overlapped faces are not sampled
    for i in range(6, 10):
        matcher.observe(frame(i), tracked([WATCHED, STRANGER], [1, 2]))
    assert matcher.revealed() == frozenset({1})
    assert [e["recheck"] for e in events(tmp_path) if e["event"] == "match"] == [False, True]


def test_a_swapped_track_is_withdrawn(make, tmp_path: Path) -> None:
    """Track 1 is confirmed, then (after a jump) carries a stranger's face: masked at once, then rejected."""
    matcher, _ = make()
    for i in range(4):
        matcher.observe(frame(i), tracked([WATCHED], [1]))
    assert matcher.revealed() == frozenset({1})
    for i in range(4, 12):
        matcher.observe(frame(i), tracked([STRANGER], [1]))
        assert matcher.revealed() == frozenset()
    assert 1 in matcher._rejected
    assert [e["event"] for e in events(tmp_path)] == ["match", "match-withdrawn"]
    assert "score" not in events(tmp_path)[-1]


def test_periodic_recheck_keeps_a_steady_match_clear(make, tmp_path: Path) -> None:
    matcher, embedder = make()
    for i in range(40):  # 4 s
        matcher.observe(frame(i), tracked([WATCHED], [1]))
        if i >= 2:
            assert matcher.revealed() == frozenset({1})
    assert 6 <= len(embedder.calls) <= 10  # two to confirm, two per second after
    assert matcher.stats.confirmed == 1


def test_a_new_input_starts_with_nobody_confirmed(make) -> None:
    matcher, _ = make()
    for i in range(4):
        matcher.observe(frame(i), tracked([WATCHED], [1]))
    assert matcher.revealed() == frozenset({1})
    matcher.observe(frame(0, source="next.mp4"), tracked([WATCHED], [1]))
    assert matcher.revealed() == frozenset()


def test_entry_expiring_mid_run_masks_its_matches(make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    matcher, _ = make()
    for i in range(4):
        matcher.observe(frame(i), tracked([WATCHED], [1]))
    assert matcher.revealed() == frozenset({1})
    monkeypatch.setattr("redactor.recognise.matcher.today_utc", lambda: date.today() + timedelta(days=60))
    matcher.observe(frame(4), tracked([WATCHED], [1]))
    assert matcher.revealed() == frozenset() and not matcher.active
    assert events(tmp_path)[-1]["event"] == "entry-expired"


def test_a_failing_embedding_leaves_the_track_masked(make) -> None:
    matcher, embedder = make()

    def broken(box: tuple[float, ...]) -> np.ndarray:
        raise RuntimeError("dlib exploded")

    embedder.identity = broken
    for i in range(20):
        matcher.observe(frame(i), tracked([WATCHED], [1]))
    assert matcher.revealed() == frozenset()
    assert matcher.stats.embeddings == 5  # gave up after the per-vote limit
    assert 1 in matcher._rejected


# ---------------------------------------------------------------- real models, real faces


@pytest.mark.integration
def test_real_photo_distances() -> None:
    from redactor.detect import create_detector
    from redactor.recognise.embedder import Embedder
    from redactor.recognise.watchlist import enrol_photo

    embedder = Embedder()
    with create_detector("centerface", threshold=0.5) as detector:
        vectors = {n: enrol_photo(data_dir() / f"{n}.jpg", detector, embedder)
                   for n in ("obama", "obama2", "obama3", "obama_partial_face", "biden")}
    distance = {n: float(np.linalg.norm(v - vectors["obama"])) for n, v in vectors.items()}
    for same in ("obama2", "obama3", "obama_partial_face"):
        assert distance[same] < DEFAULT_THRESHOLD - 0.05, distance
    assert distance["biden"] > MAX_THRESHOLD + 0.15, distance


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory):
    from benchmarks.recognition import enrolled_watchlist, watchlist_scene
    from benchmarks.synth import make_clip

    folder = tmp_path_factory.mktemp("scene")
    key_file, watchlist = enrolled_watchlist(folder)
    clip = folder / "scene.mp4"
    return folder, key_file, watchlist, clip, make_clip(watchlist_scene(0), clip)


@pytest.mark.integration
def test_done_when_watchlist_person_clear_strangers_masked(scene) -> None:
    """obama.jpg enrolled (consent); obama2/obama3 walk among strangers: >= 90% clear, strangers never."""
    from benchmarks.recognition import WATCHLIST_PHOTOS, clear_by_track
    from redactor.jobs import redact_file
    from redactor.pipeline import Pipeline, RedactSettings

    folder, key_file, watchlist, clip, gt = scene
    out = folder / "revealed.mp4"
    recogniser = build_recogniser(watchlist, key_file, None, True, folder / "reveal.audit.jsonl")
    with Pipeline(RedactSettings(), recogniser=recogniser) as pipeline:
        redact_file(clip, out, pipeline, RedactSettings().encode)
    tracks = clear_by_track(clip, out, gt)
    for t in tracks.values():
        if t.photo in WATCHLIST_PHOTOS:
            assert t.frames >= 30 and t.clear >= 0.9 * t.frames, tracks
        else:
            assert t.frames >= 20 and t.clear == 0, tracks
    assert recogniser.stats.confirmed == 2


@pytest.mark.integration
def test_alert_only_blurs_everyone_and_alerts(scene) -> None:
    from benchmarks.recognition import clear_by_track
    from redactor.jobs import redact_file
    from redactor.pipeline import Pipeline, RedactSettings

    folder, key_file, watchlist, clip, gt = scene
    out, audit = folder / "alert.mp4", folder / "alert.audit.jsonl"
    recogniser = build_recogniser(watchlist, key_file, "gate-1", False, audit)
    with Pipeline(RedactSettings(), recogniser=recogniser) as pipeline:
        redact_file(clip, out, pipeline, RedactSettings().encode)
    assert all(t.clear == 0 for t in clear_by_track(clip, out, gt).values())
    alerts = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [e["event"] for e in alerts].count("alert") == 2
    assert all(e["camera"] == "gate-1" for e in alerts)


@pytest.mark.integration
def test_without_a_watchlist_nobody_is_embedded(scene, monkeypatch: pytest.MonkeyPatch) -> None:
    from redactor.jobs import redact_file
    from redactor.pipeline import Pipeline, RedactSettings
    from redactor.recognise.embedder import Embedder

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("no face may be embedded without a watchlist")

    monkeypatch.setattr(Embedder, "__init__", forbidden)
    monkeypatch.setattr(Embedder, "embed", forbidden)
    folder, _, _, clip, _ = scene
    with Pipeline(RedactSettings()) as pipeline:
        stats = redact_file(clip, folder / "plain.mp4", pipeline, RedactSettings().encode)
    assert stats.frames == 48 and "recognise" not in stats.seconds
