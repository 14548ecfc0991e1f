"""Alert rules, their promtool tests, the k8s PrometheusRule and the dashboard, checked offline."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from core.settings import Settings
from ops.monitoring import (
    DASHBOARD,
    RULES,
    RULES_TEST,
    dashboard_queries,
    metric_names,
    prometheus_yml,
)

REPO = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], check=False, capture_output=True, text=True, cwd=RULES.parent)


@needs_promtool
def test_rules_pass_promtool_check_and_every_alert_fires_in_a_rule_test() -> None:
    check = _promtool("check", "rules", str(RULES))
    assert check.returncode == 0, check.stdout + check.stderr
    run = _promtool("test", "rules", str(RULES_TEST))
    assert run.returncode == 0, run.stdout + run.stderr
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    fired = {t["alertname"] for case in yaml.safe_load(RULES_TEST.read_text())["tests"]
             for t in case["alert_rule_test"] if t["exp_alerts"]}
    assert alerts == fired, f"alerts with no firing test: {alerts - fired}"
    assert {"FeedstreamTargetDown", "FeedstreamHighErrorRate", "FeedstreamHighLatencyP99",
            "FeedstreamConsumerLagGrowing", "FeedstreamDeadLetters"} <= alerts


@needs_promtool
def test_the_local_prometheus_config_is_valid(tmp_path: Path) -> None:
    conf = tmp_path / "prometheus.yml"
    conf.write_text(prometheus_yml(Settings(state_dir=tmp_path, prometheus_port=19090)))
    check = _promtool("check", "config", str(conf))
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_k8s_prometheus_rule_carries_the_same_groups() -> None:
    (doc,) = list(yaml.safe_load_all((REPO / "k8s" / "monitoring" / "prometheusrule.yaml").read_text()))
    assert doc["kind"] == "PrometheusRule" and doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_dashboard_is_valid_grafana_json_with_the_panels_operators_need() -> None:
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and dash["uid"] and dash["schemaVersion"] >= 30
    for p in dash["panels"]:
        assert p["targets"] and all(t["expr"] and metric_names(t["expr"]) for t in p["targets"]), p["title"]
        assert set(p["gridPos"]) == {"h", "w", "x", "y"}
    text = " ".join(dashboard_queries())
    for needed in ("feedstream_http_request_duration_seconds_bucket", "feedstream_write_to_visible_seconds_bucket",
                   "feedstream_consumer_lag", "feedstream_worker_events_dead_lettered_total",
                   "feedstream_http_requests_total", "feedstream_http_requests_in_flight"):
        assert needed in text, needed


def test_compose_prometheus_scrapes_every_long_running_service_of_our_image() -> None:
    compose = yaml.safe_load((REPO / "docker" / "compose.yml").read_text())
    conf = yaml.safe_load((REPO / "docker" / "prometheus.yml").read_text())
    hosts = {t.split(":")[0] for job in conf["scrape_configs"] for sc in job["static_configs"]
             for t in sc["targets"]}
    ours = {n for n, svc in compose["services"].items() if "feedstream" in str(svc.get("image", ""))
            and svc.get("restart") != "no"}
    assert ours <= hosts, f"not scraped: {ours - hosts}"
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "../ops/monitoring/rules.yml:/etc/prometheus/rules.yml:ro" in mounts
    assert conf["rule_files"] == ["/etc/prometheus/rules.yml"]


def test_monitoring_is_an_engine_started_only_when_asked() -> None:
    from ops.local import stack

    assert "monitoring" not in [e.name for e in stack._select(None)]
    assert [e.name for e in stack._select(["monitoring"])] == ["monitoring"]
    assert stack.ENGINES["monitoring"].programs == ("prometheus",)


def test_up_refuses_an_engine_running_from_the_same_state_dir_on_another_port(tmp_path: Path) -> None:
    import time

    import psutil

    from ops.local import stack
    from ops.local.errors import LocalStackError

    # nothing listens on port 1: before the guard, `up` waited there for start_timeout_s, then stopped it
    s = Settings(state_dir=tmp_path, prometheus_port=1, start_timeout_s=3)
    pidfile = stack.pid_path(s, "monitoring")
    pidfile.parent.mkdir(parents=True)
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)  # "the Prometheus" on port 2
    try:
        ps = psutil.Process(other.pid)
        pidfile.write_text(json.dumps({"pid": other.pid, "create_time": ps.create_time(),
                                       "started_at": time.time(), "port": 2}))
        with pytest.raises(LocalStackError, match="already running on port 2 .* not on 1"):
            stack._start(s, stack.ENGINES["monitoring"], echo=lambda *_: None)
        assert other.poll() is None  # and left alone
    finally:
        other.kill()
        other.wait()


def test_topology_list_states() -> None:
    from ops.topologies import row_state

    assert row_state(True, None, False) == "live"  # a worker not started by `up` (k8s, tests, by hand)
    assert row_state(False, 123, True) == "not live"
    assert row_state(None, 123, True) == "running" and row_state(None, 123, False) == "restarting"
    assert row_state(False, None, False) == "stopped" and row_state(None, None, False) == "stopped"


def test_status_reads_the_trending_jobs_lag_where_its_flink_reporter_publishes_it(tmp_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from ops.lag import LIVE_LAG, live_lag
    from topologies.metrics import publish_target

    metric = LIVE_LAG["trending"][1]
    body = (f"# TYPE {metric} gauge\n{metric}{{subtask_index=\"0\"}} 5.0\n{metric}{{subtask_index=\"1\"}} 7.0\n"
            "# TYPE flink_taskmanager_job_task_numRecordsIn counter\nflink_taskmanager_job_task_numRecordsIn 99.0\n")

    class Flink(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        s = Settings(state_dir=tmp_path)
        assert live_lag(s, "trending") is None  # nothing published yet
        publish_target(tmp_path, "flink", "trending", "127.0.0.1", server.server_address[1])
        assert live_lag(s, "trending") == 12.0
        assert live_lag(s, "fanout") is None  # workers publish under job "topology"
    finally:
        server.shutdown()
        server.server_close()
    assert any(metric in q for q in dashboard_queries()), "the dashboard has a trending lag panel"
