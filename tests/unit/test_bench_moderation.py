"""bench.moderation's figures from what a run observed."""

from __future__ import annotations

from bench.moderation import impression_share, percentile, summary


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert percentile(list(map(float, range(1, 101))), 99) == 99.0


def test_shares_and_ratio() -> None:
    feeds = [[1, 2, 3], [2, 4], [9]]
    assert impression_share(feeds, {9}) == (1, 6)
    out = summary(feeds, spam={9, 10}, legit={1, 2, 3, 4}, hidden={4, 10}, latencies_ms=[10, 20, 30],
                  events=6, worker_cpu_s=2.0, ceiling_per_cpu_s=30.0)
    assert out["spam_impression_share"] == 1 / 6 and out["legit_hidden_share"] == 0.25
    assert out["spam_hidden_share"] == 0.5 and out["verdict_latency_ms"] == {"p50": 20.0, "p99": 30.0, "n": 3}
    assert out["events_per_worker_cpu_s"] == 3.0 and out["ratio_to_ceiling"] == 0.1
