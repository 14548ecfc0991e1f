"""Trending dedup by event id: the horizon covers every window an event can still update."""

from __future__ import annotations

from topologies.trending.logic import WindowSpec, dedup_horizon_ms, dedup_key


def test_horizon_outlives_every_window_that_still_takes_the_event():
    spec = WindowSpec(20_000, 10_000, lateness_ms=10_000, out_of_orderness_ms=2_000)
    h = dedup_horizon_ms([spec, WindowSpec(10_000, 5_000)])
    assert h == 32_000
    for ts in (0, 1, 9_999, 10_000, 123_456):
        # when the id is forgotten (watermark ts + h), and even ooo earlier: every window of ts expired
        assert spec.classify(ts, ts + h - spec.out_of_orderness_ms) == "too_late"
    assert spec.classify(0, spec.size_ms + spec.lateness_ms - 2) != "too_late"  # a shorter hold loses


def test_key_separates_items_of_one_event_and_events():
    assert dedup_key("e1", "hashtags", "a") != dedup_key("e1", "hashtags", "b")
    assert dedup_key("e1", "posts", "1") == dedup_key("e1", "posts", "1")
    assert dedup_key("e1", "posts", "1") != dedup_key("e2", "posts", "1")
