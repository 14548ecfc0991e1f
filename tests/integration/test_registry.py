"""The registry contract, on the stack's Apicurio Registry (KafkaSQL storage, Confluent-compatible API).

Stock ``confluent_kafka`` clients only: compatibility levels, 409 on an incompatible schema, lookup
by id and by subject, the serde round trip, the journal topic's shape, and ids kept across a restart.
"""

from __future__ import annotations

import json
import uuid

import httpx
import psutil
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext
from support.serde import as_millis

from core.settings import Settings
from ops.local import stack as local_stack
from streams.admin import register_all_schemas
from streams.catalog import ALL_TOPICS, REGISTRY_JOURNAL
from streams.samples import sample_event
from streams.serde import Serde

pytestmark = pytest.mark.integration


def avro(*fields: dict[str, object], name: str = "Post") -> Schema:
    body = {"type": "record", "name": name, "namespace": "feedstream.test", "fields": list(fields)}
    return Schema(json.dumps(body), "AVRO")


ID = {"name": "id", "type": "string"}
V1 = avro(ID, {"name": "likes", "type": "int"})
V2 = avro(ID, {"name": "likes", "type": "int"}, {"name": "lang", "type": ["null", "string"], "default": None})


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}-value"


@pytest.fixture
def client(stack: Settings) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": stack.registry_url})


def test_the_url_is_apicurios_confluent_compatible_api(stack: Settings) -> None:
    assert stack.registry_url.endswith("/apis/ccompat/v7")
    info = httpx.get(stack.registry_url.removesuffix("/apis/ccompat/v7") + "/apis/registry/v3/system/info",
                     timeout=10).json()
    assert info["name"] == "Apicurio Registry (KafkaSQL)" and info["version"].startswith("3.")


def test_registry_listens_on_loopback_only(stack: Settings) -> None:
    """Apicurio's API and its management port (health, metrics) bind to 127.0.0.1, nothing else."""
    (status,) = local_stack.status(stack, ["registry"])
    assert status.healthy and status.pid is not None
    proc = psutil.Process(status.pid)
    listening = [c.laddr for p in (proc, *proc.children(recursive=True))
                 for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert {a.port for a in listening} == {stack.registry_port, stack.registry_management_port}
    assert {a.ip.removeprefix("::ffff:") for a in listening} == {"127.0.0.1"}


def test_register_then_look_up_by_id_and_by_subject(client: SchemaRegistryClient) -> None:
    subject = unique("posts")
    schema_id = client.register_schema(subject, V1)
    assert client.register_schema(subject, V1) == schema_id  # idempotent
    assert json.loads(client.get_schema(schema_id).schema_str) == json.loads(V1.schema_str)
    latest = client.get_latest_version(subject)
    assert (latest.schema_id, latest.version, latest.subject) == (schema_id, 1, subject)
    assert client.get_version(subject, 1).schema_id == schema_id
    found = client.lookup_schema(subject, V1)
    assert (found.schema_id, found.version) == (schema_id, 1)
    assert subject in client.get_subjects() and client.get_versions(subject) == [1]
    # the same schema under another subject keeps its id, as Confluent's registry does
    fresh = SchemaRegistryClient({"url": client._rest_client.base_urls[0]})
    assert fresh.register_schema(unique("copy"), V1) == schema_id


def test_unknown_id_and_subject_are_404(client: SchemaRegistryClient) -> None:
    with pytest.raises(SchemaRegistryError) as no_id:
        client.get_schema(2**31 - 7)
    with pytest.raises(SchemaRegistryError) as no_subject:
        client.get_latest_version(unique("nobody"))
    assert no_id.value.http_status_code == no_subject.value.http_status_code == 404


def test_compatibility_levels_and_409_on_an_incompatible_schema(client: SchemaRegistryClient) -> None:
    subject = unique("evolve")
    client.register_schema(subject, V1)
    assert client.get_compatibility() == "BACKWARD"  # the global default, as in Confluent's registry
    assert client.test_compatibility(subject, V2) is True
    assert client.test_compatibility(subject, avro({"name": "id", "type": "int"})) is False
    client.set_compatibility(subject, "FULL")
    assert client.get_compatibility(subject) == "FULL"
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, avro(ID))  # drops `likes`, which has no default
    assert refused.value.http_status_code == 409
    assert client.get_versions(subject) == [1]
    v2_id = client.register_schema(subject, V2)
    assert client.get_latest_version(subject).schema_id == v2_id


