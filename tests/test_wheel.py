"""The distribution as a user installs it: a wheel built from this tree, named redactor-video.

The name `redactor` on PyPI is an unrelated text-redaction library whose wheel holds a top-level
`redactor` package, so ours is `redactor-video` with the import package `redactor_video`; the
command stays `redactor` (that library installs none).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers import REPO

SAMPLE = REPO / "samples" / "people.mp4"


def run(*args: object, cwd: Path | None = None) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=900, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.integration
def test_the_wheel_installs_under_its_own_name_in_a_fresh_venv_and_redacts_the_sample(tmp_path: Path) -> None:
    """The wheel's own files (modules, calibration data, the disclosure templates, the entry point) are what
    is tested: the fresh venv gets the wheel alone, and reaches the third-party libraries through a path
    file pointing at this environment's, rather than downloading them again."""
    source = tmp_path / "source"  # a copy: building writes build/ and egg-info beside the sources
    shutil.copytree(REPO / "redactor_video", source / "redactor_video", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    run(sys.executable, "-m", "pip", "wheel", source, "--no-deps", "-q", "-w", tmp_path / "wheels")
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    assert wheel.name.startswith("redactor_video-")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel)
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"))
    (site / "libraries.pth").write_text(sysconfig.get_path("purelib") + "\n")
    work = tmp_path / "work"
    work.mkdir()
    where = run(python, "-c", "import redactor_video; print(redactor_video.__file__)", cwd=work)
    assert Path(where).is_relative_to(site), where
    assert run(python, "-c", "import importlib.metadata as m; print(m.version('redactor-video'))", cwd=work)
    run(venv / "bin" / "redactor", "redact", SAMPLE, "-o", work / "people.mp4", "--report", work / "people.json",
        "-q", cwd=work)
    summary = json.loads((work / "people.json").read_text())["summary"]
    assert summary["frames"] == 132 and summary["tracks"] >= 5, summary
