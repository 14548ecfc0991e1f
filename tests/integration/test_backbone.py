"""The event backbone on real Kafka and the real schema registry (the ``stack`` fixture)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from support.serde import as_millis

from core.settings import Settings
from streams.admin import apply_topics, delete_topics, register_all_schemas
from streams.catalog import ALL_TOPICS, DEAD_LETTERS, ENGAGEMENTS, GRAPH, POSTS, Topic, topic_for
from streams.consumer import ConsumedEvent, EventConsumer
from streams.errors import DeliveryError, PoisonRecord, SchemaValidationError
from streams.producer import EventProducer
from streams.samples import sample_event
from streams.schemas import default_schemas

pytestmark = pytest.mark.integration
SCHEMAS = default_schemas()


@pytest.fixture(scope="module")
def backbone(stack: Settings) -> Iterator[Settings]:
    """The stack with every catalog topic applied and every schema registered."""
    apply_topics(stack)
    register_all_schemas(stack.registry_url)
    yield stack


@pytest.fixture()
def scratch(backbone: Settings) -> Iterator[list[Topic]]:
    """A factory of throwaway topics (deleted afterwards) shaped like catalog topics."""
    made: list[Topic] = []
    yield made
    delete_topics([t.name for t in made], backbone)


def _scratch(made: list[Topic], settings: Settings, like: Topic, partitions: int | None = None) -> Topic:
    topic = replace(like, name=f"test-{like.name}-{uuid.uuid4().hex[:8]}", partitions=partitions,
                    retention_ms=3_600_000, cleanup_policy="delete")
    made.append(topic)
    count = partitions or settings.topic_partitions
    changes = apply_topics(settings, topics=[topic])
    assert [str(c) for c in changes] == [f"created {topic.name} ({count} partition{'s' if count != 1 else ''})"]
    assert apply_topics(settings, topics=[topic]) == []
    return topic


def _consume_all(settings: Settings, topics: list[str], handler, *, expect: int,
                 group: str | None = None) -> EventConsumer:
    consumer = EventConsumer(topics, group or f"test-{uuid.uuid4().hex}", handler, settings=settings)
    deadline = time.monotonic() + 60
    while consumer.stats.handled + consumer.stats.dead_lettered < expect and time.monotonic() < deadline:
        consumer.poll(0.5)
    return consumer


def test_topics_apply_is_idempotent(backbone: Settings) -> None:
    assert not [c for c in apply_topics(backbone) if c.applied]
    assert all(not r.created for r in register_all_schemas(backbone.registry_url))


def test_every_schema_round_trips_produce_to_consume(backbone: Settings, scratch: list[Topic]) -> None:
    topic = _scratch(scratch, backbone, POSTS)
    sent = {name: sample_event(name) for name in SCHEMAS.events}
    with EventProducer(backbone) as producer:
        reports = [producer.send(name, value, topic=topic) for name, value in sent.items()]
    assert all(r.topic == topic.name and r.offset >= 0 for r in reports)
    got: dict[str, ConsumedEvent] = {}
    consumer = _consume_all(backbone, [topic.name], lambda e: got.setdefault(e.value["event_id"], e),
                            expect=len(sent))
    consumer.close()
    assert len(got) == len(sent)
    for name, value in sent.items():
        event = got[value["event_id"]]
        assert event.name == name.rpartition(".")[2]
        assert as_millis(event.value) == value


def test_posts_and_follow_edges_of_one_author_share_a_partition(backbone: Settings, scratch) -> None:
    posts, graph = _scratch(scratch, backbone, POSTS, 6), _scratch(scratch, backbone, GRAPH, 6)
    with EventProducer(backbone) as producer:
        for author in ("alice", "bob", "carol", "dave"):
            post = producer.send("PostCreated", sample_event("PostCreated", author_id=author), topic=posts)
            edge = producer.send("Followed", sample_event("Followed", followee_id=author), topic=graph)
            assert post.key == edge.key == author.encode()
            assert post.partition == edge.partition


def test_invalid_event_raises_naming_the_field_and_sends_nothing(backbone: Settings, scratch) -> None:
    topic = _scratch(scratch, backbone, POSTS)
    with EventProducer(backbone) as producer:
        with pytest.raises(SchemaValidationError, match="'media\\[0\\].url' is required"):
            producer.send("PostCreated", sample_event("PostCreated", media=[{"kind": "IMAGE"}]), topic=topic)
        producer.send("PostDeleted", sample_event("PostDeleted"), topic=topic)
    probe = Consumer({"bootstrap.servers": backbone.kafka_bootstrap, "group.id": "probe"})
    total = sum(probe.get_watermark_offsets(TopicPartition(topic.name, p), timeout=10)[1]
                for p in range(backbone.topic_partitions))
    probe.close()
    assert total == 1


def test_poison_record_goes_to_dead_letters_and_the_next_record_is_processed(backbone: Settings, scratch) -> None:
    topic = _scratch(scratch, backbone, POSTS, 1)
    with EventProducer(backbone) as producer:
        first = producer.send("PostCreated", sample_event("PostCreated", author_id="a"), topic=topic)
        raw = Producer({"bootstrap.servers": backbone.kafka_bootstrap})
        raw.produce(topic.name, b"\x00\x00\x00\x00\x01not avro at all", b"a")
        raw.produce(topic.name, b'{"json": "from a stray client"}', b"a")
        raw.flush(10)
        raw.close()
        last = producer.send("PostDeleted", sample_event("PostDeleted", author_id="a"), topic=topic)
    handled: list[int] = []
    group = f"test-{uuid.uuid4().hex}"
    consumer = _consume_all(backbone, [topic.name], lambda e: handled.append(e.offset), expect=4, group=group)
    consumer.close()
    assert handled == [first.offset, last.offset]
    assert consumer.stats.dead_lettered == 2
    assert consumer.stats.last_offsets[(topic.name, 0)] == last.offset + 1

    letters: list[dict] = []
    reader = EventConsumer([DEAD_LETTERS.name], f"test-{uuid.uuid4().hex}",
                           lambda e: letters.append(e.value) if e.value["source_topic"] == topic.name else None,
                           settings=backbone)
    deadline = time.monotonic() + 60
    while len(letters) < 2 and time.monotonic() < deadline:
        reader.poll(0.5)
    reader.close()
    assert [(d["source_partition"], d["source_offset"]) for d in letters] == [
        (0, first.offset + 1), (0, first.offset + 2)]
    assert letters[0]["value"] == b"\x00\x00\x00\x00\x01not avro at all" and letters[0]["key"] == b"a"
    assert letters[1]["error_type"] == "DecodeError" and "magic byte" in letters[1]["error"]
    assert letters[0]["consumer_group"] == group


def test_handler_errors_propagate_and_leave_the_offset_uncommitted(backbone: Settings, scratch) -> None:
    topic = _scratch(scratch, backbone, POSTS, 1)
    with EventProducer(backbone) as producer:
        producer.send_many([("PostCreated", sample_event("PostCreated", author_id="a")) for _ in range(3)], topic=topic)
    calls: list[int] = []

    def flaky(event: ConsumedEvent) -> None:
        calls.append(event.offset)
        if event.offset == 1:
            raise RuntimeError("store is down")

    group = f"test-{uuid.uuid4().hex}"
    consumer = EventConsumer([topic.name], group, flaky, settings=backbone)
    with pytest.raises(RuntimeError, match="store is down"):
        for _ in range(120):
            consumer.poll(0.5)
    consumer.close()
    assert calls == [0, 1]
    again: list[int] = []
    retry = _consume_all(backbone, [topic.name], lambda e: again.append(e.offset), expect=2, group=group)
    retry.close()
    assert again == [1, 2]  # offset 0 was committed, 1 was not


def test_handler_poison_record_is_dead_lettered_when_asked(backbone: Settings, scratch) -> None:
    topic = _scratch(scratch, backbone, POSTS, 1)
    with EventProducer(backbone) as producer:
        producer.send_many([("PostCreated", sample_event("PostCreated", author_id="a")) for _ in range(2)], topic=topic)

    def picky(event: ConsumedEvent) -> None:
        if event.offset == 0:
            raise PoisonRecord("post references an unknown author")

    consumer = _consume_all(backbone, [topic.name], picky, expect=2)
    consumer.close()
    assert (consumer.stats.dead_lettered, consumer.stats.handled) == (1, 1)


def test_stock_avro_deserializer_reads_what_we_produced(backbone: Settings) -> None:
    value = sample_event("PostCreated", author_id=f"analyst-{uuid.uuid4().hex[:6]}")
    with EventProducer(backbone) as producer:
        report = producer.send("PostCreated", value)
    assert report.topic == topic_for("PostCreated").name == "posts.v1"
    consumer = Consumer({"bootstrap.servers": backbone.kafka_bootstrap, "group.id": "analyst"})
    consumer.assign([TopicPartition(report.topic, report.partition, report.offset)])
    msg = consumer.poll(30)
    consumer.close()
    assert msg is not None and msg.error() is None
    stock = AvroDeserializer(SchemaRegistryClient({"url": backbone.registry_url}))
    decoded = stock(msg.value(), SerializationContext(report.topic, MessageField.VALUE))
    assert as_millis(decoded) == value
    assert dict(msg.headers())["event-type"] == b"io.feedstream.events.PostCreated"


def test_send_async_from_an_event_loop(backbone: Settings, scratch) -> None:
    topic = _scratch(scratch, backbone, ENGAGEMENTS)

    async def main() -> list:
        with EventProducer(backbone) as producer:
            return await asyncio.gather(
                *(producer.send_async("Liked", sample_event("Liked"), topic=topic) for _ in range(20)))

    reports = asyncio.run(main())
    assert len({(r.partition, r.offset) for r in reports}) == 20
    assert all(r.topic == topic.name and r.record == "Liked" for r in reports)


def test_delivery_failure_raises_delivery_error(backbone: Settings) -> None:
    producer = EventProducer(backbone, config={
        "bootstrap.servers": "127.0.0.1:1", "delivery.timeout.ms": 1500, "socket.timeout.ms": 1000})
    try:
        with pytest.raises(DeliveryError, match="Liked to engagements.v1 not delivered"):
            producer.send("Liked", sample_event("Liked"))
    finally:
        producer.close(timeout_s=2)


def test_catalog_topics_exist_with_their_configs(backbone: Settings) -> None:
    from streams.admin import admin_client, broker_state

    state = broker_state(admin_client(backbone), [t.name for t in ALL_TOPICS])
    for topic in ALL_TOPICS:
        want = topic.resolved(backbone)
        assert state[topic.name].configs["cleanup.policy"] == want.cleanup_policy
        assert state[topic.name].partitions >= want.partitions


def test_schema_evolution_through_register_all_schemas(backbone: Settings, tmp_path) -> None:
    import json

    from streams.errors import RegistryError
    from streams.schemas import load_schemas

    name = f"Evolving{uuid.uuid4().hex[:6]}"
    topic = Topic(f"test-evolution-{name}.v1", "a", (f"test.{name}",), "scratch")
    path = tmp_path / f"test.{name}.avsc"

    def register(fields: list[dict]) -> list:
        path.write_text(json.dumps({"type": "record", "name": name, "namespace": "test", "fields": fields}))
        return register_all_schemas(backbone.registry_url, topics=[topic], schemas=load_schemas(tmp_path))

    v1 = [{"name": "a", "type": "string"}, {"name": "b", "type": "long"}]
    assert [r.created for r in register(v1)] == [True]
    assert [r.created for r in register(v1)] == [False]
    added = [*v1, {"name": "c", "type": ["null", "string"], "default": None}]
    assert [r.created for r in register(added)] == [True]
    with pytest.raises(RegistryError, match="409|ncompatib") as info:
        register([{"name": "a", "type": "int"}, *added[1:]])
    assert topic.name in str(info.value)
    # removing a field that has no default breaks readers on the older schema (FULL_TRANSITIVE)
    with pytest.raises(RegistryError, match=r"(?s)409.*\bb\b|\bb\b.*409"):  # Apicurio names the field
        register([added[0], added[2]])
    # removing the optional field (and adding another) is fine
    swapped = [*v1, {"name": "d", "type": ["null", "long"], "default": None}]
    assert [r.created for r in register(swapped)] == [True]
