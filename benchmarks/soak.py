"""Soak the inline filter: fake camera -> `redactor stream` -> fake VMS for minutes; memory, latency, recall.

The camera (GStreamer RTSP server) loops a synthetic 1280x720 25 fps crowd clip
whose frames carry their number in a bottom strip (benchmarks/framecode.py), the
VMS (FFmpeg RTSP listener) records what the filter publishes. Every interval the
filter's RSS and its /metrics are sampled; latency percentiles per interval come
from the Prometheus histogram (interpolated inside buckets, as histogram_quantile
does), and the overall p50/p95 from the filter's own window of exact values
(/healthz). At the end every received frame is matched to its source frame by
the stamp and every ground-truth face in it is scored like the file benchmarks.

Run: python -m benchmarks.soak --minutes 10 [--latency-ms 500] [--json soak.json]
Needs the Debian packages .ci/run installs (ffmpeg, GStreamer RTSP server).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import av
import click
import cv2
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from benchmarks import framecode
from benchmarks.score import WIDTH_BINS, compare_face
from benchmarks.synth import crowd_720p, render_frames
from tests.live_servers import FakeCamera, FakeVMS, free_port, make_camera_clip

ROOT = Path(__file__).resolve().parent.parent
BAND = 48  # rows above the scene; the stamp uses the first framecode.STRIP of them


def build_clip(folder: Path, seconds: float, seed: int) -> tuple[Path, list[list]]:
    """The camera's clip and, per frame, its ground-truth boxes (in clip coordinates). The scene is rendered
    BAND rows short under a band whose top rows hold the stamp: only the small, far faces walk near the top,
    so no mask reaches it. The clip plays forwards then backwards, so the camera's loop never makes a face
    jump (a cut no camera has)."""
    spec = crowd_720p(seed)
    half = int(round(seconds * spec.fps / 2))
    spec = dataclasses.replace(spec, n_frames=half, height=spec.height - BAND)
    rendered = list(render_frames(spec))
    order = list(range(half)) + list(range(half - 2, 0, -1))
    frames, boxes = [], []
    shift = np.array([0, BAND, 0, BAND], np.float32)
    for i, k in enumerate(order):
        image, gt = rendered[k]
        band = framecode.stamp(np.zeros((BAND, spec.width, 3), np.uint8)[::-1], i)[::-1]
        frames.append(np.vstack([band, image]))
        boxes.append([(tuple(np.asarray(b.box, np.float32) + shift), b.face_width) for b in gt
                      if b.visible_fraction >= 0.5])
    return make_camera_clip(folder / "camera.mp4", frames, fps=spec.fps), boxes


def grey_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [cv2.cvtColor(f.to_ndarray(format="rgb24"), cv2.COLOR_RGB2GRAY) for f in c.decode(video=0)]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def scrape(port: int) -> dict:
    """Counters by name (summed over labels) and the latency histogram's cumulative buckets."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict = {"buckets": {}}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "redactor_latency_seconds_bucket":
                out["buckets"][float(s.labels["le"])] = s.value
            elif s.name.endswith("_total") or s.name in ("redactor_latency_seconds_count",):
                out[s.name] = out.get(s.name, 0.0) + s.value
                if "reason" in s.labels:
                    key = f"{s.name}[{s.labels['reason']}]"
                    out[key] = out.get(key, 0.0) + s.value
    return out


def health(port: int) -> dict:
    try:
        return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def bucket_quantile(q: float, before: dict, after: dict) -> float | None:
    """histogram_quantile over the observations between two scrapes."""
    edges = sorted(after)
    counts = [after[e] - before.get(e, 0.0) for e in edges]
    total = counts[-1] if counts else 0
    if total <= 0:
        return None
    rank, lo, prev = q * total, 0.0, 0.0
    for edge, c in zip(edges, counts):
        if c >= rank:
            if math.isinf(edge):
                return lo
            return lo + (edge - lo) * (rank - prev) / max(c - prev, 1e-9)
        lo, prev = edge, c
    return None


def score_received(received: Path, source: list[np.ndarray], boxes: list[list]) -> dict:
    """Match each received frame to its source by stamp; score every ground-truth face in it."""
    bins = {name: [0, 0] for name, _, _ in WIDTH_BINS}
    matched = unstamped = clear = 0
    with av.open(str(received)) as c:
        for vf in c.decode(video=0):
            rgb = vf.to_ndarray(format="rgb24")
            n = framecode.read(np.ascontiguousarray(rgb[::-1]))  # the stamp is in the top rows
            if n is None or n >= len(source) or rgb.shape[:2] != source[0].shape:
                unstamped += 1
                continue
            matched += 1
            grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            for box, width in boxes[n]:
                verdict = compare_face(source[n], grey, box, width)
                name = next(nm for nm, lo, hi in WIDTH_BINS if lo <= width < hi)
                bins[name][0] += 1
                bins[name][1] += verdict.protected
                clear += not verdict.protected
    faces = sum(n for n, _ in bins.values())
    return {"frames_matched": matched, "frames_unstamped": unstamped, "face_frames": faces, "clear_face_frames": clear,
            "recall": (faces - clear) / faces if faces else None,
            "by_width": {k: {"faces": n, "protected": p} for k, (n, p) in bins.items()}}


