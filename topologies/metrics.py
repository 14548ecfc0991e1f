"""Topology worker metrics and the worker's small HTTP port: ``/metrics``, ``/livez``, ``/readyz``.

The agents in :mod:`topologies.faust_runtime` report each batch they applied
(:func:`observe_batch`: events by record type, batch size, processing latency, and write→visible
freshness: now minus the event's ``occurred_at``, stamped by the API when it accepted the write,
taken once the batch's side effects are in the views) and each dead letter. The worker's heartbeat
timer (every :data:`topologies.health.HEARTBEAT_S`, on the app's own event loop) reports its
committed offsets and high-water marks (:meth:`WorkerProbe.observe`): consumer lag per partition,
last-commit age, and the time of the last *live* tick.

``/livez`` answers 200 while that tick is younger than ``max_age_s``: the tick stops when the event
loop is blocked, the app crashed, or records have waited ``STALL_S`` with no commit (a hang, see
:class:`topologies.health.ProgressMonitor`). The server runs on a thread of the worker, so a
SIGSTOPped worker answers nothing and the probe fails on its timeout. ``/readyz`` is 200 once the
app runs and ticked at least once.

The port is ``settings.worker_metrics_port`` (0 picks a free one) or ``worker_metrics_port_base``
plus the topology's offset (:func:`port_for`). The bound port is published as a Prometheus
file_sd target under ``<state_dir>/monitoring/targets/`` for the local Prometheus and for tests.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from core.settings import Settings

log = logging.getLogger(__name__)

# local ports: base + offset (k8s gives every pod the same port through FEEDSTREAM_WORKER_METRICS_PORT)
PORT_OFFSETS = {"graph": 0, "fanout": 1, "engagement": 2, "users": 3, "trending": 4,
                "moderation": 5, "search": 6, "notifications": 7, "media": 8}

PROCESSED = Counter("feedstream_worker_events_processed", "Events applied, by record type",
                    ["topology", "type"])
DEAD_LETTERED = Counter("feedstream_worker_events_dead_lettered",
                        "Records sent to the dead-letter topic, by source topic and error type",
                        ["topology", "topic", "error"])
BATCH_SIZE = Histogram("feedstream_worker_batch_size", "Records per applied batch", ["topology"],
                       buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000))
PROCESSING = Histogram("feedstream_worker_processing_seconds", "Time to apply one batch",
                       ["topology"], buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
FRESHNESS = Histogram("feedstream_write_to_visible_seconds",
                      "From the API accepting a write (occurred_at) to its effects being in the views",
                      ["topology"], buckets=(.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300))
LAG = Gauge("feedstream_consumer_lag", "Records behind the high-water mark, per assigned partition",
            ["topology", "topic", "partition"])
COMMIT_AGE = Gauge("feedstream_worker_last_commit_age_seconds",
                   "Seconds since the committed offsets last moved (0 while caught up)", ["topology"])
LIVE = Gauge("feedstream_worker_live", "1 while the worker's progress tick is fresh", ["topology"])


def port_for(settings: Settings, name: str) -> int:
    """The metrics port of topology ``name``'s worker (0: any free port)."""
    if settings.worker_metrics_port is not None:
        return settings.worker_metrics_port
    offset = PORT_OFFSETS.get(name, 10 + zlib.crc32(name.encode()) % 40)
    return settings.worker_metrics_port_base + offset


def targets_dir(state_dir: Path) -> Path:
    """Where processes publish their scrape targets (Prometheus file_sd JSON files)."""
    return Path(state_dir) / "monitoring" / "targets"


def publish_target(state_dir: Path, job: str, name: str, host: str, port: int) -> Path:
    """Write ``<targets>/<job>-<name>.json`` naming ``host:port`` (atomically)."""
    path = targets_dir(state_dir) / f"{job}-{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"targets": [f"{host}:{port}"],
                                "labels": {"job": job, "topology": name}}]))
    tmp.replace(path)
    return path


def read_target(state_dir: Path, job: str, name: str) -> str | None:
    """``host:port`` a process published, or None."""
    try:
        return json.loads((targets_dir(state_dir) / f"{job}-{name}.json").read_text())[0]["targets"][0]
    except (OSError, ValueError, LookupError):
        return None


def observe_batch(topology: str, recs: Sequence[Any], started: float, events: int | None = None) -> None:
    """Count an applied batch (``recs``: its decoded records; ``started``: ``perf_counter`` before it)."""
    now_s = time.time()
    PROCESSING.labels(topology).observe(time.perf_counter() - started)
    BATCH_SIZE.labels(topology).observe(len(recs) if events is None else events)
    counts: dict[str, int] = {}
    fresh = FRESHNESS.labels(topology)
    for rec in recs:
        counts[rec.name] = counts.get(rec.name, 0) + 1
        fresh.observe(max(0.0, now_s - occurred_s(rec)))
    for name, n in counts.items():
        PROCESSED.labels(topology, name).inc(n)


