"""The local Prometheus (engine ``monitoring``) scrapes the API and the workers; dashboard vs live scrape."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.api import bearer
from support.scrape import names
from support.wait import wait_until

from core.settings import REPO_ROOT, Settings
from ops import workers
from ops.local import stack as local_stack
from ops.monitoring import FLINK_PREFIX, dashboard_queries, metric_names
from streams.admin import apply_all
from topologies.metrics import read_target

# Prometheus is not a session engine (tests/conftest.py): this module starts it on the session's own
# prometheus_port and stops it. (It once asked for another port while the session stack already ran a
# Prometheus from the same state dir, and waited 180 s on a port nobody listened on; `local up` now
# refuses that at once.)


def _query(s: Settings, expr: str) -> dict[str, Any]:
    r = httpx.get(f"http://{s.host}:{s.prometheus_port}/api/v1/query", params={"query": expr}, timeout=10)
    return r.json()


def _targets_up(s: Settings, wanted: set[str]) -> bool:
    """Every ``wanted`` job (or ``job/topology``) has a target that is up.

    Targets other modules' workers published in the session's state dir stay, down, once those stop:
    only this module's targets count.
    """
    got = httpx.get(f"http://{s.host}:{s.prometheus_port}/api/v1/targets", timeout=10).json()
    up = set()
    for t in got["data"]["activeTargets"]:
        if t["health"] == "up":
            up |= {t["labels"]["job"], f'{t["labels"]["job"]}/{t["labels"].get("topology", "")}'}
    return wanted <= up


@pytest.fixture(scope="module")
def monitored(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    apply_all(stack, echo=lambda *_: None)
    s = stack
    logs = tmp_path_factory.mktemp("monitoring")
    (prom,) = local_stack.up(s, ["monitoring"], echo=lambda *_: None)
    with open(logs / "api.log", "ab") as log:
        api = subprocess.Popen([sys.executable, "-m", "serving.main", "--host", s.host, "--port", str(s.api_port),
                                "--no-access-log"], env=workers.worker_env(s), cwd=REPO_ROOT, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    worker = workers.start_worker(s, "users", logs / "users.log", new_session=True, worker_metrics_port=0,
                                  topology_group_suffix=f"-mon{uuid.uuid4().hex[:6]}")
    try:
        yield {"settings": s, "api": api, "worker": worker, "logs": logs}
    finally:
        for proc in (api, worker):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
        if prom.started_now:  # a reused stack's own Prometheus stays up
            local_stack.down(s, ["monitoring"], echo=lambda *_: None)


def test_prometheus_scrapes_every_process_and_sees_traffic(monitored: dict[str, Any]) -> None:
    s: Settings = monitored["settings"]
    wait_until(lambda: _targets_up(s, {"prometheus", "api", "topology/users"}), 180, interval_s=2)
    user = f"mon{uuid.uuid4().hex[:8]}"
    r = httpx.post(f"{s.api_url}/v1/users", headers=bearer(s, user), timeout=10,
                   json={"user_id": user, "handle": user, "display_name": "Mon"})
    assert r.status_code == 202, r.text
    wait_until(lambda: _query(s, 'sum(feedstream_events_produced_total{record="UserRegistered"})')["data"]["result"],
               60, interval_s=2)
    wait_until(lambda: _query(s, 'sum(feedstream_worker_events_processed_total{topology="users"}) > 0')
               ["data"]["result"], 90, interval_s=2)


def test_every_dashboard_query_names_a_metric_of_a_live_scrape(monitored: dict[str, Any]) -> None:
    s: Settings = monitored["settings"]
    worker = read_target(s.state_dir, "topology", "users")
    assert worker is not None
    live = names(httpx.get(f"{s.api_url}/metrics", timeout=10).text)
    live |= names(httpx.get(f"http://{worker}/metrics", timeout=10).text)
    live.add("up")  # Prometheus's own per-target series
    for expr in dashboard_queries():
        used = metric_names(expr)
        flink = {n for n in used if n.startswith(FLINK_PREFIX)}  # the trending job's: test_trending_metrics.py
        assert used and used - flink <= live, f"{expr}: {used - flink - live} in no live scrape"
        assert _query(s, expr)["status"] == "success", expr  # and the live Prometheus accepts it


def test_a_killed_worker_shows_as_down_and_trips_the_target_down_alert(monitored: dict[str, Any]) -> None:
    s: Settings = monitored["settings"]
    wait_until(lambda: _targets_up(s, {"topology/users"}), 120, interval_s=2)
    os.killpg(monitored["worker"].pid, signal.SIGKILL)
    monitored["worker"].wait(10)
    wait_until(lambda: _query(s, 'up{job="topology", topology="users"} == 0')["data"]["result"], 60, interval_s=2)

    def alerting() -> bool:
        got = httpx.get(f"http://{s.host}:{s.prometheus_port}/api/v1/alerts", timeout=10).json()
        return any(a["labels"]["alertname"] == "FeedstreamTargetDown" and a["labels"].get("job") == "topology"
                   for a in got["data"]["alerts"])

    wait_until(alerting, 60, interval_s=2)  # pending within a scrape, firing after its `for: 1m`

