"""Per-track matching: masked until the vote confirms, shown only where matching samples reach, work bounded.

The unit tests script the embedder (each track's box maps to a vector and a
colour signature) and step the matcher frame by frame, asking about each
frame afterwards as the pipeline does when it writes a held frame; the
integration tests run the real models and the whole pipeline on real faces.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from redactor_video.audit import AuditLog
from redactor_video.recognise import build_recogniser
from redactor_video.recognise.matcher import DEFAULT_THRESHOLD, MAX_THRESHOLD, MatchPolicy, WatchlistMatcher
from redactor_video.recognise.watchlist import validate
from redactor_video.types import Frame
from tests.helpers import data_dir
from tests.recognition_helpers import ScriptedEmbedder, make_key, raw_entry, tracked, unit

WATCHED = (100.0, 100.0, 200.0, 200.0)
STRANGER = (300.0, 100.0, 400.0, 200.0)
IMAGE = np.zeros((480, 640, 3), np.uint8)


def frame(index: int, source: str = "cam.mp4") -> Frame:
    """Frames 1/8 s apart (exact in binary): the default half-second sampling window is four frames."""
    return Frame(index, IMAGE, pts=index, time_base=Fraction(1, 8), source=source)


def watched() -> np.ndarray:
    """The watchlist person's descriptor: 0.1 from the enrolled template unit(1)."""
    return unit(1) + 0.1 * unit(99) / np.linalg.norm(unit(99))


def identity(box: tuple[float, ...]) -> np.ndarray:
    """Boxes left of x=250 are the watchlist person (distance 0.1), the rest are strangers (about 1.4)."""
    if box[0] < 250:
        return watched()
    return unit(int(box[0]) + 1000)


@pytest.fixture
def make(tmp_path: Path):
    """Build a matcher with one entry (template unit(1)), a scripted embedder and a real audit log."""
    _, key = make_key(tmp_path)
    audits: list[AuditLog] = []

    def build(reveal: bool = True, entries: bool = True, who=identity, **policy: float) \
            -> tuple[WatchlistMatcher, ScriptedEmbedder]:
        embedder = ScriptedEmbedder(who)
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


def shown(matcher: WatchlistMatcher, track: int, frames: int) -> list[int]:
    """The frames in which `track` is shown clear, asked in order after every frame was observed (a look-ahead
    at least as long as the run)."""
    return [i for i in range(frames) if matcher.reveals(track, i)]


@pytest.mark.parametrize("threshold,ok", [(0.3, True), (DEFAULT_THRESHOLD, True), (MAX_THRESHOLD, True),
                                          (0.6001, False), (0.8, False), (0.0, False)])
def test_threshold_cannot_be_loosened(threshold: float, ok: bool) -> None:
    if ok:
        assert MatchPolicy(threshold=threshold).threshold == threshold
    else:
        with pytest.raises(ValueError, match="may not be loosened"):
            MatchPolicy(threshold=threshold)


def test_masked_until_the_vote_confirms(make, tmp_path: Path) -> None:
    """Samples every four frames (frames 0, 5, 10, 15: the first look of each window at equal quality); the
    second confirms at frame 9; shown from the first look to half a second after the last matching sample."""
    matcher, embedder = make()
    live = []
    for i in range(24):
        matcher.observe(frame(i), tracked([WATCHED], [1]))
        live.append(matcher.reveals(1, i))
    assert live[:9] == [False] * 9  # one agreeing sample is not enough
    assert embedder.calls == [WATCHED] * 4
    assert shown(matcher, 1, 24) == list(range(20))  # frame 15 (1.875 s) + 0.5 s = frame 19
    match = [e for e in events(tmp_path) if e["event"] == "match"]
    assert len(match) == 1 and match[0]["frame"] == 9
    assert match[0]["entry_id"] == "wl-test0001" and match[0]["reference"] == "CR-2030-17"
    assert match[0]["basis"] == "consent" and match[0]["camera"] == "gate-1" and match[0]["track"] == 1
    assert 0.05 < match[0]["score"] < 0.15 and match[0]["action"] == "reveal"


def test_the_best_look_of_each_window_is_sampled(make) -> None:
    """Of four looks a window, the sharpest, most frontal one is described, not the first."""
    matcher, embedder = make()
    embedder.quality = lambda box: {101.0: 1.0, 103.0: 5.0}.get(box[0], 2.0)
    for i in range(12):
        x = 100.0 + i % 4
        matcher.observe(frame(i), tracked([(x, 100.0, x + 100, 200.0)], [1]))
    assert [c[0] for c in embedder.calls] == [103.0, 103.0]


