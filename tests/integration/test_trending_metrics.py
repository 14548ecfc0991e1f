"""The trending job serves Flink's metrics through the Prometheus reporter, its Kafka source lag included."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from support.wait import wait_until

from core.events import post_created
from core.settings import Settings, with_overrides
from ops import workers
from ops.lag import LIVE_LAG, live_lag
from ops.monitoring import FLINK_PREFIX, dashboard_queries, metric_names
from streams.admin import apply_all
from streams.producer import EventProducer
from topologies.metrics import read_target

# the Kafka source's lag: the consumer's records-lag metrics, or FLIP-33's pendingRecords
LAG = re.compile(r"flink_taskmanager_job_task_operator_\w*(records_lag\w*|pendingRecords)")


def test_the_trending_job_publishes_flink_metrics_with_its_source_lag(stack: Settings, tmp_path: Path) -> None:
    apply_all(stack, echo=lambda *_: None)
    state = tmp_path / "state"
    proc = workers.start_worker(stack, "trending", tmp_path / "trending.log", worker_metrics_port=0,
                                state_dir=state, trending_checkpoint_dir=str(tmp_path / "chk"))
    try:
        with EventProducer(stack) as producer:  # records to fetch: the source registers its lag metrics
            producer.send(*post_created("trend-metrics", "#observability"))
        target = wait_until(lambda: read_target(state, "flink", "trending"), 120)

        def scrape() -> str | None:
            assert proc.poll() is None, (tmp_path / "trending.log").read_text()[-3000:]
            try:
                text = httpx.get(f"http://{target}/metrics", timeout=5).text
            except httpx.HTTPError:
                return None
            # the reader registers pendingRecords lazily, once it fetched from a partition
            return text if LAG.search(text) and LIVE_LAG["trending"][1] in text else None

        text = wait_until(scrape, 240, interval_s=3)
        live = live_lag(with_overrides(stack, state_dir=state), "trending")  # what `feedstream status` shows
    finally:
        workers.stop_workers([proc])
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    assert "flink_taskmanager_job_task_numRecordsIn" in names
    flink = {n for q in dashboard_queries() for n in metric_names(q) if n.startswith(FLINK_PREFIX)}
    assert flink and flink <= names, f"dashboard panels read {flink - names}, not in the job's scrape"
    assert LIVE_LAG["trending"][1] in names and live is not None and live >= 0  # status reads a real series
    lag = sorted(n for n in names if LAG.search(n))
    assert lag and all("KafkaSourceReader" in n or n.endswith("pendingRecords") for n in lag), lag
    print("source lag metrics:", lag)
