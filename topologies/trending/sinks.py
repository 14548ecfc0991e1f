"""Side effects of the trending job: trending.v1 (Avro via the registry), Redis, Cassandra, dead letters.

Framework-free so the PyFlink functions stay thin. Every write is idempotent (event ids derive
from content, Redis/Cassandra writes replace a window's list), and each call returns only once
its writes are durable, so replay after a checkpoint restore is harmless.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer

from core.clock import now_ms
from core.events import dead_letter
from core.settings import Settings
from streams.catalog import DEAD_LETTERS, TRENDING
from streams.producer import HEADER_EVENT_TYPE, producer_config
from streams.serde import Serde
from topologies.trending.logic import Contribution, TopK

ACTOR = "trending"
SEND_ATTEMPTS = 4  # then the job fails and restarts from its checkpoint
SEND_WAIT_S = 12.0  # per attempt: librdkafka's delivery timeout (below) plus a margin
PRODUCER_OVERRIDES = {"delivery.timeout.ms": 10_000}
log = logging.getLogger(__name__)
ABANDONED: list[Any] = []  # producers replaced after a failed publish: never destroyed (see _replace_producer)
_NS = uuid.UUID("6f1d3c2a-8a43-4d7e-9a55-2f1c0b7e5a11")


def entry_event_id(scope: str, window_end: int, rank: int, item: str, score: float) -> str:
    """A deterministic event id, so a replayed emission carries the same id as the original."""
    return str(uuid.uuid5(_NS, f"{scope}|{window_end}|{rank}|{item}|{score!r}"))


def trending_records(topk: TopK, now_ms: int) -> list[dict[str, Any]]:
    """The TrendingEntry values of one ranked list."""
    return [{
        "event_id": entry_event_id(e.scope, e.window_end, e.rank, e.item, e.score),
        "occurred_at": now_ms, "actor_id": ACTOR, "schema_version": 1,
        "scope": e.scope, "window_start": e.window_start, "window_end": e.window_end,
        "rank": e.rank, "item": e.item, "score": float(e.score), "count": int(e.count),
        "velocity": float(e.velocity), "zscore": float(e.zscore),
    } for e in topk.entries]


def late_record(c: Contribution, topic: str, partition: int, offset: int, label: str,
                watermark: int | None, now_ms: int) -> dict[str, Any]:
    """A DeadLetter value for an event that arrived after its windows' allowed lateness."""
    where = f"watermark {watermark}" if watermark is not None else "the watermark"
    return dead_letter(
        group=ACTOR, topic=topic, partition=partition, offset=offset, key=None, value=None,
        error=f"too late for trending {label}: event time {c.ts} ({c.kind} {c.item}) is behind {where}"
              " minus the allowed lateness",
        error_type="LateEvent", at_ms=now_ms,
        event_id=str(uuid.uuid5(_NS, f"late|{label}|{topic}|{partition}|{offset}|{c.kind}|{c.item}")))


