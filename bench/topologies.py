"""``feedstream bench --scenario topologies``: each topology draining a backlog, against same-run ceilings.

On the stack in ``FEEDSTREAM_*`` (its own keyspace ``fs_bench_fanout`` and Redis db 8), one worker
per topology, one after the other (bounded: ``--size`` events each, 600 s per drain):

- **fan-out**: N PostCreated on a 5,000-user power-law graph (α 1.5, mean 50 followers, celebrity
  threshold 1,000) — deliveries/s, per worker CPU-second, ratios to pipelined ZADD, raw consume and
  raw Cassandra insert (:func:`bench.fanout.drain_report`);
- **write→visible** at 80 % of that drain's post rate: p50/p99 from produce to the ``feed:{r}``
  publish (:func:`bench.fanout.latency_run`, 20 authors × 20 followers);
- **graph**: N Followed between the same graph's users — events/s, per worker CPU-second, ratios
  to raw consume and raw Cassandra insert (a follow writes ~5 rows);
- **engagement**: one worker draining a backlog of N engagements on 500 power-law posts
  (:func:`bench.engagement_drain.run`) — events/s, per worker CPU-second, ratios to raw consume,
  the raw producer and Faust's own per-message cost (no-op handler), and the recount check.

The load average is recorded before and after; the machine is shared, so per-CPU figures are the
stable ones. Writes ``topologies.json`` to the results directory.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import ceilings, engagement_drain
from bench.fanout import drain_report, latency_run, load_graph, power_law_graph
from bench.fanout_drain import drain_topology, register
from core.events import new_event
from core.settings import Settings, isolated, with_overrides
from stores import redis as redis_store
from streams.catalog import GRAPH

GRAPH_ROWS_PER_FOLLOW = 5  # followers, following, 2 user_counts, edge_clocks


def follow_backlog(g: dict[str, list[str]], n: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """``n`` Followed events between ``g``'s users, none an existing or repeated edge."""
    rng = random.Random(seed)
    users = list(g)
    have = {(f, u) for u, fs in g.items() for f in fs}
    out: list[tuple[str, dict[str, Any]]] = []
    while len(out) < n:
        a, b = rng.sample(users, 2)
        if (a, b) not in have:
            have.add((a, b))
            out.append(("Followed", new_event(a, follower_id=a, followee_id=b)))
    return out


def graph_drain(base: Settings, s: Settings, events: int, profile: Path | None = None) -> dict[str, Any]:
    """One graph worker draining ``events`` Followed on a loaded power-law graph (``profile``: a
    py-spy flame graph of the worker, :func:`bench.fanout_drain.drain_topology`)."""
    r = redis_store.client(s)
    r.flushdb()
    seed = random.randrange(10**6)
    g = power_law_graph(5000, 50, 1.5, seed)
    load_graph(r, g)
    register(r, list(g))
    res = drain_topology(base, s, r, "graph", GRAPH.resolved(s).name, follow_backlog(g, events, seed),
                         [1] * events, knobs={}, profile=profile)
    cass = ceilings.cassandra_insert(s, ceilings.new_run_id(), duration_s=2.0)["value"]
    return {**res, "cassandra_insert_per_s": cass,
            "ratio_rows_to_cassandra": GRAPH_ROWS_PER_FOLLOW * res.get("events_per_s", 0) / cass}


def run(base: Settings, *, size: int = 3000, latency_s: float = 15.0,
        echo: Callable[[str], Any] = print) -> dict[str, Any]:
    """All four measurements; returns the report."""
    s = isolated(base, "fs_bench_fanout", 8)
    load = [os.getloadavg()]
    echo(f"fan-out: draining {size} posts")
    fan = drain_report(base, s, posts=size)
    rate = 0.8 * fan["drain"].get("posts_per_s", 0)
    echo(f"write->visible at 80 % of the drain rate: {rate:.1f} posts/s for {latency_s:.0f} s")
    knobs = with_overrides(s, celebrity_threshold=1000, inactive_days=10**6)
    lat = latency_run(base, s, knobs, rate, latency_s) if rate > 0 else {"error": "no drain rate"}
    echo(f"graph: draining {size} follows")
    gr = graph_drain(base, s, size)
    echo(f"engagement: draining {size} engagements")
    eng = engagement_drain.run(base, size)
    load.append(os.getloadavg())
    d = fan["drain"]
    summary = {
        "fanout_deliveries_per_s": d.get("deliveries_per_s"), "fanout_deliveries_per_cpu_s": d.get("deliveries_per_cpu_s"),
        "fanout_ratio_to_zadd": fan["ratio_to_zadd"], "fanout_ratio_to_raw_consume": d.get("consume_ratio"),
        "fanout_ratio_rows_to_cassandra": fan["ratio_posts_rows_to_cassandra"],
        "write_visible_p99_ms_at_80pct": lat.get("p99_ms"),
        "graph_events_per_s": gr.get("events_per_s"), "graph_events_per_cpu_s": gr.get("events_per_cpu_s"),
        "graph_ratio_to_raw_consume": gr.get("consume_ratio"), "graph_ratio_rows_to_cassandra": gr.get("ratio_rows_to_cassandra"),
        "engagement_events_per_s": eng.get("events_per_s"), "engagement_events_per_cpu_s": eng.get("events_per_cpu_s"),
        "engagement_ratio_to_raw_consume": eng.get("ratio_to_raw_consume"),
        "engagement_ratio_to_raw_producer": eng.get("ratio_to_raw_producer"),
        "engagement_ratio_per_cpu_s_to_faust_noop": eng.get("ratio_per_cpu_s_to_faust_noop"),
        "engagement_recount_mismatches": eng.get("recount_mismatches"),
    }
    return {"scenario": "topologies", "size": size, "load_average": load, "summary": summary,
            "fanout": fan, "latency_at_80pct": lat, "graph": gr,
            "engagement": eng}
