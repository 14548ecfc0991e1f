"""One row per topology for operators: state, lag, throughput and restarts (``feedstream topology list``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from core.settings import Settings
from ops import platform
from ops.lag import TOPOLOGY_SOURCES, scraped, topology_lag
from topologies.metrics import read_target

PROCESSED = "feedstream_worker_events_processed_total"


@dataclass(frozen=True)
class TopologyRow:
    """What ``topology list`` shows for one topology."""

    name: str
    state: str  # running | live | not live | restarting | stopped
    lag: int | None  # records behind, from the group's committed offsets
    throughput: float | None  # events applied per second, from the worker's /metrics
    restarts: int | None  # restarts by the local supervisor since `up`
    target: str | None  # host:port of the worker's /metrics


def _live(target: str | None) -> bool | None:
    if target is None:
        return None
    try:
        return httpx.get(f"http://{target}/livez", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def row_state(live: bool | None, pid: int | None, healthy: bool) -> str:
    """``live`` (its /livez answers 200), ``not live`` (a process whose /livez fails), ``running`` or
    ``restarting`` (a process `up` runs, without a metrics port), or ``stopped``."""
    if live:
        return "live"
    if pid:
        return "not live" if live is False else ("running" if healthy else "restarting")
    return "stopped"  # nothing runs it (a target file left by a stopped worker answers nothing)


def overview(s: Settings, sample_s: float = 1.0) -> list[TopologyRow]:
    """Every topology of :data:`ops.lag.TOPOLOGY_SOURCES`, sampled now (throughput over ``sample_s``)."""
    names = list(TOPOLOGY_SOURCES)
    services = {st.name.removeprefix("topology-"): st for st in platform.status(s)
                if st.name.startswith("topology-")}
    try:
        lags: dict[str, int] = {lag.topology: lag.lag for lag in topology_lag(s)}
    except Exception:  # noqa: BLE001 - Kafka down: the table says "-"
        lags = {}
    before = {n: scraped(s, n, PROCESSED) for n in names}
    t0 = time.monotonic()
    if any(v is not None for v in before.values()):
        time.sleep(sample_s)
    after = {n: scraped(s, n, PROCESSED) if before[n] is not None else None for n in names}
    took = max(time.monotonic() - t0, 1e-9)
    rows = []
    for n in names:
        target = read_target(s.state_dir, "topology", n)
        live = _live(target)
        svc = services.get(n)
        state = row_state(live, svc.pid if svc else None, svc.healthy if svc else False)
        b, a = before[n], after[n]
        rate = (a - b) / took if a is not None and b is not None else None
        rows.append(TopologyRow(n, state, lags.get(n), rate, svc.restarts if svc else None,
                                target if live is not None else None))
    return rows
