"""The worker probe's liveness, lag and commit age from heartbeat ticks (a fake clock, no engines)."""

from __future__ import annotations

from collections import namedtuple
from datetime import UTC, datetime

from prometheus_client import REGISTRY

from core.settings import Settings
from topologies import metrics

TP = namedtuple("TP", "topic partition")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_live_while_ticks_are_fresh_and_red_once_they_stop() -> None:
    clock = Clock()
    probe = metrics.WorkerProbe("t-live", max_age_s=30, clock=clock)
    assert probe.live()[0] is False and probe.ready()[0] is False  # not ticked yet
    probe.observe({}, {}, progressing=True)
    assert probe.live()[0] and probe.ready()[0]
    clock.now += 31
    ok, why = probe.live()
    assert not ok and "31s" in why
    assert _sample("feedstream_worker_live", topology="t-live") == 0.0
    probe.observe({}, {}, progressing=False)  # a stalled tick does not revive it
    assert not probe.live()[0]


def test_lag_per_partition_and_last_commit_age() -> None:
    clock = Clock()
    probe = metrics.WorkerProbe("t-lag", max_age_s=30, clock=clock)
    a, b = TP("posts.v1", 0), TP("posts.v1", 1)
    probe.observe({a: 5, b: 7}, {a: 9, b: 7}, progressing=True)
    assert _sample("feedstream_consumer_lag", topology="t-lag", topic="posts.v1", partition="0") == 4
    assert _sample("feedstream_consumer_lag", topology="t-lag", topic="posts.v1", partition="1") == 0
    clock.now += 20
    probe.observe({a: 5, b: 7}, {a: 12, b: 7}, progressing=True)  # behind, no commit moved
    assert _sample("feedstream_worker_last_commit_age_seconds", topology="t-lag") == 20
    probe.observe({a: 12}, {a: 12}, progressing=True)  # caught up; partition 1 revoked
    assert _sample("feedstream_worker_last_commit_age_seconds", topology="t-lag") == 0
    assert _sample("feedstream_consumer_lag", topology="t-lag", topic="posts.v1", partition="1") is None


class Rec:
    def __init__(self, name: str, occurred: object, ts_ms: int) -> None:
        self.name, self.value, self.timestamp_ms = name, {"occurred_at": occurred}, ts_ms


def test_batches_count_types_sizes_and_write_to_visible() -> None:
    before = _sample("feedstream_worker_events_processed_total", topology="t-b", type="Liked") or 0
    now = datetime.now(UTC)
    recs = [Rec("Liked", now, 0), Rec("Liked", None, int(now.timestamp() * 1000)), Rec("Shared", now, 0)]
    metrics.observe_batch("t-b", recs, started=0.0, events=4)
    assert _sample("feedstream_worker_events_processed_total", topology="t-b", type="Liked") - before == 2
    assert _sample("feedstream_worker_batch_size_sum", topology="t-b") >= 4
    # every record was applied within a minute of its write (decoded datetime or record timestamp)
    assert _sample("feedstream_write_to_visible_seconds_bucket", topology="t-b", le="60.0") >= 3


def test_ports_come_from_settings() -> None:
    s = Settings(worker_metrics_port_base=9300)
    assert metrics.port_for(s, "graph") == 9300 and metrics.port_for(s, "fanout") == 9301
    assert metrics.port_for(Settings(worker_metrics_port=0), "fanout") == 0
    assert 9310 <= metrics.port_for(s, "some-new-topology") < 9350