def test_full_transitive_checks_every_earlier_version(client: SchemaRegistryClient) -> None:
    a = avro(ID, {"name": "x", "type": "int", "default": 0})
    b = avro(ID)  # drops x (it had a default): FULL against a
    c = avro(ID, {"name": "x", "type": "string", "default": ""})  # FULL against b, not against a
    plain, transitive = unique("full"), unique("full-transitive")
    for subject, level in ((plain, "FULL"), (transitive, "FULL_TRANSITIVE")):
        client.set_compatibility(subject, level)
        client.register_schema(subject, a)
        client.register_schema(subject, b)
    assert client.register_schema(plain, c) > 0
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(transitive, c)
    assert refused.value.http_status_code == 409


def test_stock_avro_serde_round_trip(client: SchemaRegistryClient) -> None:
    ctx = SerializationContext(unique("serde").removesuffix("-value"), MessageField.VALUE)
    data = AvroSerializer(client, V1.schema_str)({"id": "p1", "likes": 3}, ctx)
    assert data is not None and data[0] == 0
    fresh = SchemaRegistryClient({"url": client._rest_client.base_urls[0]})
    assert AvroDeserializer(fresh)(data, ctx) == {"id": "p1", "likes": 3}


def test_stock_deserializer_reads_every_record_of_every_catalog_topic(stack: Settings) -> None:
    """What the project's serde writes (ids from `topics register`), a stock client reads back."""
    register_all_schemas(stack.registry_url)
    ours = Serde(stack.registry_url, auto_register=False)  # every id must already be registered
    stock = AvroDeserializer(SchemaRegistryClient({"url": stack.registry_url}))
    pairs = [(t.name, r) for t in ALL_TOPICS for r in t.value_schemas]
    assert len(pairs) >= 25 and {t for t, _ in pairs} >= {"posts.v1", "engagement-counts.v1", "trending.v1"}
    for topic, record in pairs:
        value = sample_event(record)
        data = ours.encode(record, value, topic=topic)
        decoded = stock(data, SerializationContext(topic, MessageField.VALUE))
        assert as_millis(decoded) == as_millis(ours.decode(data).value), (topic, record)


def test_journal_topic_is_one_partition_kept_forever(stack: Settings) -> None:
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    name = REGISTRY_JOURNAL.name
    assert len(admin.list_topics(topic=name, timeout=10).topics[name].partitions) == 1
    resource = ConfigResource(ResourceType.TOPIC, name)
    configs = admin.describe_configs([resource])[resource].result(10)
    assert (configs["cleanup.policy"].value, configs["retention.ms"].value) == ("delete", "-1")


def _every_id(client: SchemaRegistryClient) -> dict[tuple[str, int], int]:
    return {(subject, v): client.get_version(subject, v).schema_id
            for subject in client.get_subjects() for v in client.get_versions(subject)}


def test_restart_keeps_every_schema_id_and_level(stack: Settings) -> None:
    register_all_schemas(stack.registry_url)
    before_client = SchemaRegistryClient({"url": stack.registry_url})
    subject = unique("restart")
    before_client.set_compatibility(subject, "FULL_TRANSITIVE")
    first = before_client.register_schema(subject, V1)
    before = _every_id(before_client)
    assert len(before) >= 25

    local_stack.down(stack, ["registry"], echo=lambda *_: None)
    local_stack.up(stack, ["registry"], echo=lambda *_: None)  # replays the KafkaSQL journal

    after_client = SchemaRegistryClient({"url": stack.registry_url})  # no cached ids
    assert _every_id(after_client) == before
    assert after_client.get_compatibility(subject) == "FULL_TRANSITIVE"
    assert json.loads(after_client.get_schema(first).schema_str) == json.loads(V1.schema_str)
    assert all(not r.created for r in register_all_schemas(stack.registry_url))
    with pytest.raises(SchemaRegistryError) as refused:  # still enforced after the restart
        after_client.register_schema(subject, avro({"name": "id", "type": "int"}))
    assert refused.value.http_status_code == 409
