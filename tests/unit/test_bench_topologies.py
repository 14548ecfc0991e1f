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
