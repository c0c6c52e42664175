"""File jobs: which outputs to make from which inputs, and redacting one file safely."""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

import numpy as np

from redactor_video import __version__
from redactor_video.detect.base import Detector
from redactor_video.errors import InputError, OutputError, VerificationFailed
from redactor_video.media.atomic import atomic_path, check_writable
from redactor_video.media.formats import is_image_path, is_media_path
from redactor_video.media.sink import EncodeSettings, ImageSink, VideoSink
from redactor_video.media.source import FileSource
from redactor_video.pipeline import FrameRecord, Pipeline, RunStats
from redactor_video.files.verify import verify

def plan_outputs(inputs: list[Path], output: Path) -> list[tuple[Path, Path]]:
    """Pair every input file with its output path; folders are walked and mirrored under `output`."""
    for p in inputs:
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
    many = len(inputs) > 1 or any(p.is_dir() for p in inputs)
    if not many:
        return [(inputs[0], output)]
    if output.exists() and not output.is_dir():
        raise OutputError(f"{output}: several inputs need an output folder, not a file")
    pairs = []
    for p in inputs:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and is_media_path(f):
                    pairs.append((f, output / p.name / f.relative_to(p)))
        else:
            pairs.append((p, output / p.name))
    if not pairs:
        raise InputError("no video or image files found in the inputs")
    targets = [t for _, t in pairs]
    if len(set(targets)) != len(targets):
        raise OutputError("two inputs would be written to the same output name")
    return pairs


def _resolved(path: Path) -> Path:
    """Where `path` leads once links and `..` are followed; a symlink loop stays where it stands."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: RuntimeError before Python 3.13, OSError since
        return Path(os.path.abspath(path))


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths reach one file: the same place once resolved (links, `..`, relative paths), or two
    hard links of one file. A link to a file counts as that file: writing "to it" must not lose it."""
    if _resolved(a) == _resolved(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet), so they are not one file
        return False


def check_pair(src: Path, dst: Path, overwrite: bool, role: str = "output") -> None:
    """Refuse anything that could overwrite or lose the user's input; `role` names `dst` in messages."""
    if _same_file(src, dst):
        raise OutputError(f"{dst}: {role} would overwrite the input")
    if not dst.suffix:
        raise OutputError(f"{dst}: output needs a file extension (.mp4, .mkv, .png, ...) to choose its format")
    check_writable(dst, overwrite)


