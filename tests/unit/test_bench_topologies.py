"""bench.topologies: the graph backlog is new edges only (a re-follow would be a no-op, not work)."""

from __future__ import annotations

from bench.fanout import power_law_graph
from bench.topologies import follow_backlog


def test_follow_backlog_is_new_distinct_edges_between_the_graph_users() -> None:
    g = power_law_graph(200, 20, 1.5, 7)
    events = follow_backlog(g, 500, 7)
    pairs = [(v["follower_id"], v["followee_id"]) for name, v in events if name == "Followed"]
    assert len(pairs) == 500 and len(set(pairs)) == 500
    existing = {(f, u) for u, fs in g.items() for f in fs}
    assert not set(pairs) & existing
    assert all(a != b and a in g and b in g for a, b in pairs)
    assert all(v["actor_id"] == v["follower_id"] for _, v in events)


def test_the_fanout_drain_reports_posts_and_deliveries_once(monkeypatch) -> None:
    from bench import fanout_drain

    generic = {"events": 3, "events_timed": 2, "weight_timed": 80, "weight_per_s": 8.0, "weight_per_cpu_s": 16.0,
               "events_per_s": 0.2, "events_per_cpu_s": 0.4, "wall_s": 10.0, "drained": True}
    monkeypatch.setattr(fanout_drain, "drain_topology", lambda *a, **k: dict(generic))
    monkeypatch.setattr(fanout_drain, "register", lambda r, users: None)
    posts = [{"post_id": i, "author_id": "a"} for i in range(3)]
    res = fanout_drain.drain(None, None, None, posts, {0: 40, 1: 40, 2: 1}, knobs={})  # type: ignore[arg-type]
    assert res == {"posts": 3, "posts_timed": 2, "deliveries_timed": 80, "deliveries_per_s": 8.0,
                   "deliveries_per_cpu_s": 16.0, "posts_per_s": 0.2, "posts_per_cpu_s": 0.4, "wall_s": 10.0,
                   "drained": True}
