"""Fan-out worker: posts.v1 -> post content, author index, follower timelines, timeline-updates.v1."""

from __future__ import annotations

import asyncio
import time

import faust

from feedstream.settings import Settings
from stores import graph
from stores import timelines as tls
from stores.timelines import TimelineSettings
from streams.catalog import POSTS, TIMELINE_UPDATES
from streams.errors import PoisonRecord
from topologies.fanout.logic import ADD, EDIT, PostRef, TimelineWrite, plan_delete, plan_post
from topologies.fanout.runtime import Stores, emit_updates, source_of
from topologies.faust_runtime import (SourceRecord, catalog_topic, create_faust_app, make_serde,
                                      register_agent, run_worker)


def process_post(st: Stores, rec: SourceRecord) -> list[TimelineWrite]:
    """Apply one posts.v1 event to the stores; return the timeline writes it made."""
    v, tl = rec.value, st.tl
    if rec.name == "PostDeleted":
        tls.delete_post(st.s, st.r, v["post_id"], v["author_id"])
        writes = plan_delete(v["post_id"], v["author_id"], graph.followers(st.r, v["author_id"]))
        tls.apply_writes(st.r, writes, cap=tl.timeline_cap, source=source_of(rec))
        return writes
    if rec.name not in ("PostCreated", "PostEdited"):
        raise PoisonRecord(f"unexpected record {rec.name} on {rec.topic}")
    tls.put_post(st.s, st.r, v, edited=rec.name == "PostEdited")
    tls.trim_author_cache(st.r, v["author_id"], tl.author_cache_cap)
    post = PostRef(v["post_id"], v["author_id"], v["visibility"])
    followers = sorted(graph.followers(st.r, post.author_id))
    friends = graph.friends(st.r, post.author_id) if post.visibility == "FRIENDS" else set()
    plan = plan_post(post, ADD if rec.name == "PostCreated" else EDIT, followers, friends,
                     tls.last_seen(st.r, followers), int(time.time() * 1000), tl.policy)
    tls.evict_inactive(st.r, plan.inactive)
    tls.apply_writes(st.r, plan.writes, cap=tl.timeline_cap, source=source_of(rec))
    return plan.writes


def create_app(settings: Settings, *, app_id: str | None = None,
               tl: TimelineSettings | None = None) -> faust.App:
    """Build the fan-out Faust app (one agent on posts.v1)."""
    tl = tl or TimelineSettings()
    app = create_faust_app(settings, "fanout", app_id=app_id or f"feedstream-fanout{tl.topology_group_suffix}",
                           consumer_auto_offset_reset=tl.topology_offset_reset)
    serde = make_serde(settings)
    st = Stores(settings, tl)
    updates = catalog_topic(app, TIMELINE_UPDATES, settings)

    async def handle(rec: SourceRecord) -> None:
        writes = await asyncio.to_thread(process_post, st, rec)
        if tl.emit_timeline_updates:
            await emit_updates(serde, updates, writes, rec, "fanout")
        await asyncio.to_thread(tls.mark_watermark, st.r, rec.topic, rec.partition, rec.offset)

    register_agent(app, catalog_topic(app, POSTS, settings), handle, serde=serde, name="fanout-posts")
    return app


def run(settings: Settings) -> None:
    """Run the fan-out worker until interrupted."""
    run_worker(create_app(settings))
