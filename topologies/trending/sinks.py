"""Side effects of the trending job: trending.v1 (Avro via the registry), Redis, Cassandra, dead letters.

Framework-free so the PyFlink functions stay thin. Every write is idempotent (event ids derive
from content, Redis/Cassandra writes replace a window's list), and each call returns only once
its writes are durable, so replay after a checkpoint restore is harmless.
"""

from __future__ import annotations

import time
import uuid
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
                 late_topic: str = DEAD_LETTERS.name, cassandra: bool = True) -> None:
        from stores import redis as redis_store

        self.settings = settings
        self.trending_topic, self.late_topic = trending_topic, late_topic
        self.serde = Serde(settings.registry_url)
        self.producer = Producer(producer_config(settings, **{"linger.ms": 1}))
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
        pending = []
        for topk in topks:
            for value in trending_records(topk, now):
                payload = self.serde.encode("TrendingEntry", value, self.trending_topic)
                self.producer.produce(self.trending_topic, payload, topk.scope.encode(), headers=headers)
            if self.session is not None:
                pending += store.write_history_async(self.session, topk.scope, topk.window_start,
                                                     topk.window_end, topk.entries)
        for future in pending:
            future.result()
        with self.redis.pipeline(transaction=False) as p:
            for topk in topks:
                store.write_current(p, topk.scope, topk.window_start, topk.window_end, topk.entries, now)
            p.execute()
        self._flush()
        return sum(len(t.entries) for t in topks)

    def late(self, c: Contribution, topic: str, partition: int, offset: int, label: str,
             watermark: int | None = None) -> None:
        """Dead-letter and count one too-late contribution."""
        from stores import trending as store

        value = late_record(c, topic, partition, offset, label, watermark, now_ms())
        payload = self.serde.encode("DeadLetter", value, self.late_topic)
        self.producer.produce(self.late_topic, payload, topic.encode(),
                              headers=[(HEADER_EVENT_TYPE, b"io.feedstream.derived.DeadLetter")])
        self._flush()
        store.incr_late(self.redis, label)

    def poison(self, topic: str, partition: int, offset: int, data: bytes | None, exc: Exception) -> None:
        """Dead-letter a record that cannot be decoded, with its source offset and bytes."""
        value = dead_letter(group=ACTOR, topic=topic, partition=partition, offset=offset, key=None,
                            value=data, error=str(exc), error_type=type(exc).__name__,
                            event_id=str(uuid.uuid5(_NS, f"poison|{topic}|{partition}|{offset}")))
        self.producer.produce(self.late_topic, self.serde.encode("DeadLetter", value, self.late_topic),
                              topic.encode(), headers=[(HEADER_EVENT_TYPE, b"io.feedstream.derived.DeadLetter")])
        self._flush()

    def _flush(self) -> None:
        if self.producer.flush(30) != 0:
            raise RuntimeError("trending: Kafka did not confirm delivery within 30 s")
