"""Session fixtures: one real-face clip with exact ground truth, and one loaded pipeline, shared by the suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.synth import GroundTruth, make_clip, tiny_test_clip
from redactor_video.pipeline import Pipeline, RedactSettings
from tests.helpers import data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    folder = data_dir()
    if not (folder / "obama.jpg").is_file():
        pytest.fail(f"{folder}: shared portraits missing; clone ../shared beside the repo or set REDACTOR_TEST_DATA")
    return folder


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    """320x240, 12 fps, 24 frames, three real faces moving over a panning photo, with a 440 Hz AAC track."""
    path = tmp_path_factory.mktemp("clips") / "tiny.mp4"
    return path, make_clip(tiny_test_clip(), path, audio=True)


@pytest.fixture(scope="session")
def pipeline() -> Iterator[Pipeline]:
    """The default pipeline (BlazeFace, tiled), loaded once; runs reuse it as the CLI does for many files."""
    with Pipeline(RedactSettings()) as p:
        yield p
