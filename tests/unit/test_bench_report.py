"""Bench report: statistics, ratios to same-run ceilings, refusal over the threshold, outputs, scale model."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from bench import report as rep
from bench import scale
from bench.harness import active_rate, feed_items

RUN = "run-a"


def _ceilings():
    return {
        "api_noop": rep.ceiling("api_noop", RUN, "2026-01-01T00:00:01+00:00",
                                rep.summarize([rep.Sample(0.1, 0.002, True)] * 100, 0.1), "req/s", "noop"),
        "redis_zadd_pipelined": rep.ceiling("redis_zadd_pipelined", RUN, "2026-01-01T00:00:02+00:00",
                                            {"rate_per_s": 50_000.0, "count": 100_000, "errors": 0,
                                             "error_rate": 0.0, "duration_s": 2.0}, "cmds/s", "zadd"),
    }


def _report(figures):
    return {"schema": rep.SCHEMA, "run_id": RUN, "scenario": "smoke", "started_at": "2026-01-01T00:00:00+00:00",
            "finished_at": "2026-01-01T00:01:00+00:00", "machine": rep.machine_info(),
            "git": {"commit": "abc", "dirty": False}, "error_threshold": 0.01, "ceilings": _ceilings(),
            "figures": figures, "phases": [{"name": "writes", "start_s": 0, "end_s": 2}],
            "timeseries": rep.bucket_series([rep.Sample(t / 10, 0.01 + t / 1000, True, "write")
                                             for t in range(30)]),
            "scale": scale.model(scale.Measured(api_writes_per_core=1000)), "notes": ["n"]}


def _writes(errors=0, n=1000):
    samples = [rep.Sample(i / 100, 0.001 * (1 + i % 50), i >= errors, "write") for i in range(n)]
    return rep.summarize(samples, 10.0)


def test_percentiles_match_numpy():
    xs = list(np.random.default_rng(1).exponential(size=999))
    for q in (50, 95, 99):
        assert rep.percentile(xs, q) == pytest.approx(np.percentile(xs, q))
    lat = rep.latency_ms([0.001, 0.002, 0.010])
    assert lat["max"] == 10.0 and lat["p50"] == 2.0


def test_summary_counts_only_successes_in_rate_and_latency():
    st = rep.summarize([rep.Sample(0, 0.5, False), rep.Sample(0, 0.001, True), rep.Sample(0, 0.003, True)], 2.0)
    assert st["count"] == 3 and st["errors"] == 1 and st["rate_per_s"] == 1.0
    assert st["latency_ms"]["max"] == 3.0


def test_every_ratio_is_against_a_ceiling_of_the_same_run():
    c = _ceilings()
    f = rep.figure(_writes(), "req/s", c, ["api_noop", "redis_zadd_pipelined"])
    assert f["status"] == "ok"
    for r in f["ratios"]:
        ceil = c[r["ceiling"]]
        assert (r["ceiling_run_id"], r["ceiling_measured_at"]) == (ceil["run_id"], ceil["measured_at"])
        assert r["value"] == pytest.approx(f["value"] / ceil["value"])
    report = _report({"writes": f})
    assert rep.check_well_formed(report) == []


def test_a_ratio_against_another_runs_ceiling_is_caught():
    f = rep.figure(_writes(), "req/s", _ceilings(), ["api_noop"])
    report = _report({"writes": f})
    stale = copy.deepcopy(report)
    stale["ceilings"]["api_noop"]["run_id"] = "run-b"
    assert any("not run-a" in p or "another measurement" in p for p in rep.check_well_formed(stale))
    tampered = copy.deepcopy(report)
    tampered["figures"]["writes"]["ratios"][0]["value"] *= 2
    assert any("ratio" in p for p in rep.check_well_formed(tampered))
    outside = copy.deepcopy(report)
    outside["ceilings"]["api_noop"]["measured_at"] = "2025-12-31T00:00:00+00:00"
    outside["figures"]["writes"]["ratios"][0]["ceiling_measured_at"] = "2025-12-31T00:00:00+00:00"
    assert any("outside the run" in p for p in rep.check_well_formed(outside))


def test_figures_above_the_error_threshold_are_refused():
    ok = rep.figure(_writes(errors=10), "req/s", _ceilings(), ["api_noop"], threshold=0.01)
    assert ok["status"] == "ok" and ok["value"] > 0  # exactly 1% is allowed
    bad = rep.figure(_writes(errors=11), "req/s", _ceilings(), ["api_noop"], threshold=0.01)
    assert bad["status"] == "refused" and bad["value"] is None and bad["latency_ms"] is None
    assert "1.10%" in bad["reason"] and "threshold" in bad["reason"] and "ratios" not in bad
    text = rep.summary_text(_report({"writes": bad}))
    assert "REFUSED" in text and "above the 1.0% threshold" in text
    forged = _report({"writes": {**ok, "error_rate": 0.5}})
    assert any("above the error threshold" in p for p in rep.check_well_formed(forged))


def test_a_ceiling_with_errors_gives_no_ratio():
    c = _ceilings()
    c["api_noop"] = {**c["api_noop"], "error_rate": 0.2}
    f = rep.figure(_writes(), "req/s", c, ["api_noop"])
    assert f["ratios"][0]["value"] is None and "ceiling" in f["ratios"][0]["reason"]


def test_save_writes_json_png_and_summary(tmp_path):
    report = _report({"writes": rep.figure(_writes(), "req/s", _ceilings(), ["api_noop"]),
                      "feed_reads": rep.not_available("read API missing")})
    paths = rep.save(report, tmp_path)
    assert json.loads(paths["latest_json"].read_text())["run_id"] == RUN
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = paths["latest_txt"].read_text()
    assert "read API missing" in text and "api_noop" in text and "x api_noop" in text


def test_scale_model_arithmetic():
    m = scale.Measured(api_writes_per_core=500, api_reads_per_core=1000, fanout_deliveries_per_core=4000,
                       deliveries_per_post=12.0, redis_ops_per_node=100_000, redis_reads_per_node=50_000,
                       kafka_msgs_per_broker=80_000, cassandra_writes_per_node=20_000, feed_p99_ms=250)
    t = scale.Targets(utilisation=0.5)
    out = scale.model(m, t)
    lines = {line["component"]: line for line in out["lines"]}
    assert lines["API cores (writes)"]["units"] == math.ceil(50_000 / (500 * 0.5)) == 200
    assert lines["API cores (feed reads)"]["units"] == 1000
    assert lines["fan-out worker cores"]["units"] == math.ceil(120_000 / 2000) == 60
    assert lines["Redis nodes (timeline writes)"]["units"] == math.ceil(120_000 / 50_000)
    assert lines["Redis nodes (feed reads)"]["units"] == math.ceil(1_500_000 / 25_000)
    assert lines["Kafka brokers"]["units"] == math.ceil(170_000 / 40_000)
    assert lines["Cassandra nodes"]["units"] == math.ceil(100_000 / 10_000)
    assert "120,000/s" in lines["fan-out worker cores"]["arithmetic"]
    assert out["feed_p99"]["verdict"] == "misses target"
    assert out["total_platform_cores"] == 200 + 1000 + 60


def test_scale_model_says_what_it_cannot_compute():
    out = scale.model(scale.Measured(redis_reads_per_node=10_000))
    lines = {line["component"]: line for line in out["lines"]}
    assert lines["API cores (writes)"]["units"] is None
    assert "not computable" in lines["fan-out worker cores"]["arithmetic"]
    assert lines["Redis nodes (feed reads)"]["units"] == 250
    assert out["feed_p99"]["verdict"] == "not measured"


def test_active_rate_ignores_idle_time():
    series = [(0, 0), (1, 0), (2, 100), (3, 300), (4, 300), (5, 300)]
    st = active_rate(series)
    assert st["count"] == 300 and st["rate_per_s"] == 150.0
    assert active_rate([(0, 5), (1, 5)])["count"] == 0


def test_feed_items_reads_ids_and_cursor():
    assert feed_items({"items": [{"post_id": 3}, {"post": {"id": "4"}}], "next_cursor": "c1"}) == ([3, 4], "c1")
    assert feed_items({"detail": "nope"}) == ([], None)
