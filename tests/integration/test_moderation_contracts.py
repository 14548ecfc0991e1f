"""Analysts read moderation verdicts and decisions with the stock Avro deserializer (issue 17 item 5)."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import DeserializingConsumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer

from core.settings import Settings
from streams.admin import apply_topics, register_all_schemas
from streams.catalog import MODERATION, MODERATION_VERDICTS
from streams.producer import EventProducer
from streams.samples import sample_event

pytestmark = pytest.mark.integration


def test_verdicts_and_decisions_decode_with_the_stock_deserializer(stack: Settings) -> None:
    apply_topics(stack)
    register_all_schemas(stack.registry_url)
    key = f"post:{uuid.uuid4().int % 10**15}"
    verdict = sample_event("ModerationVerdict", content_key=key, decision="LIMIT", source="MODEL",
                           scores={"spam": 0.93, "offensive": 0.02}, reasons=["spam"])
    decided = sample_event("ModeratorDecided", content_key=key, decision="ALLOW", actor_id="mod1",
                           reason="not spam: a real shop")
    reported = sample_event("ContentReported", content_key=key, actor_id="u2", reason="spam")
    with EventProducer(stack) as producer:
        producer.send("ModerationVerdict", verdict)
        producer.send("ModeratorDecided", decided)
        producer.send("ContentReported", reported)
    consumer = DeserializingConsumer({
        "bootstrap.servers": stack.kafka_bootstrap, "group.id": f"analyst-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "value.deserializer": AvroDeserializer(SchemaRegistryClient({"url": stack.registry_url}))})
    consumer.subscribe([MODERATION_VERDICTS.name, MODERATION.name])
    got: dict[str, dict] = {}
    try:
        for _ in range(120):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None and msg.key() == key.encode():
                got[msg.value()["event_type"]] = msg.value()
            if len(got) == 3:
                break
    finally:
        consumer.close()
    assert got["ModerationVerdict"]["decision"] == "LIMIT"
    assert got["ModerationVerdict"]["scores"] == {"spam": 0.93, "offensive": 0.02}
    assert got["ModeratorDecided"]["actor_id"] == "mod1"
    assert got["ModeratorDecided"]["reason"] == "not spam: a real shop"
    assert got["ContentReported"]["reason"] == "spam"
