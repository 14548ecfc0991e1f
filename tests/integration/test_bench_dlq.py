"""Dead letters are charged to the consumer group that wrote them, not to every topology."""

from __future__ import annotations

import time
import uuid

from bench.dlq import dead_letters_since, errors_of
from core.events import new_event
from core.settings import Settings
from streams.admin import apply_topics
from streams.producer import EventProducer


def test_dead_letters_are_counted_per_group_and_type(stack: Settings) -> None:
    apply_topics(stack)
    since = int(time.time() * 1000)
    group = f"test-dlq-{uuid.uuid4().hex[:8]}"
    producer = EventProducer(stack)
    try:
        for error_type in ("DecodeError", "DecodeError", "LateEvent"):
            producer.send("DeadLetter", new_event(
                group, source_topic="posts.v1", source_partition=0, source_offset=1, key=None,
                value=b"\x01", error="boom", error_type=error_type, failed_at=since,
                consumer_group=group))
    finally:
        producer.close()
    counts = dead_letters_since(stack, since)
    assert counts[(group, "DecodeError")] == 2 and counts[(group, "LateEvent")] == 1
    assert errors_of(counts, group) == 3
    assert errors_of(counts, group, ignore_types=("LateEvent",)) == 2
    assert errors_of(counts, "feedstream-nosuch") == 0
