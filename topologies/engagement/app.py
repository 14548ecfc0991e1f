"""Engagement worker: engagements.v1 -> counters, affinity, engagement-counts.v1, notifications.v1.

Four agents on one Faust app (built by :func:`create_app`, run by :func:`run`):

- ``engagement-events`` (engagements.v1): exact counters via :class:`EngagementProcessor`, in
  sequential load-sized batches (:mod:`topologies.engagement.batching`; acked after the batch);
  an engagement whose post is not known yet is parked, not dropped;
- ``engagement-posts`` (posts.v1): the topology's own table of known (and deleted) posts, and
  the parked engagements applied once their post is known
  (:meth:`EngagementProcessor.register_posts`; acked after);
- ``engagement-graph`` (graph.v1): follow and friend-request notifications;
- ``engagement-notifications`` (notifications.v1): the per-user notification feed in Cassandra
  (one single-partition batch per recipient and ``NOTE_BATCH`` rows, ``NOTE_CONCURRENCY`` in
  flight) and the realtime push on Redis ``feed:{user}`` (one pipeline per batch).

The derived ``engagement-counts.v1`` and ``notifications.v1`` records of a batch are produced
through one librdkafka producer (:class:`topologies.fanout.runtime.BulkEmit`, pre-parsed schema)
and awaited by one flush before the batch is acked.

Engines are connected lazily on the first record, so the app can be built without them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from core.clock import millis
from core.settings import Settings
from stores import cassandra, progress
from stores import redis as redis_store
from stores.notifications import NotificationStore, channel, push_message
from streams.catalog import ENGAGEMENT_COUNTS, ENGAGEMENTS, GRAPH, NOTIFICATIONS, POSTS
from streams.errors import PoisonRecord
from streams.producer import event_type_headers
from streams.serde import Serde
from topologies.engagement.batching import register_pipelined_agent
from topologies.engagement.logic import KINDS, Notify, graph_notification
from topologies.engagement.runtime import BatchEmitter, Engagement, EngagementProcessor, aexec
from topologies.fanout.runtime import BulkEmit, Stores
from topologies.faust_runtime import (
    SourceRecord,
    catalog_topic,
    create_faust_app,
    dead_letter_record,
    dlq_topic,
    in_thread,
    make_serde,
    run_worker,
)
from topologies.graph.app import UserCheck, UsersProgress, registered_lookup
from topologies.graph.logic import UnknownUser

log = logging.getLogger(__name__)
BatchHandler = Callable[[list[Engagement]], Awaitable[Any]]
MAX_BATCH = 5000  # events per pipelined batch, per agent
NOTE_BATCH = 30  # notification rows per single-partition unlogged batch
NOTE_CONCURRENCY = 64  # Cassandra requests in flight per notification batch
COUNT_HEADERS = event_type_headers("io.feedstream.derived.EngagementCount")
NOTE_HEADERS = event_type_headers("io.feedstream.derived.Notification")
POST_RECORDS = ("PostCreated", "PostEdited", "PostDeleted")


def notification_value(n: Notify) -> dict[str, Any]:
    """The Notification event for ``n`` (event id = the deterministic notification id)."""
    return {"event_id": n.notification_id, "occurred_at": n.occurred_at, "actor_id": n.actor_id,
            "schema_version": 1, "notification_id": n.notification_id, "recipient_id": n.recipient_id,
            "kind": n.kind, "post_id": n.post_id, "comment_id": n.comment_id}


class Engines:
    """Lazily connected Cassandra session, async Redis client and the processors over them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._processor: EngagementProcessor | None = None
        self._notes: NotificationStore | None = None
        self._redis: Any = None

    @property
    def redis(self) -> Any:
        """The asyncio Redis client."""
        if self._redis is None:
            self._redis = redis_store.async_client(self.settings)
        return self._redis

    def processor(self, emit_counts: Any, emit_notification: Any,
                  emit_batch: BatchEmitter | None = None) -> EngagementProcessor:
        """The engagement processor (connects on first call)."""
        if self._processor is None:
            self._processor = EngagementProcessor(cassandra.session(self.settings), self.redis,
                                                  emit_counts, emit_notification, self.settings,
                                                  emit_batch=emit_batch)
        return self._processor

    def notes(self) -> NotificationStore:
        """The notification store (connects on first call)."""
        if self._notes is None:
            self._notes = NotificationStore(cassandra.session(self.settings))
        return self._notes


def engagement_user_check(st: Stores) -> UserCheck:
    """The graph worker's rule for the user of an engagement (issue 14 items 5/6): registered by
    ``occurred_at + grace``, "never registered" proven by the users topology's progress."""
    return UserCheck(registered_lookup(st), int(st.settings.graph_user_grace_s * 1000),
                     named=lambda rec: [rec.value["user_id"]], progress=UsersProgress(st))


async def refuse_unknown_users(app: faust.App, serde: Serde, dlq: Any, users: UserCheck,
                               recs: list[SourceRecord]) -> list[SourceRecord]:
    """Dead-letter (``UnknownUser``) the engagements by users who never registered; return the rest."""
    unknown = await in_thread(app, users.unknown, recs)
    for rec, missing in zip(recs, unknown):
        if missing:
            await dead_letter_record(app, serde, dlq, app.conf.id, rec,
                                     UnknownUser(f"{rec.name}: user {', '.join(sorted(missing))} never registered"))
    return [rec for rec, missing in zip(recs, unknown) if not missing]