def occurred_s(rec: Any) -> float:
    """When the write behind ``rec`` was accepted (its ``occurred_at``, else the record's timestamp)."""
    occurred = rec.value.get("occurred_at") if isinstance(rec.value, dict) else None
    if isinstance(occurred, datetime):  # fastavro decodes timestamp-millis
        return occurred.timestamp()
    if isinstance(occurred, int):
        return occurred / 1000
    return rec.timestamp_ms / 1000


def dead_lettered(topology: str, topic: str, exc: BaseException) -> None:
    """Count one dead letter."""
    DEAD_LETTERED.labels(topology, topic, type(exc).__name__).inc()


class WorkerProbe:
    """A worker's liveness and readiness, fed by its heartbeat tick."""

    def __init__(self, topology: str, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.topology, self.max_age_s, self.clock = topology, max_age_s, clock
        self.last_live: float | None = None
        self.last_commit_move: float | None = None
        self._committed: dict[Any, int | None] = {}
        self._partitions: set[tuple[str, str]] = set()
        self.running: Callable[[], bool] = lambda: True
        COMMIT_AGE.labels(topology).set_function(self._commit_age)
        LIVE.labels(topology).set_function(lambda: 1.0 if self.live()[0] else 0.0)

    def _commit_age(self) -> float:
        return 0.0 if self.last_commit_move is None else self.clock() - self.last_commit_move

    def observe(self, committed: Mapping[Any, int | None], highwater: Mapping[Any, int | None],
                progressing: bool) -> None:
        """One heartbeat tick: lag per partition, commit movement, and liveness if ``progressing``."""
        now = self.clock()
        behind = False
        seen: set[tuple[str, str]] = set()
        for tp, hw in highwater.items():
            lag = max(0, (hw or 0) - (committed.get(tp) or 0)) if hw is not None else 0
            behind = behind or lag > 0
            key = (str(getattr(tp, "topic", tp)), str(getattr(tp, "partition", 0)))
            seen.add(key)
            LAG.labels(self.topology, *key).set(lag)
        for gone in self._partitions - seen:  # revoked partitions leave the gauge
            LAG.remove(self.topology, *gone)
        self._partitions = seen
        if dict(committed) != self._committed or self.last_commit_move is None or not behind:
            self.last_commit_move = now
        self._committed = dict(committed)
        if progressing:
            self.last_live = now

    def live(self) -> tuple[bool, str]:
        """``(live, why)``: the progress tick is younger than ``max_age_s``."""
        if self.last_live is None:
            return False, "no progress tick yet"
        age = self.clock() - self.last_live
        if age > self.max_age_s:
            return False, f"no progress tick for {age:.0f}s (> {self.max_age_s:.0f}s)"
        return True, f"progress tick {age:.1f}s ago"

    def ready(self) -> tuple[bool, str]:
        """``(ready, why)``: the app runs and has ticked."""
        if not self.running():
            return False, "worker stopping or crashed"
        return (self.last_live is not None), ("ticking" if self.last_live is not None else "starting")


def _handler(probe: WorkerProbe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/metrics":
                self._answer(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
                return
            check = {"/livez": probe.live, "/readyz": probe.ready}.get(self.path.split("?")[0])
            if check is None:
                self._answer(404, b"not found\n", "text/plain")
                return
            ok, why = check()
            self._answer(200 if ok else 503, f"{'ok' if ok else 'unhealthy'}: {why}\n".encode(),
                         "text/plain")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def serve(probe: WorkerProbe, host: str, port: int) -> ThreadingHTTPServer:
    """Serve ``probe`` and the process's metrics on ``host:port`` from a daemon thread."""
    server = ThreadingHTTPServer((host, port), _handler(probe))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server


def start(settings: Settings, topology: str, probe: WorkerProbe) -> ThreadingHTTPServer | None:
    """Serve the worker's port (see module doc) and publish it; a port in use is logged, not fatal."""
    bind = "0.0.0.0" if settings.worker_metrics_bind_all else settings.host
    try:
        server = serve(probe, bind, port_for(settings, topology))
    except OSError as exc:
        log.warning("metrics port of %s not served: %s", topology, exc)
        return None
    port = server.server_address[1]
    publish_target(settings.state_dir, "topology", topology, settings.host, port)
    log.info("metrics, /livez and /readyz of %s on %s:%d", topology, bind, port)
    return server