def _fmt(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


@click.command()
@click.option("--minutes", type=float, default=10.0, show_default=True)
@click.option("--interval", type=float, default=30.0, show_default=True, help="Seconds between samples.")
@click.option("--latency-ms", type=int, default=500, show_default=True)
@click.option("--clip-seconds", type=float, default=10.0, show_default=True, help="Length of the looped camera clip.")
@click.option("--seed", type=int, default=3, show_default=True, help="crowd_720p scene seed.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(minutes: float, interval: float, latency_ms: int, clip_seconds: float, seed: int, workdir: Path | None,
         json_path: Path | None) -> None:
    """Run the soak and print Markdown tables for benchmarks/RESULTS.md."""
    folder = workdir or Path(tempfile.mkdtemp(prefix="redactor-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    clip, boxes = build_clip(folder, clip_seconds, seed)
    port = free_port()
    samples = []
    cmd = [sys.executable, "-m", "redactor_video", "stream", "--camera", "soak", "--latency-ms", str(latency_ms),
           "--metrics", f"127.0.0.1:{port}"]
    with FakeCamera(clip) as camera, FakeVMS(folder / "received.mkv") as vms:
        cmd += ["--input", camera.url, "--output", vms.url]
        with open(folder / "stream.log", "w") as log:
            proc = subprocess.Popen(cmd, stderr=log, cwd=ROOT)
        try:
            began = time.monotonic()
            last = None
            while time.monotonic() - began < minutes * 60:
                time.sleep(min(interval, max(0.0, minutes * 60 - (time.monotonic() - began))))
                if proc.poll() is not None:
                    raise click.ClickException(f"redactor stream exited with {proc.returncode}; see {folder}/stream.log")
                try:
                    m = scrape(port)
                except (urllib.error.URLError, OSError):
                    continue
                row = {"t": round(time.monotonic() - began, 1), "rss_mib": round(rss_mib(proc.pid), 1), **m,
                       "health": health(port)}
                if last is not None:
                    span = row["t"] - last["t"]
                    delta = {k: row.get(k, 0.0) - last.get(k, 0.0) for k in row if k.endswith("_total")}
                    row["in_fps"] = delta.get("redactor_frames_in_total", 0) / span
                    row["out_fps"] = delta.get("redactor_frames_out_total", 0) / span
                    row["dropped_share"] = (delta.get("redactor_frames_dropped_total", 0)
                                            / max(delta.get("redactor_frames_in_total", 0), 1))
                    row["p50"] = bucket_quantile(0.5, last["buckets"], m["buckets"])
                    row["p95"] = bucket_quantile(0.95, last["buckets"], m["buckets"])
                    row["fail_closed"] = delta.get("redactor_fail_closed_frames_total", 0)
                samples.append(row)
                last = row
            final_health = health(port)
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=30)
        received = vms.wait_closed(timeout=30)
    result = score_received(received, grey_frames(clip), boxes)
    report = {"command": " ".join(cmd[1:]), "minutes": minutes, "latency_ms": latency_ms, "exit_code": rc,
              "final_health": final_health, "samples": samples, "score": result,
              "cpus": os.cpu_count(), "load_after": os.getloadavg()}
    if json_path:
        json_path.write_text(json.dumps(report, indent=1, default=str))
    print(f"soak: {minutes:g} min, 1280x720 25 fps camera, --latency-ms {latency_ms}, exit code {rc} after SIGTERM\n")
    print("| t s | RSS MiB | in fps | out fps | dropped | p50 s | p95 s | fail-closed frames |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in samples[1:]:
        print(f"| {r['t']:.0f} | {r['rss_mib']:.0f} | {r['in_fps']:.1f} | {r['out_fps']:.1f} | "
              f"{100 * r['dropped_share']:.0f}% | {_fmt(r['p50'])} | {_fmt(r['p95'])} | {r['fail_closed']:.0f} |")
    cams = final_health.get("cameras", [{}])
    print(f"\nexact window (last 2000 frames): p50 {_fmt(cams[0].get('latency_p50'))} s, "
          f"p95 {_fmt(cams[0].get('latency_p95'))} s")
    s = result
    print(f"\nreceived: {s['frames_matched']} frames matched to source by stamp, {s['frames_unstamped']} without a "
          f"readable stamp (not scored: black keep-alive or fully blurred fail-closed frames, or a mask over the "
          f"strip); face-frames scored {s['face_frames']}, clear {s['clear_face_frames']}, "
          f"recall {_fmt(s['recall'], 4)}")
    reasons = {k: v for k, v in (samples[-1] if samples else {}).items() if "[" in k}
    print("\ncounts by reason at the end: " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(reasons.items())))
    print("| width | " + " | ".join(s["by_width"]) + " |")
    print("|---|" + "---:|" * len(s["by_width"]))
    print("| protected | " + " | ".join(f"{v['protected']}/{v['faces']}" for v in s["by_width"].values()) + " |")


if __name__ == "__main__":
    main()
