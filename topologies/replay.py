"""Replay graph.v1 and posts.v1 from offset 0 into the stores, and reset worker groups to the start.

Two ways to rebuild the timeline views from the log:

- :func:`reset_group_offsets`: set a stopped worker group's committed offsets back to the start of
  its source topic; the next ``feedstream topology run NAME`` re-applies everything (idempotent).
- :func:`replay_in_order`: one process reads both topics to their current end, merges the records
  by Kafka timestamp, and applies them with the workers' own store functions
  (:func:`topologies.graph.app.process_graph`, :func:`topologies.fanout.app.process_posts`);
  graph events naming users, and posts by authors, not registered in time (``users.v1``, read
  whole) are skipped, as the live workers dead-letter them.
  Two separately running workers catch up on the two topics at independent speeds, so a bounded
  back-fill can differ from the live run (a follow replayed before the followee's older posts sees
  them pushed, not back-filled); the merged order reproduces the live interleaving. No
  TimelineUpdate events are produced while replaying (the derived topic already has them).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import faust
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from redis.exceptions import RedisError

from core.settings import Settings, TimelineSettings, with_overrides
from streams.catalog import GRAPH, POSTS, USERS
from streams.errors import PoisonRecord, StreamsError
from streams.serde import Serde
from topologies.faust_runtime import SourceRecord

log = logging.getLogger(__name__)
SOURCES = {"graph": GRAPH.name, "fanout": POSTS.name}


@dataclass
class ReplayStats:
    """What a replay read and applied."""

    records: int = 0
    graph: int = 0
    posts: int = 0
    skipped: int = 0
    seconds: float = 0.0


def end_offsets(consumer: Consumer, topics: Iterable[str]) -> dict[tuple[str, int], tuple[int, int]]:
    """(low, high) watermark of every partition of ``topics``."""
    out = {}
    for t in topics:
        meta = consumer.list_topics(t, timeout=10).topics[t]
        for p in sorted(meta.partitions):
            out[(t, p)] = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)
    return out


class Counted(Protocol):
    """Replay statistics: records read, and those skipped (undecodable)."""

    records: int
    skipped: int


def drain(consumer: Consumer, todo: dict[tuple[str, int], int], serde: Serde,
          stats: Counted) -> Iterator[SourceRecord]:
    """The decodable records of ``consumer``'s assigned partitions, each up to its end offset in ``todo``
    (``(topic, partition) -> end``; emptied as the ends are reached). An undecodable record is counted
    as skipped: the live worker dead-lettered it already."""
    while todo:
        for msg in consumer.consume(1000, 1.0):
            if msg.error():
                raise StreamsError(str(msg.error()))
            tp, off = (str(msg.topic()), int(msg.partition() or 0)), int(msg.offset() or 0)
            if tp not in todo or off >= todo[tp]:
                continue
            if off + 1 >= todo[tp]:
                del todo[tp]
            stats.records += 1
            try:
                d = serde.decode(msg.value())
            except StreamsError:
                stats.skipped += 1
                continue
            yield SourceRecord(tp[0], tp[1], off, msg.key(), d.name, d.value, msg.timestamp()[1])


def reload_if_lost(what: str, loaded: Callable[[], bool], rebuild: Callable[[], int]) -> int | None:
    """Rebuild a worker's Redis state from the log if that Redis lost it (``loaded()`` false: its
    marker key is gone); the records applied, or None when nothing was lost."""
    if loaded():
        return None
    started = time.monotonic()
    n = rebuild()
    log.warning("%s state was not in Redis (new or lost): reloaded %d records from the log in %.1fs",
                what, n, time.monotonic() - started)
    return n


def register_state_check(app: faust.App, what: str, interval_s: float, check: Callable[[], object]) -> None:
    """Run ``check`` (e.g. a :func:`reload_if_lost`) every ``interval_s`` on every worker, in a thread,
    so a lost Redis gets its state back without waiting for traffic; Redis or Kafka down: next tick."""
    @app.timer(interval_s, on_leader=False)
    async def state_check() -> None:
        try:
            await asyncio.to_thread(check)
        except (RedisError, OSError, KafkaException, StreamsError) as exc:
            log.warning("%s state check failed, retrying in %.0fs: %r", what, interval_s, exc)


def read_log(settings: Settings, topics: Iterable[str], serde: Serde, stats: ReplayStats) -> list[SourceRecord]:
    """Every decodable record of ``topics`` from the start to the current end, in timestamp order."""
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"replay-{uuid.uuid4().hex}",
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    try:
        marks = end_offsets(c, topics)
        todo = {tp: hi for tp, (lo, hi) in marks.items() if hi > lo}
        c.assign([TopicPartition(t, p, marks[(t, p)][0]) for t, p in todo])
        recs = list(drain(c, todo, serde, stats))
    finally:
        c.close()
    order = {GRAPH.name: 0, POSTS.name: 1}
    recs.sort(key=lambda r: (r.timestamp_ms, order.get(r.topic, 2), r.partition, r.offset))
    return recs


def replay_in_order(settings: Settings, tl: Settings, names: Iterable[str] = ("graph", "fanout"),
                    batch: int = 500) -> ReplayStats:
    """Apply ``names``' source topics from offset 0, merged by timestamp, to ``settings``' stores.

    ``tl`` gives the timeline knobs (cap, celebrity threshold, …) the workers ran with.
    """
    from topologies.fanout.app import POST_RECORDS, author_named, process_posts
    from topologies.fanout.runtime import Stores
    from topologies.graph.app import log_user_check, note_registrations, process_graph
    from topologies.graph.logic import GRAPH_RECORDS

    t0 = time.monotonic()
    stats = ReplayStats()
    knobs = {k: getattr(tl, k) for k in TimelineSettings.model_fields}
    st = Stores(with_overrides(settings, **knobs))
    serde = Serde(settings.registry_url)
    recs = read_log(settings, [SOURCES[n] for n in names], serde, stats)
    # graph events need their users registered and a PostCreated its author (UserCheck's rule, the
    # live workers' too); the whole users.v1 log is the evidence, so nothing is waited for
    registered: dict[str, int] = {}
    note_registrations(read_log(settings, [USERS.name], serde, ReplayStats()), registered)
    users = log_user_check(settings, registered)
    authors = log_user_check(settings, registered, named=author_named)
    pending: list[SourceRecord] = []

    def flush() -> None:
        if pending:
            results = process_posts(st, pending, authors)
            refused = [rec for rec, r in results if isinstance(r, PoisonRecord)]  # the live worker dead-lettered them
            stats.posts += len(pending) - len(refused)
            stats.skipped += len(refused)
            pending.clear()

    for rec in recs:
        if rec.topic == POSTS.name and rec.name in POST_RECORDS:
            pending.append(rec)
            if len(pending) >= batch:
                flush()
        elif rec.topic == GRAPH.name and rec.name in GRAPH_RECORDS:
            flush()
            try:
                process_graph(st, rec, users.unknown([rec])[0])
            except PoisonRecord:
                stats.skipped += 1
                continue
            stats.graph += 1
        else:
            stats.skipped += 1
    flush()
    stats.seconds = time.monotonic() - t0
    return stats


def group_id(name: str, suffix: str = "") -> str:
    """The consumer group of worker ``name`` (as ``create_app`` names it)."""
    return f"feedstream-{name}{suffix}"


def reset_group_offsets(settings: Settings, name: str, *, suffix: str = "") -> dict[int, int]:
    """Reset worker ``name``'s group to the start of its source topic; the group must be stopped."""
    from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions

    group, topic = group_id(name, suffix), SOURCES[name]
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    desc = admin.describe_consumer_groups([group])[group].result(timeout=15)
    if desc.members or desc.state not in (ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD,
                                          ConsumerGroupState.UNKNOWN):
        raise StreamsError(f"group {group} has {len(desc.members)} active member(s) "
                           f"(state {desc.state.name}): stop its workers first")
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"replay-{uuid.uuid4().hex}"})
    try:
        lows = {p: lo for (_, p), (lo, _) in end_offsets(c, [topic]).items()}
    finally:
        c.close()
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, lo) for p, lo in lows.items()])
    admin.alter_consumer_group_offsets([req])[group].result(timeout=15)
    return lows