def test_non_match_is_never_embedded_again_and_forgotten(make, tmp_path: Path) -> None:
    matcher, embedder = make()
    for i in range(40):
        matcher.observe(frame(i), tracked([STRANGER], [7]))
    assert shown(matcher, 7, 40) == []
    assert len(embedder.calls) == 2  # two disagreeing samples decide; never again
    assert len(embedder.looks) == 10  # two windows of five looks (frames 0-4 and 5-9), then none
    assert all(not v.any() for v in embedder.returned)  # every vector zeroed in place after its vote
    assert all(not look.chip.any() and not look.signature.any() for look in embedder.looks)
    assert 7 not in matcher._tracks and 7 in matcher._rejected
    assert matcher.stats.rejected == 1
    assert [e["event"] for e in events(tmp_path)] == []  # nothing about a non-match is written


def test_alert_only_never_reveals_but_logs_alerts(make, tmp_path: Path) -> None:
    matcher, embedder = make(reveal=False)
    for i in range(30):
        matcher.observe(frame(i), tracked([WATCHED, STRANGER], [1, 2]))
    assert shown(matcher, 1, 30) == [] and shown(matcher, 2, 30) == []
    alerts = [e for e in events(tmp_path) if e["event"] == "alert"]
    assert len(alerts) == 1 and alerts[0]["action"] == "alert-only" and alerts[0]["track"] == 1
    assert len(embedder.calls) == 4  # no periodic re-checks when nothing is revealed


def test_without_entries_nothing_is_looked_at(make) -> None:
    matcher, embedder = make(entries=False)
    assert not matcher.active
    for i in range(10):
        matcher.observe(frame(i), tracked([WATCHED, STRANGER], [1, 2]))
    assert embedder.looks == [] and embedder.calls == [] and shown(matcher, 1, 10) == []


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
def test_unusable_faces_are_not_looked_at(make, box: tuple[float, ...], predicted: bool) -> None:
    matcher, embedder = make()
    for i in range(10):
        matcher.observe(frame(i), tracked([box], [1], [predicted]))
    assert embedder.looks == [] and embedder.calls == [] and shown(matcher, 1, 10) == []


def test_overlap_ends_the_evidence_until_a_new_vote(make, tmp_path: Path) -> None:
    """Confirmed at frame 9; a face crosses it in frames 12-13 (the tracker could swap the two there): the first
    segment is shown up to half a second after its last matching sample (frame 5), the crossing frames are
    masked, and a new vote must earn the frames after (samples from frames 14, 19, 24: shown 14-28)."""
    matcher, embedder = make()
    crossing = (150.0, 110.0, 250.0, 210.0)
    for i in range(30):
        other = crossing if i in (12, 13) else STRANGER
        matcher.observe(frame(i), tracked([WATCHED, other], [1, 2]))
    looked = [c for c in embedder.calls if c == WATCHED]
    assert len(looked) == 5  # frames 0 and 5 confirm; after the crossing, 14 and 19 confirm again, 24 re-checks
    assert shown(matcher, 1, 30) == list(range(10)) + list(range(14, 29))
    assert [e["recheck"] for e in events(tmp_path) if e["event"] == "match"] == [False, True]


def test_a_stranger_who_looks_alike_is_shown_at_most_the_margin(make, tmp_path: Path) -> None:
    """The worst case the rule allows: a stranger with the watched person's colours takes the track over in place
    at frame 12 (nothing splits the segment). The last matching sample is frame 10, so the stranger is shown
    in frames 12-14 (0.5 s after it) and in no frame after; his two misses then withdraw the match, and every
    frame of the segment still held is masked."""
    matcher, embedder = make()
    embedder.appearance = lambda box: watched()
    written = []
    for i in range(26):
        embedder.identity = identity if i < 12 else (lambda box: unit(5))
        matcher.observe(frame(i), tracked([WATCHED], [1]))
        if i >= 8:  # a one-second look-ahead: frame i - 8 is written now
            written += [i - 8] if matcher.reveals(1, i - 8) else []
    assert written == list(range(1, 15))  # frame 0 was written before the vote confirmed, at frame 9
    assert matcher.stats.withdrawn == 1
    assert [e["event"] for e in events(tmp_path)] == ["match", "match-withdrawn"]
    assert shown(matcher, 1, 26) == []


def test_a_hand_off_in_place_splits_the_track(make, tmp_path: Path) -> None:
    """Four frames of a stranger, then the watched person in the same box (one track): the colours change, the
    stranger's frames are a segment of their own and stay masked; the watched person's segment is shown."""
    matcher, embedder = make()
    for i in range(24):
        embedder.identity = (lambda box: unit(5)) if i < 4 else identity
        embedder.appearance = embedder.identity
        matcher.observe(frame(i), tracked([WATCHED], [1]))
    assert matcher.stats.splits == 1
    assert shown(matcher, 1, 24) == list(range(4, 24))
    assert [e["event"] for e in events(tmp_path)] == ["match"]


