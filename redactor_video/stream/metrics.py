"""Operations surface of the live filter: Prometheus metrics and a health check on one local HTTP port.

/metrics is Prometheus text format (prometheus-client); /healthz answers 200
while every camera is delivering redacted frames normally and 503 with the
reason otherwise (input down, output down, detector stalled, nothing written
lately), as JSON a load balancer or an operator can read.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0, 5.0)


class StreamMetrics:
    """Every live counter, labelled by camera, in one registry shared by the cameras of a `serve`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.frames_in = Counter("redactor_frames_in", "Frames decoded from the input", ["camera"], registry=r)
        self.frames_out = Counter("redactor_frames_out", "Redacted frames sent to the outputs", ["camera"], registry=r)
        self.dropped = Counter("redactor_frames_dropped", "Input frames dropped instead of adding latency",
                               ["camera", "reason"], registry=r)
        self.fail_closed = Counter("redactor_fail_closed_frames", "Frames sent fully blurred because detection "
                                   "failed or stalled", ["camera", "reason"], registry=r)
        self.filler = Counter("redactor_filler_frames", "Black frames sent to keep the output alive while the "
                              "input is down", ["camera"], registry=r)
        self.reconnects = Counter("redactor_reconnects", "Connection losses followed by a reconnect attempt",
                                  ["camera", "side"], registry=r)
        self.latency = Histogram("redactor_latency_seconds", "Input frame decoded to redacted frame sent",
                                 ["camera"], buckets=LATENCY_BUCKETS, registry=r)
        self.faces = Gauge("redactor_faces", "Face masks in the last frame sent", ["camera"], registry=r)
        self.tracks = Gauge("redactor_tracks_seen", "Face tracks started since the filter began", ["camera"],
                            registry=r)
        self.up = Gauge("redactor_up", "1 while this side of the filter is connected", ["camera", "side"],
                        registry=r)
        self.stalled = Gauge("redactor_detector_stalled", "1 while detection is stalled and frames go out fully "
                             "blurred", ["camera"], registry=r)


class LatencyWindow:
    """The last N latencies, for percentiles in logs, /healthz and benchmarks (a histogram only bins them)."""

    def __init__(self, size: int = 2000) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._values.append(seconds)

    def percentiles(self, *qs: float) -> list[float | None]:
        with self._lock:
            values = np.array(self._values)
        if not len(values):
            return [None for _ in qs]
        return [float(np.percentile(values, q)) for q in qs]


class OpsServer:
    """Serves /metrics and /healthz on host:port in a daemon thread."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry,
                 health: Callable[[], tuple[bool, dict]]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, CONTENT_TYPE_LATEST, generate_latest(registry))
                elif path == "/healthz":
                    ok, detail = health()
                    self._reply(200 if ok else 503, "application/json", json.dumps(detail).encode())
                else:
                    self._reply(404, "text/plain", b"not found: try /metrics or /healthz\n")

            def _reply(self, code: int, kind: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                """Scrapes are not worth a log line each."""

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.address = self._server.server_address
        self._thread = threading.Thread(target=self._server.serve_forever, name="ops-http", daemon=True)

    def start(self) -> OpsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
