"""What ``feedstream topics describe TOPIC`` shows: catalog entry, broker state, schemas, a sample record."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from core.settings import Settings
from streams.admin import admin_client, broker_state
from streams.catalog import BY_NAME, Topic
from streams.schemas import default_schemas
from streams.serde import Decoded, Serde


@dataclass(frozen=True)
class TopicInfo:
    """A catalog topic with its broker state, record schemas (field -> type) and newest record."""

    topic: Topic
    broker_partitions: int | None
    broker_configs: dict[str, str]
    records: dict[str, list[tuple[str, str]]]
    end_offsets: dict[int, int]
    sample: Decoded | None
    sample_at: tuple[int, int] | None  # (partition, offset)


def _type(t: Any) -> str:
    if isinstance(t, list):
        return " | ".join(_type(x) for x in t)
    if isinstance(t, dict):
        if t.get("logicalType"):
            return f"{t['type']} ({t['logicalType']})"
        if t["type"] == "array":
            return f"array<{_type(t['items'])}>"
        return t.get("name", t["type"])
    return str(t)


def record_fields(fullname: str) -> list[tuple[str, str]]:
    """``(field, type)`` of a record of the schema set."""
    schema = default_schemas().standalone[fullname]
    return [(f["name"], _type(f["type"])) for f in schema["fields"]]


def newest_record(s: Settings, name: str, timeout_s: float = 10.0) -> tuple[Decoded | None, tuple[int, int] | None,
                                                                            dict[int, int]]:
    """The newest record over all partitions (decoded), where it is, and each partition's end offset."""
    consumer = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": f"describe-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        meta = consumer.list_topics(name, timeout=timeout_s).topics[name]
        ends: dict[int, int] = {}
        starts = []
        for p in sorted(meta.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=timeout_s)
            ends[p] = high
            if high > low:
                starts.append(TopicPartition(name, p, high - 1))
        if not starts:
            return None, None, ends
        consumer.assign(starts)
        newest = None
        for msg in consumer.consume(len(starts), timeout=timeout_s):
            if msg.error() is None and (newest is None or msg.timestamp()[1] > newest.timestamp()[1]):
                newest = msg
        if newest is None:
            return None, None, ends
        return Serde(s.registry_url).decode(newest.value()), (newest.partition(), newest.offset()), ends
    finally:
        consumer.close()


def describe(s: Settings, name: str) -> TopicInfo:
    """Everything about catalog topic ``name`` (raises KeyError if it is not in the catalog)."""
    topic = BY_NAME[name].resolved(s)
    state = broker_state(admin_client(s), [name]).get(name)
    records = {r: record_fields(r) for r in topic.value_schemas}
    sample, at, ends = newest_record(s, name) if state is not None else (None, None, {})
    return TopicInfo(topic, state.partitions if state else None, dict(state.configs) if state else {},
                     records, ends, sample, at)