def _make_folder(folder: Path) -> None:
    """Create an output folder (batch jobs mirror the input tree) or say in one line why it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the output folder ({exc.strerror})") from None


class ReportWriter:
    """Streams the JSON sidecar frame by frame, so memory stays flat however long the input.

    A write that fails (a full disk, a file size limit) is an output problem (exit 4) naming `name`, the
    user's report path, rather than `path`, the hidden temporary file written until the run succeeds.
    """

    def __init__(self, path: Path, header: dict, name: Path) -> None:
        self._name = name
        try:
            self._fh = open(path, "w", encoding="utf-8")
        except OSError as exc:
            raise self._failed(exc) from None
        self._sep = ""
        self._write(json.dumps(header)[:-1] + ', "frames": [\n')

    def _failed(self, exc: OSError) -> OutputError:
        return OutputError(f"{self._name}: cannot write the report ({exc.strerror or exc})")

    def _write(self, text: str) -> None:
        try:
            self._fh.write(text)
        except OSError as exc:
            self.close()
            raise self._failed(exc) from None

    def frame(self, record: FrameRecord) -> None:
        self._write(self._sep + json.dumps(record.__dict__))
        self._sep = ",\n"

    def finish(self, summary: dict) -> None:
        self._write('\n], "summary": ' + json.dumps(summary) + "}\n")
        try:
            self._fh.close()  # flushes the buffer: the last chance for a full disk to show
        except OSError as exc:
            raise self._failed(exc) from None

    def close(self) -> None:
        """Discard: the report is abandoned, so a buffer that cannot be flushed (the disk is full) is no error."""
        try:
            self._fh.close()
        except OSError:
            pass


VERIFY_ROUNDS = 3
VERIFY_SPREAD = 2


def _verify_and_fix(src: Path, tmp: Path, verifier: Detector, stats: RunStats, writer: ReportWriter | None,
                    one_pass: Callable) -> tuple[RunStats, ReportWriter | None]:
    """Check the finished output with the second detector; re-mask what it finds, a few rounds at most.

    Each round adds the clear faces found so far (and the frames either side of
    each) to the boxes masked; if faces are still found after the last round the
    run fails, so nothing unverified is kept.
    """
    extra: dict[int, list] = {}
    found_total, frames_fixed = 0, set()
    for _ in range(VERIFY_ROUNDS):
        check = verify(src, tmp, verifier)
        if not check.residuals:
            break
        found_total += len(check.residuals)
        frames_fixed.update(check.residual_frames)
        for frame, boxes in check.boxes_by_frame(VERIFY_SPREAD).items():
            extra.setdefault(frame, []).extend(boxes)
        if writer is not None:
            writer.close()
        stats, writer = one_pass({k: np.array(v, np.float32) for k, v in extra.items()})
    else:
        check = verify(src, tmp, verifier)
        if check.residuals:
            raise VerificationFailed(f"{src}: verification still finds {len(check.residuals)} clear face(s) in "
                                     f"{len(check.residual_frames)} frame(s) after re-masking; nothing was written")
    stats.verification = {"residual_faces_found": found_total, "frames_fixed": len(frames_fixed)}
    return stats, writer


def redact_file(src: Path, dst: Path, pipeline: Pipeline, encode: EncodeSettings, overwrite: bool = False,
                report: Path | None = None, on_progress: Callable[[int], None] | None = None,
                on_start: Callable[[int | None], None] | None = None,
                verifier: Detector | None = None) -> RunStats:
    """Redact one file into `dst` atomically; nothing is left at `dst` (or `report`) unless it all succeeded.

    With a `verifier`, the finished temporary output is checked by that second
    detector; faces it still finds clear are masked in a second pass, and if any
    remain after that, the run fails and nothing is written.
    """
    check_pair(src, dst, overwrite)
    if report is not None:
        if _same_file(dst, report):  # both would be renamed into place, the later one over the other
            raise OutputError(f"{report}: the report would overwrite the output; give it a name of its own")
        check_pair(src, report, overwrite, "report")
    with FileSource(src) as probe:
        info = probe.info
    if is_image_path(dst) and not info.is_image:
        raise OutputError(f"{dst}: the input is a video; choose a video extension for the output")
    for target in (dst, report):
        if target is not None:
            _make_folder(target.parent)
    fps = float(info.rate) if info.rate else 25.0
    header = {"redactor": __version__, "input": str(src), "output": str(dst), "settings": pipeline.settings.to_dict(),
              "tracking_policy": pipeline.policy.describe()}
    with ExitStack() as outputs:
        report_tmp = outputs.enter_context(atomic_path(report)) if report is not None else None
        tmp = outputs.enter_context(atomic_path(dst))

        def one_pass(extra: dict[int, np.ndarray] | None) -> tuple[RunStats, ReportWriter | None]:
            if on_start is not None:
                on_start(info.frames)
            writer = ReportWriter(report_tmp, header, report) if report_tmp is not None else None
            if writer is not None:
                outputs.callback(writer.close)

            def on_frame(record: FrameRecord) -> None:
                if writer is not None:
                    writer.frame(record)
                if on_progress is not None:
                    on_progress(1)

            with FileSource(src) as source:
                sink = (ImageSink(tmp, dst) if is_image_path(dst)
                        else VideoSink(tmp, info, encode, None if info.is_image else src, dst))
                return pipeline.run(source, sink, fps, on_frame, extra), writer

        stats, writer = one_pass(None)
        if verifier is not None:
            stats, writer = _verify_and_fix(src, tmp, verifier, stats, writer, one_pass)
        if writer is not None:
            writer.finish(stats.to_dict())
        return stats
