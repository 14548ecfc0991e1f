"""Social-graph worker: graph.v1 -> graph sets (Redis + Cassandra), negative sets, back-fill, purge."""

from __future__ import annotations

import asyncio

import faust

from feedstream.settings import Settings
from stores import graph
from stores import timelines as tls
from stores.timelines import TimelineSettings
from streams.catalog import GRAPH, TIMELINE_UPDATES
from topologies.fanout.logic import TimelineWrite, plan_backfill, plan_purge
from topologies.fanout.runtime import Stores, emit_updates, occurred_ms, source_of
from topologies.faust_runtime import (SourceRecord, catalog_topic, create_faust_app, make_serde,
                                      register_agent, run_worker)
from topologies.graph.logic import BACKFILL, PURGE, plan_graph


def process_graph(st: Stores, rec: SourceRecord) -> list[TimelineWrite]:
    """Apply one graph.v1 event to the graph stores and reader timelines; return timeline writes."""
    r, s, tl = st.r, st.s, st.tl
    blocked = False
    pair = _pair(rec)
    if pair is not None:
        blocked = graph.is_blocked_either_way(r, *pair)
    plan = plan_graph(rec.name, rec.value, blocked=blocked)
    at = occurred_ms(rec.value)
    for op, a, b in plan.edges:
        getattr(st.graph, op)(a, b, *((at,) if op in ("follow", "befriend", "block") else ()))
    for reader, author, hidden in plan.negatives:
        tls.hide_author(r, reader, author, hidden)
    writes: list[TimelineWrite] = []
    for kind, reader, author in plan.timelines:
        if kind == BACKFILL:
            if graph.is_celebrity(r, author, tl.celebrity_threshold):
                continue  # merged at read time instead
            recent = tls.author_posts(s, author, None, tl.backfill_limit * 2)
            writes += plan_backfill(reader, author, recent, follows=True,
                                    is_friend=bool(r.sismember(graph.k_friends(author), reader)),
                                    limit=tl.backfill_limit)
        elif kind == PURGE:
            writes += plan_purge(reader, author, tls.timeline_post_ids_of(r, s, reader, author, tl.timeline_cap))
    tls.apply_writes(r, writes, cap=tl.timeline_cap, source=source_of(rec))
    return writes


def _pair(rec: SourceRecord) -> tuple[str, str] | None:
    v = rec.value
    for a, b in (("follower_id", "followee_id"), ("from_id", "to_id")):
        if a in v:
            return v[a], v[b]
    return None


def create_app(settings: Settings, *, app_id: str | None = None,
               tl: TimelineSettings | None = None) -> faust.App:
    """Build the social-graph Faust app (one agent on graph.v1)."""
    tl = tl or TimelineSettings()
    app = create_faust_app(settings, "graph", app_id=app_id or f"feedstream-graph{tl.topology_group_suffix}",
                           consumer_auto_offset_reset=tl.topology_offset_reset)
    serde = make_serde(settings)
    st = Stores(settings, tl)
    updates = catalog_topic(app, TIMELINE_UPDATES, settings)

    async def handle(rec: SourceRecord) -> None:
        writes = await asyncio.to_thread(process_graph, st, rec)
        if tl.emit_timeline_updates:
            await emit_updates(serde, updates, writes, rec, "graph")

    register_agent(app, catalog_topic(app, GRAPH, settings), handle, serde=serde, name="graph-edges")
    return app


def run(settings: Settings) -> None:
    """Run the social-graph worker until interrupted."""
    run_worker(create_app(settings))
