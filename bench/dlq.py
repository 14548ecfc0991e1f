"""Dead letters written during a benchmark run, counted per consumer group and error type."""

from __future__ import annotations

import time
from collections import Counter

from confluent_kafka import Consumer, TopicPartition

from core.settings import Settings
from streams.catalog import DEAD_LETTERS
from streams.serde import Serde


def dead_letters_since(settings: Settings, since_ms: int, *, limit: int = 200_000,
                       timeout_s: float = 20.0) -> Counter[tuple[str, str]]:
    """(consumer_group, error_type) -> count of dead letters written at or after ``since_ms``."""
    serde = Serde(settings.registry_url)
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "bench-dlq-reader",
                  "enable.auto.commit": False})
    counts: Counter[tuple[str, str]] = Counter()
    try:
        md = c.list_topics(DEAD_LETTERS.name, timeout=5).topics.get(DEAD_LETTERS.name)
        if md is None or md.error is not None:
            return counts
        starts = c.offsets_for_times([TopicPartition(DEAD_LETTERS.name, p, since_ms) for p in md.partitions],
                                     timeout=5)
        ends = {p: c.get_watermark_offsets(TopicPartition(DEAD_LETTERS.name, p), timeout=5)[1]
                for p in md.partitions}
        todo = {tp.partition: tp.offset for tp in starts if 0 <= tp.offset < ends[tp.partition]}
        if not todo:
            return counts
        c.assign([TopicPartition(DEAD_LETTERS.name, p, off) for p, off in todo.items()])
        seen = 0
        deadline = time.monotonic() + timeout_s
        while todo and seen < limit and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            seen += 1
            value = serde.decode(msg.value()).value
            counts[(str(value.get("consumer_group") or "?"), str(value.get("error_type") or "?"))] += 1
            if msg.offset() + 1 >= ends[msg.partition()]:
                todo.pop(msg.partition(), None)
    finally:
        c.close()
    return counts


def errors_of(counts: Counter[tuple[str, str]], group_prefix: str, *,
              ignore_types: tuple[str, ...] = ()) -> int:
    """Dead letters of groups starting with ``group_prefix``, leaving out ``ignore_types``."""
    return sum(n for (g, t), n in counts.items() if g.startswith(group_prefix) and t not in ignore_types)
