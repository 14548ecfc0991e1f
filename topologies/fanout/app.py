"""Fan-out worker: posts.v1 -> post content, author index, follower timelines, timeline-updates.v1."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from core.feed import ADD, EDIT, TimelineWrite
from core.settings import Settings
from stores import graph
from stores import posts as post_store
from stores import timelines as tls
from streams.catalog import POSTS, TIMELINE_UPDATES
from streams.errors import PoisonRecord
from streams.serde import Serde
from topologies.fanout.logic import PostRef, plan_delete, plan_post
from topologies.fanout.runtime import Stores, source_of, start_emit
from topologies.faust_runtime import (
    SourceRecord,
    catalog_topic,
    create_faust_app,
    make_serde,
    register_batch_agent,
    run_worker,
)

log = logging.getLogger(__name__)
POST_RECORDS = ("PostCreated", "PostEdited", "PostDeleted")
Results = list[tuple[SourceRecord, list[TimelineWrite]]]
Process = Callable[[list[SourceRecord]], Results]
Emit = Callable[[Serde, faust.TopicT, Results, str], Awaitable[Awaitable[Any] | None]]


def check_post_record(rec: SourceRecord) -> None:
    """Raise PoisonRecord for a record that does not belong on posts.v1."""
    if rec.name not in POST_RECORDS:
        raise PoisonRecord(f"unexpected record {rec.name} on {rec.topic}")


def process_posts(st: Stores, recs: list[SourceRecord]) -> Results:
    """Apply a batch of posts.v1 records, in order: one Cassandra round, two Redis pipelines.

    Order matters for the follow/post race: the author index is written (and awaited) before the
    follower sets are read, and the graph worker adds the edge before reading the index.
    """
    for rec in recs:
        check_post_record(rec)
    tl = st.tl
    post_store.write_posts_durable(st.s, [(rec.name, rec.value) for rec in recs])
    authors = {rec.value["author_id"] for rec in recs}
    friends_of = {rec.value["author_id"] for rec in recs
                  if rec.name != "PostDeleted" and rec.value["visibility"] == "FRIENDS"}
    fol, fr = graph.snapshot(st.r, authors, friends_of)
    readers = sorted(set().union(*(fol[a] for a in authors)))
    seen = tls.last_seen(st.r, readers)
    now = int(time.time() * 1000)
    batch = tls.TimelineBatch(st.r, tl.timeline_cap)
    out: Results = []
    wm: dict[tuple[str, int], int] = {}
    for rec in recs:
        v = rec.value
        post_store.queue_cache_update(batch.pipeline, rec.name, v, tl.author_cache_cap)
        if rec.name == "PostDeleted":
            writes = plan_delete(v["post_id"], v["author_id"], fol[v["author_id"]])
        else:
            post = PostRef(v["post_id"], v["author_id"], v["visibility"])
            plan = plan_post(post, ADD if rec.name == "PostCreated" else EDIT,
                             fol[post.author_id], fr.get(post.author_id, set()), seen, now, tl.policy)
            batch.evict(plan.inactive)
            writes = plan.writes
        batch.writes(writes, source_of(rec))
        wm[(rec.topic, rec.partition)] = rec.offset
        out.append((rec, writes))
    batch.run(wm)
    return out


def create_app(settings: Settings, *, app_id: str | None = None, serde: Serde | None = None,
               broker: str | None = None, process: Process | None = None,
               emit: Emit | None = None) -> faust.App:
    """Build the fan-out Faust app: one batching agent on posts.v1.

    Group and offset reset come from ``settings`` (:func:`topologies.faust_runtime.create_faust_app`),
    as do the timeline knobs. Test seams: ``serde``, ``broker``, ``process`` (applies a batch to the
    stores, run in a thread; default :func:`process_posts`) and ``emit`` (hands the batch's
    TimelineUpdates to Kafka; default :func:`topologies.fanout.runtime.start_emit`).
    """
    app = create_faust_app(settings, "fanout", app_id=app_id, broker=broker)
    serde = serde or make_serde(settings)
    st = Stores(settings, settings)
    run_batch = process or (lambda recs: process_posts(st, recs))
    send = emit or start_emit
    updates = catalog_topic(app, TIMELINE_UPDATES, settings)

    async def handle(recs: list[SourceRecord]) -> Awaitable[Any] | None:
        t0 = time.time()
        results = await asyncio.to_thread(run_batch, recs)
        done = await send(serde, updates, results, "fanout") if settings.emit_timeline_updates else None
        if settings.log_batches:  # lag: record timestamp -> batch start; stores: visible in Redis
            log.info("batch n=%d lag_ms=%.1f stores_ms=%.1f", len(recs),
                     t0 * 1000 - recs[0].timestamp_ms, (time.time() - t0) * 1000)
        return done

    register_batch_agent(app, catalog_topic(app, POSTS, settings), handle, serde=serde,
                         name="fanout-posts", validate=check_post_record)
    return app


def run(settings: Settings) -> None:
    """Run the fan-out worker until interrupted."""
    run_worker(create_app(settings))
