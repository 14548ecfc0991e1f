"""Learn whether a record whose delivery was in doubt is in the log: scan its partition for its event id.

Used by the write API on a retry of a write whose first produce timed out while it may have been
sent (:class:`~streams.errors.DeliveryInDoubt`): instead of producing the event again, which would
put a second copy in the log if the first one landed, it reads the records written since the first
attempt with the same key and looks for the event id. Bounded: the records of one partition (all
partitions if unknown) since ``since_ms`` by CreateTime, within ``timeout_s``.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from streams.errors import DecodeError, DeliveryInDoubt
from streams.serde import Serde


def find_event(bootstrap: str, serde: Serde, topic: str, partition: int | None, key: bytes | None, event_id: str,
               since_ms: int, timeout_s: float) -> tuple[int, int] | None:
    """``(partition, offset)`` of the record with ``key`` and ``event_id`` written at or after ``since_ms``.

    None if the log up to its current end has none; DeliveryInDoubt if the log cannot be read in
    ``timeout_s`` (the outcome is still unknown).
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"feedstream-lookup-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "socket.timeout.ms": max(int(timeout_s * 1000), 1000)})
    deadline = time.monotonic() + timeout_s
    try:
        parts = [partition] if partition is not None else \
            sorted(consumer.list_topics(topic, timeout=timeout_s).topics[topic].partitions)
        starts = consumer.offsets_for_times([TopicPartition(topic, p, since_ms) for p in parts], timeout=timeout_s)
        failed = [tp for tp in starts if tp.error is not None]  # e.g. no leader yet after a broker restart:
        if failed:  # its offset reads -1 like "nothing since", but the outcome is unknown
            raise DeliveryInDoubt(f"{topic}: the log cannot be read to learn the outcome: "
                                  f"[{failed[0].partition}] {failed[0].error}")
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1] for p in parts}
        todo = [tp for tp in starts if 0 <= tp.offset < ends[tp.partition]]  # -1: nothing since
        consumer.assign(todo)
        left = {tp.partition for tp in todo}
        while left:
            if time.monotonic() > deadline:
                raise DeliveryInDoubt(f"{topic}: reading the log for event {event_id} timed out")
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    left.discard(msg.partition())
                    continue
                raise DeliveryInDoubt(f"{topic}: reading the log failed: {msg.error().str()}")
            if msg.offset() >= ends[msg.partition()] - 1:
                left.discard(msg.partition())
            if msg.key() == key and _event_id(serde, msg.value()) == event_id:
                return msg.partition(), msg.offset()
        return None
    except KafkaException as exc:
        raise DeliveryInDoubt(f"{topic}: the log cannot be read to learn the outcome: {exc}") from None
    finally:
        consumer.close()


def _event_id(serde: Serde, value: bytes | None) -> str | None:
    try:
        return serde.decode(value).value.get("event_id")
    except DecodeError:
        return None