def create_app(settings: Settings, *, app_id: str | None = None, serde: Serde | None = None,
               broker: str | None = None, process: BatchHandler | None = None) -> faust.App:
    """Build the engagement Faust app: four pipelined agents (see the module doc).

    Group and offset reset come from ``settings`` (:func:`topologies.faust_runtime.create_faust_app`).
    Test seams: ``serde``, ``broker`` and ``process`` (gets each batch of engagements instead of
    the :class:`EngagementProcessor`; posts.v1 records are then only consumed).
    """
    app = create_faust_app(settings, "engagement", app_id=app_id, broker=broker)
    serde = serde or make_serde(settings)
    engines = Engines(settings)
    dlq = dlq_topic(app)
    users = engagement_user_check(Stores(settings))
    counts_topic = catalog_topic(app, ENGAGEMENT_COUNTS, settings)
    notes_topic = catalog_topic(app, NOTIFICATIONS, settings)

    async def emit_counts(post_id: int, value: dict[str, Any]) -> Any:
        data = serde.encode("EngagementCount", value, ENGAGEMENT_COUNTS.name)
        return await counts_topic.send(key=str(post_id).encode(), value=data,  # delivery future
                                       headers=event_type_headers("io.feedstream.derived.EngagementCount"))

    async def emit_notification(n: Notify) -> Any:
        data = serde.encode("Notification", notification_value(n), NOTIFICATIONS.name)
        return await notes_topic.send(key=n.recipient_id.encode(), value=data,
                                      headers=event_type_headers("io.feedstream.derived.Notification"))

    bulk = BulkEmit(settings)

    async def emit_batch(counts: list[tuple[int, dict[str, Any]]], notes: list[Notify]) -> None:
        """A batch's derived records through one librdkafka producer, awaited by one flush."""
        errors: list[str] = []

        def produce() -> None:
            bulk.produce_records(serde, counts_topic.get_topic_name(), "EngagementCount",
                                 ((str(pid).encode(), v) for pid, v in counts), COUNT_HEADERS, errors)
            bulk.produce_records(serde, notes_topic.get_topic_name(), "Notification",
                                 ((n.recipient_id.encode(), notification_value(n)) for n in notes),
                                 NOTE_HEADERS, errors)
        if counts or notes:
            await asyncio.to_thread(produce)
            await bulk.flushed(errors, "engagement counts and notifications")

    async def mark(recs: list[SourceRecord]) -> None:  # after the batch's side effects
        if process is None:
            await progress.amark(engines.redis, "engagement",
                                 progress.highest((r.topic, r.partition, r.offset) for r in recs))

    def validate(rec: SourceRecord) -> None:
        if rec.name not in KINDS:
            raise PoisonRecord(f"{rec.name} does not belong on {rec.topic}")

    async def on_engagements(recs: list[SourceRecord]) -> None:
        if process is None and settings.engagement_user_check:
            recs = await refuse_unknown_users(app, serde, dlq, users, recs)
        batch = [Engagement(r.name, r.value, r.partition, r.offset) for r in recs]
        if process is not None:
            await process(batch)
            return
        t0 = time.perf_counter()
        out = await engines.processor(emit_counts, emit_notification, emit_batch).handle_batch(batch)
        await mark(recs)
        if settings.log_batches:
            log.info("engagement batch n=%d posts=%d ms=%.1f", len(batch), len(out),
                     (time.perf_counter() - t0) * 1000)

    def is_post(rec: SourceRecord) -> None:
        if rec.name not in POST_RECORDS:
            raise PoisonRecord(f"{rec.name} does not belong on {rec.topic}")

    async def on_posts(recs: list[SourceRecord]) -> None:
        if process is not None:
            return
        await engines.processor(emit_counts, emit_notification, emit_batch).register_posts(
            [(r.name, r.value) for r in recs])
        await mark(recs)

    async def on_graph(recs: list[SourceRecord]) -> None:
        notes = [n for n in (graph_notification(r.name, r.value) for r in recs) if n is not None]
        await emit_batch([], notes)
        await mark(recs)

    def is_notification(rec: SourceRecord) -> None:
        if rec.name != "Notification":
            raise PoisonRecord(f"{rec.name} does not belong on {rec.topic}")

    async def on_notifications(recs: list[SourceRecord]) -> None:
        store = await in_thread(app, engines.notes)
        notes = [{**r.value, "created_at": millis(r.value["occurred_at"])} for r in recs]
        by_user: dict[str, list[dict[str, Any]]] = {}
        for n in notes:
            by_user.setdefault(n["recipient_id"], []).append(n)
        batches = [store.record_batch(user_notes[i:i + NOTE_BATCH])  # one partition each
                   for user_notes in by_user.values() for i in range(0, len(user_notes), NOTE_BATCH)]
        limit = asyncio.Semaphore(NOTE_CONCURRENCY)

        async def write(stmt: Any) -> None:
            async with limit:
                await aexec(store.session, stmt)
        await asyncio.gather(*(write(b) for b in batches))
        pipe = engines.redis.pipeline(transaction=False)
        for n in notes:
            pipe.publish(channel(n["recipient_id"]), push_message(n))
        await pipe.execute()
        await mark(recs)

    register_pipelined_agent(app, catalog_topic(app, ENGAGEMENTS, settings), on_engagements,
                             serde=serde, name="engagement-events", validate=validate,
                             max_batch=MAX_BATCH)
    register_pipelined_agent(app, catalog_topic(app, POSTS, settings), on_posts, serde=serde,
                             name="engagement-posts", validate=is_post, max_batch=MAX_BATCH)
    register_pipelined_agent(app, catalog_topic(app, GRAPH, settings), on_graph, serde=serde,
                             name="engagement-graph", max_batch=MAX_BATCH)
    register_pipelined_agent(app, notes_topic, on_notifications, serde=serde,
                             name="engagement-notifications", validate=is_notification,
                             max_batch=MAX_BATCH)
    return app


def run(settings: Settings) -> None:
    """Run the engagement worker until interrupted."""
    run_worker(create_app(settings))
