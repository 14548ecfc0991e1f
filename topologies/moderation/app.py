"""Moderation worker: posts.v1 + engagements.v1 comments -> rules and models -> moderation-verdicts.v1;
moderation.v1 decisions override the models, reports and appeals fill the review queue.

Publishing policy: publish, then hide. Fan-out does not wait for a verdict; a LIMIT/REMOVE verdict
adds the post to ``mod:hidden``, which every read path filters in O(page), so the post disappears
from other people's feeds at once, including where it was already fanned out. Each merged part is
also written to Cassandra's ``moderation_decisions`` (:func:`stores.moderation.record`) before the
Redis merge, so the read path's Redis-down fallback filters on the same decisions; offsets commit
after both writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import faust

from core.clock import millis
from core.settings import Settings
from models.moderation.classify import Classifier
from models.moderation.features import Behaviour, band_keys, content
from stores import cassandra, graph, progress
from stores import moderation as mod
from stores import redis as redis_store
from stores.users import get_users
from streams.catalog import ENGAGEMENTS, MODERATION, MODERATION_VERDICTS, POSTS
from streams.errors import PoisonRecord
from streams.producer import event_type_headers
from streams.serde import Serde
from topologies.fanout.runtime import BulkEmit
from topologies.faust_runtime import (
    SourceRecord,
    bounded,
    catalog_topic,
    create_faust_app,
    in_thread,
    make_serde,
    register_agent,
    register_batch_agent,
    run_worker,
)
from topologies.moderation.logic import (
    MODERATION_RECORDS,
    POST_RECORDS,
    Item,
    behaviour,
    ctx_of_event,
    decision_part,
    fold_behaviour,
    item_of,
    model_part,
    model_part_of_verdict,
    verdict_value,
    windows,
)
from topologies.replay import ReplayStats, read_log, register_state_check, reload_if_lost

log = logging.getLogger(__name__)

HEADERS = event_type_headers("io.feedstream.derived.ModerationVerdict")
Verdicts = list[dict[str, Any]]
USERS_PER_READ = 100


class Engines:
    """Lazily connected Redis, Cassandra and the classifier (loaded once per worker)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._r: Any = None
        self._s: Any = None
        self._clf: Classifier | None = None

    @property
    def r(self) -> Any:
        """The sync Redis client."""
        if self._r is None:
            self._r = redis_store.client(self.settings)
        return self._r

    @property
    def s(self) -> Any:
        """The Cassandra session."""
        if self._s is None:
            self._s = cassandra.session(self.settings)
        return self._s

    @property
    def clf(self) -> Classifier:
        """Rules and models."""
        if self._clf is None:
            domains = [d for d in self.settings.moderation_blocked_domains.split(",") if d.strip()]
            self._clf = Classifier(domains)
        return self._clf


def behaviours(eng: Engines, items: list[Item]) -> list[Behaviour]:
    """The authors' facts at posting time for a batch, as one by one in order: profiles (cache, then a
    Cassandra read per 100 misses), graph sets loaded, then one pipeline: the follower counts and one script call
    reading the recent posts and LSH bands before the batch and recording the batch
    (:func:`logic.fold_behaviour` folds it in)."""
    authors = list(dict.fromkeys(i.author_id for i in items))
    users: dict[str, dict[str, Any]] = {}
    for i in range(0, len(authors), USERS_PER_READ):  # a bounded Cassandra IN for the cache's misses
        users.update(get_users(eng.s, eng.r, authors[i:i + USERS_PER_READ]))
    graph.ensure_loaded(eng.r, eng.s, authors)
    bands = [band_keys(i.text) for i in items]
    p = eng.r.pipeline(transaction=False)
    read_counts = graph.queue_counts(p, authors)
    read_state = mod.queue_behaviour(eng.r, p, windows(items), [b for bs in bands for b in bs],
                                     [(i.author_id, i.content_id, i.at, bs) for i, bs in zip(items, bands)])
    results = iter(p.execute())
    counts = read_counts(results)
    recent, members = read_state(results)
    return [behaviour(i, users.get(i.author_id), counts[i.author_id], rate, dup)
            for i, (rate, dup) in zip(items, fold_behaviour(items, bands, recent, members))]


def score_items(eng: Engines, items: list[Item]) -> Verdicts:
    """Score a batch, merge each model verdict into the state, and return the verdicts to emit.

    The durable copy first (the batch's Cassandra writes concurrently, bounded), then one Redis
    pipeline merging the batch in order (a redelivered item merges twice, as one by one)."""
    if not items:
        return []
    facts = [content(i.text, list(i.links)) for i in items]
    scored = [(item, mv, model_part(mv, item))
              for item, mv in zip(items, eng.clf.classify(list(zip(facts, behaviours(eng, items)))))]
    mod.record_many(eng.s, [(item.key, item.content_id, "m", item.at, part) for item, _, part in scored])
    merged = mod.merge_many(eng.r, [(item.key, item.content_id, "m", item.at, part, item.ctx, mv.needs_review)
                                    for item, mv, part in scored])
    return [verdict_value(item.ctx, m, d) for (item, _, _), (m, d) in zip(scored, merged)]