def test_a_stranger_after_the_watched_person_stays_masked(make, tmp_path: Path) -> None:
    """The watched person, then a stranger in the same box from frame 16: the stranger's segment is voted on,
    withdrawn and masked; the watched person keeps the frames the first segment earned."""
    matcher, embedder = make()
    for i in range(32):
        embedder.identity = identity if i < 16 else (lambda box: unit(5))
        embedder.appearance = embedder.identity
        matcher.observe(frame(i), tracked([WATCHED], [1]))
    assert shown(matcher, 1, 32) == list(range(15))  # the last matching sample, frame 10, + 0.5 s
    assert [e["event"] for e in events(tmp_path)] == ["match", "match-withdrawn"]


def test_a_swapped_track_is_withdrawn(make, tmp_path: Path) -> None:
    """Track 1 is confirmed, then (after a jump) carries a stranger's face: a new vote rejects it; the first
    segment keeps what its two matching samples (frames 0 and 5) earned, up to frame 9."""
    matcher, _ = make()
    for i in range(24):
        matcher.observe(frame(i), tracked([WATCHED if i < 12 else STRANGER], [1]))
    assert 1 in matcher._rejected
    assert shown(matcher, 1, 24) == list(range(10))
    assert [e["event"] for e in events(tmp_path)] == ["match", "match-withdrawn"]
    assert "score" not in events(tmp_path)[-1]


def test_periodic_recheck_keeps_a_steady_match_clear(make) -> None:
    matcher, embedder = make()
    for i in range(32):  # 4 s
        matcher.observe(frame(i), tracked([WATCHED], [1]))
    assert len(embedder.calls) == 6  # one sample per half second: two confirm, then one per window
    assert shown(matcher, 1, 32) == list(range(30))  # last sample frame 25 (3.125 s) + 0.5 s = frame 29
    assert matcher.stats.confirmed == 1


def test_a_departed_track_keeps_its_evidence_for_frames_still_held(make) -> None:
    matcher, _ = make()
    for i in range(12):
        matcher.observe(frame(i), tracked([WATCHED], [1]))
    for i in range(12, 20):
        matcher.observe(frame(i), tracked([], []))
    assert matcher.reveals(1, 5) and matcher.reveals(1, 9) and not matcher.reveals(1, 12)
    matcher.observe(frame(20), tracked([], []))
    assert not matcher.reveals(1, 9), "evidence ending before the latest frame asked about is dropped"


def test_a_new_input_starts_with_nobody_confirmed(make) -> None:
    matcher, _ = make()
    for i in range(12):
        matcher.observe(frame(i), tracked([WATCHED], [1]))
    assert matcher.reveals(1, 5)
    matcher.observe(frame(0, source="next.mp4"), tracked([WATCHED], [1]))
    assert shown(matcher, 1, 12) == []


def test_entry_expiring_mid_run_masks_its_matches(make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    matcher, _ = make()
    for i in range(12):
        matcher.observe(frame(i), tracked([WATCHED], [1]))
    assert matcher.reveals(1, 0)
    monkeypatch.setattr("redactor_video.recognise.matcher.today_utc", lambda: date.today() + timedelta(days=60))
    matcher.observe(frame(12), tracked([WATCHED], [1]))
    assert shown(matcher, 1, 13) == [] and not matcher.active
    assert events(tmp_path)[-1]["event"] == "entry-expired"


def test_a_failing_embedding_leaves_the_track_masked(make) -> None:
    matcher, embedder = make()

    def broken(box: tuple[float, ...]) -> np.ndarray:
        raise RuntimeError("dlib exploded")

    embedder.identity = broken
    for i in range(40):
        matcher.observe(frame(i), tracked([WATCHED], [1]))
    assert shown(matcher, 1, 40) == []
    assert matcher.stats.embeddings == 5  # gave up after the per-vote limit
    assert 1 in matcher._rejected


# ---------------------------------------------------------------- real models, real faces


@pytest.mark.integration
def test_real_photo_distances() -> None:
    from redactor_video.detect import create_detector
    from redactor_video.recognise.embedder import Embedder
    from redactor_video.recognise.watchlist import enrol_photo

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
    from redactor_video.files.jobs import redact_file
    from redactor_video.pipeline import Pipeline, RedactSettings

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
    from redactor_video.files.jobs import redact_file
    from redactor_video.pipeline import Pipeline, RedactSettings

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
    from redactor_video.files.jobs import redact_file
    from redactor_video.pipeline import Pipeline, RedactSettings
    from redactor_video.recognise.embedder import Embedder

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("no face may be embedded without a watchlist")

    monkeypatch.setattr(Embedder, "__init__", forbidden)
    monkeypatch.setattr(Embedder, "embed", forbidden)
    folder, _, _, clip, _ = scene
    with Pipeline(RedactSettings()) as pipeline:
        stats = redact_file(clip, folder / "plain.mp4", pipeline, RedactSettings().encode)
    assert stats.frames == 48 and "recognise" not in stats.seconds
