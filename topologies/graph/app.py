"""Social-graph worker: graph.v1 -> graph sets (Redis + Cassandra), negative sets, back-fill, purge."""

from __future__ import annotations

import logging

import faust

from core.feed import TimelineWrite
from core.settings import Settings
from stores import graph
from stores import posts as post_store
from stores import redis as redis_store
from stores import timelines as tls
from streams.catalog import GRAPH
from streams.errors import PoisonRecord
from streams.serde import Serde
from topologies.fanout.logic import plan_backfill, plan_purge
from topologies.fanout.runtime import (
    Emit,
    Process,
    Results,
    Stores,
    occurred_ms,
    source_of,
    timeline_app,
)
from topologies.faust_runtime import (
    SourceRecord,
    run_worker,
)
from topologies.graph.logic import BACKFILL, GRAPH_RECORDS, PURGE, UnknownGraphEvent, plan_graph

log = logging.getLogger(__name__)


def process_graph(st: Stores, rec: SourceRecord) -> list[TimelineWrite]:
    """Apply one graph.v1 event to the graph stores and reader timelines; return timeline writes."""
    r, s, tl = st.r, st.s, st.settings
    blocked = pending = False
    pair = _pair(rec)
    if pair is not None:
        graph.ensure_loaded(r, s, pair)  # a Redis that lost its data: reload both users' sets first
        blocked = graph.is_blocked_either_way(r, *pair)
    if rec.name in ("FriendRequestAccepted", "FriendRequestDeclined"):
        pending = graph.has_pending_request(r, s, rec.value["from_id"], rec.value["to_id"])
    plan = plan_graph(rec.name, rec.value, blocked=blocked, pending=pending)  # raises NoPendingRequest
    at = occurred_ms(rec.value)
    for op, a, b in plan.edges:
        getattr(st.graph, op)(a, b, *((at,) if op in ("follow", "befriend", "block", "request_sent") else ()))
    for reader, author, hidden in plan.negatives:
        tls.hide_author(r, reader, author, hidden)
    writes: list[TimelineWrite] = []
    for kind, reader, author in plan.timelines:
        if kind == BACKFILL:
            if graph.is_celebrity(r, author, tl.celebrity_threshold):
                continue  # merged at read time instead
            # the edge is already written: read the index after it (closes the follow/post race)
            recent = post_store.recent_author_posts(s, author, tl.backfill_limit * 2)
            writes += plan_backfill(reader, author, recent, follows=True,
                                    is_friend=bool(r.sismember(graph.k_friends(author), reader)),
                                    limit=tl.backfill_limit)
        elif kind == PURGE:
            ids = [pid for pid, _ in post_store.recent_author_posts(s, author, tl.timeline_cap)]
            writes += plan_purge(reader, author, ids)
    tls.apply_writes(r, writes, cap=tl.timeline_cap, source=source_of(rec))
    return writes


def check_graph_record(rec: SourceRecord) -> None:
    """Raise PoisonRecord for a record that does not belong on graph.v1."""
    if rec.name not in GRAPH_RECORDS:
        raise UnknownGraphEvent(f"unexpected record {rec.name} on {rec.topic}")


def _pair(rec: SourceRecord) -> tuple[str, str] | None:
    v = rec.value
    for a, b in (("follower_id", "followee_id"), ("from_id", "to_id")):
        if a in v:
            return v[a], v[b]
    return None


def process_graph_batch(st: Stores, recs: list[SourceRecord]) -> Results:
    """Apply graph.v1 records one after the other (each may depend on the last); return their writes.

    A record refused before any side effect (:class:`PoisonRecord`, e.g. an accept without a pending
    request) comes back with its error instead of writes, for the app to dead-letter.
    """
    if redis_store.ensure_epoch(st.r)[1]:
        log.warning("redis:epoch was absent: Redis is new or lost its data; graph sets reload lazily")
    out: Results = []
    for rec in recs:
        try:
            out.append((rec, process_graph(st, rec)))
        except PoisonRecord as exc:
            out.append((rec, exc))
    return out


def create_app(settings: Settings, *, app_id: str | None = None, serde: Serde | None = None,
               broker: str | None = None, process: Process | None = None,
               emit: Emit | None = None) -> faust.App:
    """Build the social-graph Faust app: one batching agent on graph.v1 (batches of up to 200).

    Group and offset reset come from ``settings`` (:func:`topologies.faust_runtime.create_faust_app`),
    as do the timeline knobs. Test seams: ``serde``, ``broker``, ``process`` (applies a batch to the
    stores, run in a thread; default :func:`process_graph_batch`) and ``emit`` (hands the batch's
    TimelineUpdates to Kafka; default :func:`topologies.fanout.runtime.start_emit`).
    """
    st = Stores(settings)
    return timeline_app(settings, "graph", GRAPH, "graph-edges",
                        process=process or (lambda recs: process_graph_batch(st, recs)),
                        validate=check_graph_record, app_id=app_id, serde=serde, broker=broker, emit=emit,
                        max_batch=200)


def run(settings: Settings) -> None:
    """Run the social-graph worker until interrupted."""
    run_worker(create_app(settings))
