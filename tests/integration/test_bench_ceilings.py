"""The bench's ceilings against the real engines: each is measured, stamped with the run, and cleans up."""

from __future__ import annotations

import time

import redis
from confluent_kafka.admin import AdminClient

from bench import ceilings
from bench.harness import KafkaProbe
from bench.report import check_well_formed


def test_ceilings_measure_real_engines_and_clean_up(stack):
    run_id = ceilings.new_run_id()
    started = ceilings.now_iso()
    measured = [ceilings.redis_zadd(stack, run_id, 0.5), ceilings.redis_zrevrange(stack, run_id, 0.5),
                ceilings.kafka_producer(stack, run_id, 0.5)]
    finished = ceilings.now_iso()
    for c in measured:
        assert c["run_id"] == run_id and started <= c["measured_at"] <= finished
        assert c["value"] > 0 and c["errors"] == 0 and c["count"] > 0, c
    r = redis.Redis.from_url(stack.redis_url)
    assert not list(r.scan_iter(f"bench:{run_id}:*"))
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    deadline = time.monotonic() + 15  # topic deletion is asynchronous in the broker
    while f"_bench.ceiling.{run_id}" in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.5)
    assert f"_bench.ceiling.{run_id}" not in admin.list_topics(timeout=10).topics
    report = {"schema": "x", "run_id": run_id, "scenario": "t", "started_at": started, "finished_at": finished,
              "machine": {}, "git": {}, "error_threshold": 0.01, "figures": {},
              "ceilings": {c["name"]: c for c in measured}}
    assert check_well_formed(report) == []


def test_kafka_probe_reads_end_offsets(stack):
    probe = KafkaProbe(stack, ["posts.v1", "no.such.topic"], 0.0)
    ends, committed = probe.sample()
    assert "no.such.topic" not in ends
    assert all(v >= 0 for v in ends.values()) and all(v >= 0 for v in committed.values())