class Publisher:
    """Writes ranked lists to trending.v1, Redis and Cassandra; late events to dead letters."""

    def __init__(self, settings: Settings, *, trending_topic: str = TRENDING.name,
                 late_topic: str = DEAD_LETTERS.name, cassandra: bool = True,
                 producer_factory: Callable[[dict[str, Any]], Any] = Producer) -> None:
        from stores import redis as redis_store

        self.settings, self.producer_factory = settings, producer_factory
        self.trending_topic, self.late_topic = trending_topic, late_topic
        self.serde = Serde(settings.registry_url)
        self.producer = self._new_producer()
        self.redis = redis_store.client(settings)
        self.session = None
        if cassandra:
            from stores.cassandra import session

            self.session = session(settings)

    def publish(self, topk: TopK) -> int:
        """Publish one scope's list for one window; return the entries written."""
        return self.publish_many([topk])

    def publish_many(self, topks: list[TopK]) -> int:
        """Publish several lists (one firing); durable in Kafka, Cassandra and Redis on return."""
        from stores import trending as store

        now = time.time_ns() // 1_000_000
        headers = [(HEADER_EVENT_TYPE, b"io.feedstream.derived.TrendingEntry")]
        pending, records = [], []
        for topk in topks:
            for value in trending_records(topk, now):
                payload = self.serde.encode("TrendingEntry", value, self.trending_topic)
                records.append((self.trending_topic, payload, topk.scope.encode(), headers))
            if self.session is not None:
                pending += store.write_history_async(self.session, topk.scope, topk.window_start,
                                                     topk.window_end, topk.entries)
        for future in pending:
            future.result()
        with self.redis.pipeline(transaction=False) as p:
            for topk in topks:
                store.write_current(p, topk.scope, topk.window_start, topk.window_end, topk.entries, now)
            p.execute()
        self._send(records)
        return sum(len(t.entries) for t in topks)

    def late(self, c: Contribution, topic: str, partition: int, offset: int, label: str,
             watermark: int | None = None) -> None:
        """Dead-letter and count one too-late contribution."""
        from stores import trending as store

        value = late_record(c, topic, partition, offset, label, watermark, now_ms())
        payload = self.serde.encode("DeadLetter", value, self.late_topic)
        self._send([(self.late_topic, payload, topic.encode(),
                     [(HEADER_EVENT_TYPE, b"io.feedstream.derived.DeadLetter")])])
        store.incr_late(self.redis, label)

    def poison(self, topic: str, partition: int, offset: int, data: bytes | None, exc: Exception) -> None:
        """Dead-letter a record that cannot be decoded, with its source offset and bytes."""
        value = dead_letter(group=ACTOR, topic=topic, partition=partition, offset=offset, key=None,
                            value=data, error=str(exc), error_type=type(exc).__name__,
                            event_id=str(uuid.uuid5(_NS, f"poison|{topic}|{partition}|{offset}")))
        self._send([(self.late_topic, self.serde.encode("DeadLetter", value, self.late_topic),
                     topic.encode(), [(HEADER_EVENT_TYPE, b"io.feedstream.derived.DeadLetter")])])

    def _new_producer(self) -> Any:
        return self.producer_factory(producer_config(self.settings, **{"linger.ms": 1, **PRODUCER_OVERRIDES}))

    def _replace_producer(self) -> None:
        """Swap in a new producer and abandon the old one **without touching it again**.

        A wedged instance blocks every call that waits on its threads: ``rd_kafka_destroy`` (in the
        job it hung the operator's close, so the failed task never gave its slot back and every
        restart ended in ``NoResourceAvailableException``) and even a non-blocking ``purge``. It is
        kept referenced for the life of the process instead. Should it ever deliver what it held,
        those entries are duplicates with the same event ids.
        """
        old, self.producer = self.producer, self._new_producer()
        ABANDONED.append(old)

    def _send(self, records: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]) -> None:
        """Produce ``records`` and return once Kafka confirmed every one of them.

        A delivery that fails or is not confirmed within the attempt's bound is sent again, all of
        the records, on a **new** producer: after a Kafka kill the job's producer was seen wedged
        for good (its log writes blocked, see :func:`topologies.flink.drain_gateway_stderr`), each
        publish waited out its timeout, and failed delivery reports went unread, so the entries were
        silently dropped. Entries carry deterministic event ids, so a record that did land twice is
        the same entry twice. After ``SEND_ATTEMPTS`` the error is raised: the job fails and
        restarts from its last checkpoint, with nothing acknowledged lost.
        """
        why = ""
        for attempt in range(1, SEND_ATTEMPTS + 1):
            failed: list[str] = []

            def report(err: Any, _msg: Any, failed: list[str] = failed) -> None:
                if err is not None:
                    failed.append(str(err))

            for topic, payload, key, headers in records:
                self.producer.produce(topic, payload, key, headers=headers, on_delivery=report)
            left = self.producer.flush(SEND_WAIT_S)
            if not left and not failed:
                return
            why = f"{left} unconfirmed after {SEND_WAIT_S:g} s" if left else f"{len(failed)} failed ({failed[0]})"
            log.warning("trending: publish attempt %d/%d: %s; sending again on a new producer", attempt,
                        SEND_ATTEMPTS, why)
            self._replace_producer()
        raise RuntimeError(f"trending: Kafka did not confirm delivery after {SEND_ATTEMPTS} attempts ({why}); "
                           "the job restarts from its last checkpoint")