def apply_moderation(eng: Engines, rec: SourceRecord) -> Verdicts:
    """Apply one moderation.v1 event: a decision (emits the new verdict), a report or an appeal."""
    v, ctx = rec.value, ctx_of_event(rec.value)
    at = millis(v["occurred_at"])
    if rec.name == "ModeratorDecided":
        part = decision_part(v)
        # the durable copy first: a decision taken while Redis is down reaches the Cassandra read path
        mod.record(eng.s, v["content_key"], v["content_id"], "d", at, part)
        m, d = mod.merge(eng.r, v["content_key"], v["content_id"], "d", at, part, ctx)
        return [verdict_value(ctx, m, d)]
    if rec.name == "ContentReported":
        mod.report(eng.r, v["content_key"], v["actor_id"], at, ctx)
    elif rec.name == "DecisionAppealed":
        mod.appeal(eng.r, v["content_key"], {"by": v["actor_id"], "reason": v["reason"], "at": at}, at)
    return []


def rebuild_state(eng: Engines, serde: Serde) -> int:
    """Reload the moderation state into a Redis that lost it, from the log; return the records applied.

    Model verdicts come back from ``moderation-verdicts.v1`` (compacted: the latest verdict per
    content; a MODERATOR-sourced one is skipped, its decision is in ``moderation.v1``), decisions,
    reports and appeals from ``moderation.v1`` (kept forever). The merge is order-independent, so
    live batches running meanwhile change nothing. Then ``mod:loaded`` is set.
    """
    applied = 0
    for rec in read_log(eng.settings, (MODERATION_VERDICTS.name, MODERATION.name), serde, ReplayStats()):
        v = rec.value
        if rec.topic == MODERATION.name and rec.name in MODERATION_RECORDS:
            apply_moderation(eng, rec)
        elif rec.topic == MODERATION_VERDICTS.name and v.get("source") == "MODEL":
            at, part = int(v.get("content_version") or 0), model_part_of_verdict(v)
            mod.record(eng.s, v["content_key"], v["content_id"], "m", at, part)  # idempotent: also a backfill
            mod.merge(eng.r, v["content_key"], v["content_id"], "m", at, part, ctx_of_event(v),
                      review=bool(v.get("needs_review")))
        else:
            continue
        applied += 1
    mod.mark_loaded(eng.r)
    return applied


def reload_lost_state(eng: Engines, serde: Serde) -> int | None:
    """Rebuild the state if this Redis lost it (``mod:loaded`` absent); the records applied, or None."""
    return reload_if_lost("moderation", lambda: mod.loaded(eng.r), lambda: rebuild_state(eng, serde))


def check_record(names: tuple[str, ...]) -> Any:
    """A validator dead-lettering records that do not belong on the topic."""
    def check(rec: SourceRecord) -> None:
        if rec.name not in names:
            raise PoisonRecord(f"unexpected record {rec.name} on {rec.topic}")
    return check


async def emit(serde: Serde, topic: faust.TopicT, verdicts: Verdicts) -> Awaitable[Any]:
    """Send the verdicts (keyed by content_key); the returned awaitable completes on delivery."""
    futures = []
    for v in verdicts:
        data = serde.encode("ModerationVerdict", v, MODERATION_VERDICTS.name)
        futures.append(await topic.send(key=v["content_key"].encode(), value=data, headers=HEADERS))
    return asyncio.gather(*futures)


def create_app(settings: Settings, *, app_id: str | None = None, serde: Serde | None = None,
               broker: str | None = None, engines: Engines | None = None) -> faust.App:
    """Build the moderation Faust app (agents on posts.v1, engagements.v1 and moderation.v1)."""
    app = create_faust_app(settings, "moderation", app_id=app_id, broker=broker)
    serde = serde or make_serde(settings)
    eng = engines or Engines(settings)
    verdicts = catalog_topic(app, MODERATION_VERDICTS, settings)
    bulk = BulkEmit(settings)

    async def on_content(recs: list[SourceRecord]) -> Awaitable[Any]:
        items = [i for i in (item_of(r.name, r.value) for r in recs) if i is not None]
        out = await in_thread(app, score_items, eng, items)
        if settings.log_batches:
            log.info("moderation batch n=%d items=%d", len(recs), len(items))
        errors: list[str] = []
        if out:  # one librdkafka producer: encoded with the pre-parsed schema, no per-message await
            await in_thread(app, bulk.produce_records, serde, verdicts.get_topic_name(), "ModerationVerdict",
                            [(v["content_key"].encode(), v) for v in out], HEADERS, errors)
        marks = progress.highest((r.topic, r.partition, r.offset) for r in recs)

        async def delivered() -> None:  # awaited before the batch is acked; one flush per batch
            if out:
                await bulk.flushed(errors, "moderation verdicts")
            await in_thread(app, progress.mark, eng.r, "moderation", marks)
        return delivered()

    async def on_moderation(rec: SourceRecord) -> None:
        check_record(MODERATION_RECORDS)(rec)  # PoisonRecord: dead-lettered with its source offset
        out = await in_thread(app, apply_moderation, eng, rec)
        await bounded(app, await emit(serde, verdicts, out), "the verdict of a moderation event")

    register_state_check(app, "moderation", settings.moderation_reload_check_s, lambda: reload_lost_state(eng, serde))

    register_batch_agent(app, catalog_topic(app, POSTS, settings), on_content, serde=serde,
                         name="moderation-posts", validate=check_record(POST_RECORDS), within_s=0.02)
    register_batch_agent(app, catalog_topic(app, ENGAGEMENTS, settings), on_content, serde=serde,
                         name="moderation-comments", within_s=0.02)
    register_agent(app, catalog_topic(app, MODERATION, settings), on_moderation, serde=serde,
                   name="moderation-decisions")
    return app


def run(settings: Settings) -> None:
    """Run the moderation worker until interrupted."""
    run_worker(create_app(settings))
