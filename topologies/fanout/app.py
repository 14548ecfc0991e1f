"""Fan-out worker: posts.v1 -> post content, author index, follower timelines, timeline-updates.v1."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import faust

from core.clock import DAY_MS
from core.feed import ADD, EDIT
from core.settings import Settings
from stores import graph
from stores import posts as post_store
from stores import redis as redis_store
from stores import timelines as tls
from streams.catalog import POSTS
from streams.errors import PoisonRecord
from streams.serde import Serde
from topologies.fanout.logic import (
    PostRef,
    UnknownAuthor,
    check_post_refs,
    plan_delete,
    plan_post,
    superseded,
)
from topologies.fanout.runtime import Emit, Process, Results, Stores, source_of, timeline_app
from topologies.faust_runtime import (
    SourceRecord,
    run_worker,
)
from topologies.graph.app import UserCheck, UsersProgress, registered_lookup

log = logging.getLogger(__name__)
POST_RECORDS = ("PostCreated", "PostEdited", "PostDeleted")
# a batch gathers for up to 50 ms (not the runtime's 5): with a backlog, Faust hands the stream a
# few records per 5 ms under load, and each batch costs a fixed ~8 round trips (Cassandra, Redis)
BATCH_WITHIN_S = 0.05


def check_post_record(rec: SourceRecord) -> None:
    """Raise PoisonRecord for a record that does not belong on posts.v1."""
    if rec.name not in POST_RECORDS:
        raise PoisonRecord(f"unexpected record {rec.name} on {rec.topic}")


def author_named(rec: SourceRecord) -> list[str]:
    """The user a posts.v1 record needs registered: a PostCreated's author (an edit or delete
    needs its post created, :func:`topologies.fanout.logic.check_post_refs`)."""
    return [rec.value["author_id"]] if rec.name == "PostCreated" else []


def author_check(st: Stores, *, proven: bool = True) -> UserCheck:
    """Refuses PostCreated by authors not registered by ``occurred_at + grace`` (the graph
    worker's rule and grace, ``graph_user_grace_s``: users.v1 is not co-partitioned with posts.v1);
    ``proven``: only once the users topology's progress proves it (:class:`UserCheck`)."""
    return UserCheck(registered_lookup(st), int(st.settings.graph_user_grace_s * 1000), named=author_named,
                     progress=UsersProgress(st) if proven else None)


def process_posts(st: Stores, recs: list[SourceRecord], users: UserCheck | None = None) -> Results:
    """Apply a batch of posts.v1 records, in order: one Cassandra round, three Redis round trips.

    The Redis round trips (single Redis; a follower set walked in several chunks adds one each):
    the batch's reads (applied versions, the epoch, which authors' graph sets and caches are
    loaded), then the post cache updates with the first walk round, then the progress marks.

    Order matters for the follow/post race: the author index is written (and awaited) before the
    follower sets are read, and the graph worker adds the edge before reading the index.

    An edit or delete of a post that does not exist (or is another author's) is refused before any
    side effect (:func:`topologies.fanout.logic.check_post_refs`) and comes back with its reason, for
    the app to dead-letter; it is never materialised.
    """
    for rec in recs:
        check_post_record(rec)
    tl = st.settings
    out: Results = []
    every = recs
    if users is not None:  # before the post checks: a refused create does not make its post exist
        unknown = users.unknown(recs)
        out += [(rec, UnknownAuthor(f"PostCreated: author {', '.join(sorted(m))} never registered"))
                for rec, m in zip(recs, unknown) if m]
        recs = [rec for rec, m in zip(recs, unknown) if not m]
    refs = [rec.value["post_id"] for rec in recs if rec.name != "PostCreated"]
    stored = post_store.stored_owners(st.s, refs) if refs else {}
    refused = check_post_refs([(rec.name, rec.value) for rec in recs], stored)
    out += [(rec, why) for rec, why in zip(recs, refused) if why is not None]  # dead-lettered
    recs = [rec for rec, why in zip(recs, refused) if why is None]
    wm = {(rec.topic, rec.partition): rec.offset for rec in every}
    if not recs:
        tls.TimelineBatch(st.r, tl.timeline_cap).run(wm)
        return out
    pre = preflight(st.r, recs)
    # a re-delivered create/edit older than an applied edit or delete has no effect (issue 13)
    old = superseded([(rec.value["post_id"], post_store.version(rec.name, rec.value)) for rec in recs],
                     pre.applied)
    out += [(rec, []) for rec, stale in zip(recs, old) if stale]
    recs = [rec for rec, stale in zip(recs, old) if not stale]
    if not recs:
        tls.TimelineBatch(st.r, tl.timeline_cap).run(wm)
        return out
    post_store.write_posts_durable(st.s, [(rec.name, rec.value) for rec in recs])
    authors = {rec.value["author_id"] for rec in recs}
    if pre.cold_redis:
        log.warning("redis:epoch was absent: Redis is new or lost its data; hot views reload lazily")
    # a Redis that lost its data: reload the authors' follower sets and author caches first (the
    # caches from the author index, so after the batch's rows were written)
    graph.load(st.r, st.s, sorted(authors & set(pre.graph_unloaded)))
    post_store.refill_author_caches(st.r, st.s, sorted(authors & set(pre.caches_missing)), tl.author_cache_cap)
    batch = tls.TimelineBatch(st.r, tl.timeline_cap)
    for rec in recs:  # sent with the first walk round, ahead of its timeline writes
        post_store.queue_cache_update(batch.pipeline, rec.name, rec.value, tl.author_cache_cap)
    if batch.cluster:
        return out + plan_in_python(st, recs, authors, batch, wm)
    inactive = tl.policy.inactive_days * DAY_MS
    cutoff = int(time.time() * 1000) - inactive
    first: object = batch.pipeline
    for seg in segments(recs):
        done = tls.walk_fanout(st.r, [fanout_of(rec) for rec in seg], cap=tl.timeline_cap,
                               celebrity_threshold=tl.policy.celebrity_threshold, inactive_cutoff_ms=cutoff,
                               pipeline=first)
        first = None
        out += [(rec, writes) for rec, (writes, _) in zip(seg, done)]
    batch.run(wm)
    return out


@dataclass(frozen=True)
class Preflight:
    """What a batch reads from Redis before its side effects, in one round trip."""

    applied: dict[int, int]  # post id -> version of the newest event applied to its caches
    cold_redis: bool  # this batch created ``redis:epoch``: the Redis is new or lost its data
    graph_unloaded: list[str]  # authors whose graph sets are not loaded into this Redis
    caches_missing: list[str]  # authors whose ``ap:{a}`` cache is missing


def preflight(r: Any, recs: list[SourceRecord]) -> Preflight:
    """One pipeline of the batch's reads (:class:`Preflight`) for ``recs``' posts and authors."""
    authors = {rec.value["author_id"] for rec in recs}
    p = redis_store.pipeline(r)
    versions = post_store.queue_versions(p, (rec.value["post_id"] for rec in recs))
    epoch = redis_store.queue_epoch(p)
    graphs = graph.queue_unloaded(p, authors)
    caches = post_store.queue_missing_author_caches(p, authors)
    results = iter(p.execute())
    return Preflight(versions(results), epoch(results), graphs(results), caches(results))


def fanout_of(rec: SourceRecord) -> tls.PostFanout:
    """The server-side fan-out of one posts.v1 record."""
    v = rec.value
    op = {"PostCreated": ADD, "PostEdited": EDIT}.get(rec.name, "DELETE")
    return tls.PostFanout(v["post_id"], v["author_id"], op,
                          op != "DELETE" and v["visibility"] == "FRIENDS", source_of(rec))


def segments(recs: list[SourceRecord]) -> list[list[SourceRecord]]:
    """Runs of PostCreated, each edit or delete alone: a segment's posts are walked chunk by chunk
    together, where only ADDs of distinct posts may interleave (they commute); an edit or delete
    is applied after everything before it and before everything after it, as in the log."""
    out: list[list[SourceRecord]] = []
    for rec in recs:
        if rec.name == "PostCreated" and out and out[-1][-1].name == "PostCreated":
            out[-1].append(rec)
        else:
            out.append([rec])
    return out


def plan_in_python(st: Stores, recs: list[SourceRecord], authors: set[str], batch: tls.TimelineBatch,
                   wm: dict[tuple[str, int], int]) -> Results:
    """Redis Cluster: plan per follower in Python (follower sets, last-seen, friends read in one
    pipeline) and queue the plain per-reader commands, sent as one pipeline per node."""
    tl = st.settings
    friends_of = {rec.value["author_id"] for rec in recs
                  if rec.name != "PostDeleted" and rec.value["visibility"] == "FRIENDS"}
    fol, fr = graph.snapshot(st.r, authors, friends_of)
    readers = sorted(set().union(*(fol[a] for a in authors)) - authors)  # authors: always active
    seen = tls.last_seen(st.r, readers)
    now = int(time.time() * 1000)
    out: Results = []
    for rec in recs:
        v = rec.value
        if rec.name == "PostDeleted":
            writes = plan_delete(v["post_id"], v["author_id"], fol[v["author_id"]])
        else:
            post = PostRef(v["post_id"], v["author_id"], v["visibility"])
            plan = plan_post(post, ADD if rec.name == "PostCreated" else EDIT,
                             fol[post.author_id], fr.get(post.author_id, set()), seen, now, tl.policy)
            batch.evict(plan.inactive)
            writes = plan.writes
        batch.writes(writes, source_of(rec))
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
    st = Stores(settings)
    users = author_check(st)
    return timeline_app(settings, "fanout", POSTS, "fanout-posts",
                        process=process or (lambda recs: process_posts(st, recs, users)),
                        validate=check_post_record, app_id=app_id, serde=serde, broker=broker, emit=emit,
                        within_s=BATCH_WITHIN_S)


def run(settings: Settings) -> None:
    """Run the fan-out worker until interrupted."""
    run_worker(create_app(settings))
