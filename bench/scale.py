"""Scale model: from rates measured per core (and per engine node) to the cores and nodes the targets need.

Every line carries its arithmetic as text, so the report shows how each number was reached.
A line whose input was not measured says so instead of guessing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Targets:
    """The design document's targets, and the utilisation each unit is planned at."""

    posts_per_s: float = 10_000
    writes_per_s: float = 50_000
    feed_reads_per_s: float = 500_000
    feed_p99_ms: float = 200
    utilisation: float = 0.6         # plan every core/node at 60% busy, leaving headroom for p99
    cassandra_stmts_per_write: float = 2.0
    redis_cmds_per_feed_read: float = 3.0
    deliveries_per_post: float | None = None  # None: use the fan-out factor measured in the run


@dataclass(frozen=True)
class Measured:
    """Per-core and per-node rates from one bench run (None: not measured in that run)."""

    api_writes_per_core: float | None = None
    api_reads_per_core: float | None = None
    fanout_deliveries_per_core: float | None = None
    deliveries_per_post: float | None = None
    redis_ops_per_node: float | None = None         # pipelined ZADD ceiling: Redis is one core
    redis_reads_per_node: float | None = None       # ZREVRANGE ceiling
    kafka_msgs_per_broker: float | None = None      # raw producer ceiling against one broker
    cassandra_writes_per_node: float | None = None  # raw INSERT ceiling against one node
    feed_p99_ms: float | None = None


def _units(need: float, per_unit: float | None, util: float, what: str, per: str) -> dict[str, Any]:
    if per_unit is None or per_unit <= 0:
        return {"component": what, "units": None, "arithmetic": f"not computable: {per} was not measured"}
    units = max(1, math.ceil(need / (per_unit * util)))
    return {"component": what, "units": units, "need_per_s": need, "per_unit_per_s": per_unit,
            "arithmetic": f"ceil({need:,.0f}/s / ({per_unit:,.0f}/s per {per} x {util:.0%} utilisation)) "
                          f"= {units}"}


def model(m: Measured, t: Targets = Targets()) -> dict[str, Any]:
    """Return the units each component needs for the targets, with the arithmetic of each line."""
    u = t.utilisation
    fanout = t.deliveries_per_post if t.deliveries_per_post is not None else m.deliveries_per_post
    deliveries = t.posts_per_s * fanout if fanout is not None else None
    engagement_writes = max(0.0, t.writes_per_s - t.posts_per_s)
    lines = [
        _units(t.writes_per_s, m.api_writes_per_core, u, "API cores (writes)", "API core"),
        _units(t.feed_reads_per_s, m.api_reads_per_core, u, "API cores (feed reads)", "API core"),
    ]
    if deliveries is None:
        lines.append({"component": "fan-out worker cores", "units": None,
                      "arithmetic": "not computable: the fan-out factor (deliveries per post) was not measured"})
        lines.append({"component": "Redis nodes (timeline writes)", "units": None,
                      "arithmetic": "not computable: the fan-out factor was not measured"})
    else:
        lines.append(_units(deliveries, m.fanout_deliveries_per_core, u, "fan-out worker cores",
                            "fan-out core"))
        lines[-1]["arithmetic"] = f"deliveries = {t.posts_per_s:,.0f} posts/s x {fanout:.1f} = " \
                                  f"{deliveries:,.0f}/s; " + lines[-1]["arithmetic"]
        lines.append(_units(deliveries, m.redis_ops_per_node, u, "Redis nodes (timeline writes)",
                            "Redis node (pipelined ZADD)"))
    redis_reads = t.feed_reads_per_s * t.redis_cmds_per_feed_read
    lines.append(_units(redis_reads, m.redis_reads_per_node, u, "Redis nodes (feed reads)",
                        "Redis node (ZREVRANGE)"))
    lines[-1]["arithmetic"] = f"{t.feed_reads_per_s:,.0f} reads/s x {t.redis_cmds_per_feed_read:g} " \
                              f"commands = {redis_reads:,.0f}/s; " + lines[-1]["arithmetic"]
    kafka_msgs = t.writes_per_s + (deliveries or 0.0)
    lines.append(_units(kafka_msgs, m.kafka_msgs_per_broker, u, "Kafka brokers", "broker (raw producer)"))
    lines[-1]["arithmetic"] = f"{t.writes_per_s:,.0f} writes/s + {deliveries or 0:,.0f} timeline " \
                              f"updates/s = {kafka_msgs:,.0f} msgs/s; " + lines[-1]["arithmetic"]
    cass = (t.posts_per_s + engagement_writes) * t.cassandra_stmts_per_write
    lines.append(_units(cass, m.cassandra_writes_per_node, u, "Cassandra nodes", "node (raw INSERT)"))
    lines[-1]["arithmetic"] = f"({t.posts_per_s:,.0f} posts + {engagement_writes:,.0f} other writes)/s x " \
                              f"{t.cassandra_stmts_per_write:g} statements = {cass:,.0f}/s; " \
                              + lines[-1]["arithmetic"]
    p99 = m.feed_p99_ms
    latency = {"target_ms": t.feed_p99_ms, "measured_ms": p99,
               "verdict": "not measured" if p99 is None else
               ("meets target" if p99 < t.feed_p99_ms else "misses target")}
    cores = sum(line["units"] for line in lines if line["units"] and "cores" in line["component"])
    return {"targets": asdict(t), "measured": asdict(m), "lines": lines, "feed_p99": latency,
            "total_platform_cores": cores}
