"""Analysts tell event types apart with stock tools: ``event_type`` is in every record (issue 14 item 10).

PostCreated and PostEdited have identical fields; the stock confluent-kafka AvroDeserializer and a
Flink SQL ``avro-confluent`` table see which is which from the record's ``event_type``. A record
written before the field existed decodes through a reader schema with the record's own name.
"""

from __future__ import annotations

import copy
import io
import json
import struct
import uuid
from collections.abc import Iterator
from dataclasses import replace

import fastavro
import pytest
from confluent_kafka import Consumer, DeserializingConsumer, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from core.settings import Settings
from streams.admin import apply_topics, delete_topics, register_all_schemas
from streams.catalog import POSTS, Topic
from streams.producer import EventProducer
from streams.samples import sample_event
from streams.schemas import default_schemas
from streams.serde import subject_for

pytestmark = pytest.mark.integration
SCHEMAS = default_schemas()
CREATED = "io.feedstream.events.PostCreated"


@pytest.fixture(scope="module")
def posts(stack: Settings) -> Iterator[tuple[Settings, Topic, dict[str, str]]]:
    """A one-partition posts-like topic holding a pre-``event_type`` PostCreated, then a new
    PostCreated and a PostEdited with identical fields; yields the event ids by kind."""
    apply_topics(stack)
    register_all_schemas(stack.registry_url)
    topic = replace(POSTS, name=f"test-event-type-{uuid.uuid4().hex[:8]}", partitions=1,
                    retention_ms=3_600_000, cleanup_policy="delete")
    apply_topics(stack, topics=[topic])
    try:
        old = copy.deepcopy(SCHEMAS.standalone[CREATED])  # the contract before event_type
        old["fields"] = [f for f in old["fields"] if f["name"] != "event_type"]
        registry = SchemaRegistryClient({"url": stack.registry_url})
        old_id = registry.register_schema(subject_for(topic.name, CREATED), Schema(json.dumps(old), "AVRO"))
        legacy = {k: v for k, v in sample_event("PostCreated", author_id="ann").items() if k != "event_type"}
        body = io.BytesIO()
        body.write(struct.pack(">bI", 0, old_id))
        fastavro.schemaless_writer(body, fastavro.parse_schema(old), legacy)
        raw = Producer({"bootstrap.servers": stack.kafka_bootstrap})
        raw.produce(topic.name, body.getvalue(), b"ann")
        assert raw.flush(30) == 0
        created = {k: v for k, v in sample_event("PostCreated", author_id="ann").items() if k != "event_type"}
        edited = {**created, "event_id": str(uuid.uuid4())}  # same fields, another event
        with EventProducer(stack) as producer:
            producer.send("PostCreated", created, topic=topic)
            producer.send("PostEdited", edited, topic=topic)
        yield stack, topic, {"legacy": legacy["event_id"], "PostCreated": created["event_id"],
                             "PostEdited": edited["event_id"]}
    finally:
        delete_topics([topic.name], stack)


def test_stock_deserializer_shows_event_type(posts: tuple[Settings, Topic, dict[str, str]]) -> None:
    settings, topic, ids = posts
    registry = SchemaRegistryClient({"url": settings.registry_url})

    def read(deserializer: AvroDeserializer) -> dict[str, dict]:
        consumer = DeserializingConsumer({
            "bootstrap.servers": settings.kafka_bootstrap, "group.id": f"analyst-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest", "value.deserializer": deserializer})
        consumer.subscribe([topic.name])
        got: dict[str, dict] = {}
        try:
            for _ in range(120):
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None:
                    got[msg.value()["event_id"]] = msg.value()
                if len(got) == 3:
                    break
        finally:
            consumer.close()
        return got

    stock = read(AvroDeserializer(registry))  # writer schemas only, as an analyst would
    assert stock[ids["PostCreated"]]["event_type"] == "PostCreated"
    assert stock[ids["PostEdited"]]["event_type"] == "PostEdited"
    assert "event_type" not in stock[ids["legacy"]]  # written before the field: only a reader schema adds it
    raw = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"analyst-{uuid.uuid4().hex}"})
    raw.assign([TopicPartition(topic.name, 0, 0)])  # the legacy record is the topic's first
    msg = raw.poll(30)
    raw.close()
    assert msg is not None and msg.error() is None
    with_reader = AvroDeserializer(registry, SCHEMAS.schema_str(CREATED))  # today's PostCreated contract
    legacy = with_reader(msg.value(), SerializationContext(topic.name, MessageField.VALUE))
    assert legacy["event_id"] == ids["legacy"] and legacy["event_type"] == "PostCreated"  # the default


def test_flink_sql_filters_on_event_type(posts: tuple[Settings, Topic, dict[str, str]]) -> None:
    settings, topic, ids = posts
    from topologies.flink import table_env

    t_env = table_env(settings, streaming=False)
    t_env.execute_sql(f"""
        CREATE TABLE posts (event_id STRING, event_type STRING, post_id BIGINT, author_id STRING, text STRING)
        WITH ('connector' = 'kafka', 'topic' = '{topic.name}',
              'properties.bootstrap.servers' = '{settings.kafka_bootstrap}',
              'properties.group.id' = 'analyst-flink', 'scan.startup.mode' = 'earliest-offset',
              'scan.bounded.mode' = 'latest-offset',
              'format' = 'avro-confluent', 'avro-confluent.url' = '{settings.registry_url}')""")
    with t_env.execute_sql("SELECT event_id, event_type FROM posts WHERE event_type = 'PostEdited'").collect() as rows:
        edited = [tuple(r) for r in rows]
    assert edited == [(ids["PostEdited"], "PostEdited")]
    with t_env.execute_sql("SELECT event_id, event_type FROM posts").collect() as rows:
        every = {r[0]: r[1] for r in rows}
    # Flink's reader schema is derived from the DDL (nullable columns): a pre-field record reads NULL
    assert every == {ids["legacy"]: None, ids["PostCreated"]: "PostCreated", ids["PostEdited"]: "PostEdited"}
