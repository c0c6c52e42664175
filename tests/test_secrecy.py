"""No embedding or score of a non-matching face reaches any output, log, report or error message.

The real embedder is wrapped to keep a private copy of every vector it returns
and of its distance to the watchlist template. After a redaction with a
watchlist over a clip where strangers walk beside the watchlist person, every
byte the run produced (video, report, audit log, the watchlist decrypted,
since it seals the log's head, captured logging, stdout/stderr) and the text
of an error raised mid-run are searched for those values, as text in several
precisions and as raw floats; every vector and every aligned face crop
described must have been zeroed.
"""

from __future__ import annotations

import json
import logging
import struct
import traceback
from pathlib import Path

import numpy as np
import pytest

from redactor_video.recognise import build_recogniser
from redactor_video.recognise.embedder import Embedder, Look
from redactor_video.recognise.matcher import DEFAULT_THRESHOLD

pytestmark = pytest.mark.integration


def needles(vector: np.ndarray, distance: float) -> list[bytes]:
    """Ways a vector or a score could be written: decimal text at several precisions and packed floats."""
    out = [struct.pack("<4d", *vector[:4]), struct.pack("<4f", *vector[:4]),
           np.asarray(vector[:4], ">f8").tobytes(), np.asarray(vector[:4], ">f4").tobytes()]
    for x in vector[:16]:
        out += [repr(float(x)).encode(), f"{abs(x):.6f}".encode(), f"{abs(x):.5f}".encode()]
    out += [repr(distance).encode(), f"{distance:.4f}".encode(), f"{distance:.5f}".encode(),
            struct.pack("<d", distance), struct.pack("<f", distance)]
    return out


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch):
    """Record (copy of vector, the object handed to the matcher, the look described) for every real embedding."""
    calls: list[tuple[np.ndarray, np.ndarray, Look]] = []
    real = Embedder.describe

    def recording(self: Embedder, look: Look) -> np.ndarray:
        vector = real(self, look)
        calls.append((vector.copy(), vector, look))
        return vector

    monkeypatch.setattr(Embedder, "describe", recording)
    return calls


def test_non_match_data_never_leaves_the_matcher(tmp_path: Path, spy, caplog: pytest.LogCaptureFixture,
                                                 capfd: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.recognition import enrolled_watchlist, watchlist_scene
    from benchmarks.synth import make_clip
    from redactor_video.files.jobs import redact_file
    from redactor_video.media.sink import VideoSink
    from redactor_video.pipeline import Pipeline, RedactSettings
    from redactor_video.recognise.keys import load_key
    from redactor_video.recognise.watchlist import read_entries, read_state

    caplog.set_level(logging.DEBUG)
    key_file, watchlist = enrolled_watchlist(tmp_path)
    template = np.asarray(read_entries(watchlist, load_key(key_file))[0]["templates"][0])
    entries_before = read_entries(watchlist, load_key(key_file))
    spy.clear()  # the enrolment template is the watchlist's own, not a non-match
    clip = tmp_path / "scene.mp4"
    make_clip(watchlist_scene(1), clip)
    audit = tmp_path / "audit.jsonl"
    out, report = tmp_path / "out.mp4", tmp_path / "out.report.json"

    recogniser = build_recogniser(watchlist, key_file, "gate-1", True, audit)
    with Pipeline(RedactSettings(), recogniser=recogniser) as pipeline:
        redact_file(clip, out, pipeline, RedactSettings().encode, report=report)
    assert recogniser.stats.rejected >= 3 and recogniser.stats.confirmed == 2

    # A second run that fails mid-way, after strangers were judged: its error text is searched too.
    real_write = VideoSink.write
    written = []

    def failing(self: VideoSink, *args: object) -> None:
        written.append(1)
        if len(written) > 30:
            raise RuntimeError("disk full")
        real_write(self, *args)

    monkeypatch.setattr(VideoSink, "write", failing)
    recogniser = build_recogniser(watchlist, key_file, "gate-1", True, audit)
    with Pipeline(RedactSettings(), recogniser=recogniser) as pipeline:
        with pytest.raises(Exception) as failure:
            redact_file(clip, tmp_path / "failed.mp4", pipeline, RedactSettings().encode,
                        report=tmp_path / "failed.report.json")
    error_text = "".join(traceback.format_exception(failure.value)) + repr(failure.value)

    samples = [(copy, original, float(np.linalg.norm(copy - template))) for copy, original, _ in spy]
    non_matches = [(copy, d) for copy, _, d in samples if d > DEFAULT_THRESHOLD]
    assert len(non_matches) >= 6, "the clip must contain judged strangers"
    assert all(not original.any() for _, original, _ in samples), "every vector is zeroed once its vote is counted"
    assert all(not look.chip.any() for _, _, look in spy), "every aligned face crop is zeroed once described"

    captured = capfd.readouterr()
    haystacks = {path.name: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    haystacks |= {"log records": caplog.text.encode(), "stdout": captured.out.encode(),
                  "stderr": captured.err.encode(), "error": error_text.encode()}
    # The sealed watchlist keeps its log's head (redactor_video.audit): its decrypted logs are searched too. Its
    # entries must be exactly as enrolled (asserted below); searched, their own template floats matched a
    # stranger's component written to 5 places ("0.00417") by chance.
    state = read_state(watchlist, load_key(key_file))
    haystacks["watchlist logs, decrypted"] = json.dumps(state.logs).encode()
    assert {"out.mp4", "out.report.json", "audit.jsonl"} <= set(haystacks)
    assert state.entries == entries_before
    for vector, distance in non_matches:
        for needle in needles(vector, distance):
            for name, hay in haystacks.items():
                assert needle not in hay, f"non-match data {needle!r} found in {name}"
