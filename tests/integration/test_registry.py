"""The registry on real Kafka: stock confluent-kafka clients, the storage contract, restarts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from core.settings import Settings
from streams.registry.contract import StorageContract
from streams.registry.kafka_storage import KafkaStorage
from streams.registry.storage import Storage

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def avro(*fields: dict[str, object], name: str = "Post") -> Schema:
    body = {"type": "record", "name": name, "namespace": "feedstream.test", "fields": list(fields)}
    return Schema(json.dumps(body), "AVRO")


V1 = avro({"name": "id", "type": "string"}, {"name": "likes", "type": "int"})
V2 = avro({"name": "id", "type": "string"}, {"name": "likes", "type": "int"},
          {"name": "lang", "type": ["null", "string"], "default": None})


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def client(stack: Settings) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": stack.registry_url})


def test_stock_client_register_fetch_latest(client: SchemaRegistryClient) -> None:
    subject = unique("posts") + "-value"
    schema_id = client.register_schema(subject, V1)
    assert client.register_schema(subject, V1) == schema_id
    fetched = client.get_schema(schema_id)
    assert json.loads(fetched.schema_str) == json.loads(V1.schema_str)
    latest = client.get_latest_version(subject)
    assert (latest.schema_id, latest.version, latest.subject) == (schema_id, 1, subject)
    found = client.lookup_schema(subject, V1)
    assert found.schema_id == schema_id and found.version == 1
    assert subject in client.get_subjects()
    assert client.get_versions(subject) == [1]
    assert client.get_schema_types() == ["AVRO"]
    other = unique("copy") + "-value"
    assert SchemaRegistryClient({"url": client._rest_client.base_urls[0]}).register_schema(
        other, V1) == schema_id


def test_stock_client_compatibility(client: SchemaRegistryClient) -> None:
    subject = unique("evolve") + "-value"
    client.register_schema(subject, V1)
    assert client.test_compatibility(subject, V2) is True
    assert client.test_compatibility(subject, avro({"name": "id", "type": "int"})) is False
    assert client.get_compatibility() == "BACKWARD"
    client.set_compatibility(subject, "FULL")
    assert client.get_compatibility(subject) == "FULL"
    with pytest.raises(SchemaRegistryError) as caught:
        client.register_schema(subject, avro({"name": "id", "type": "string"}))
    assert caught.value.http_status_code == 409
    assert "field 'likes' was removed without a default" in caught.value.error_message
    v2_id = client.register_schema(subject, V2)
    assert client.get_latest_version(subject).schema_id == v2_id
    assert client.delete_subject(subject) == [1, 2]
    assert client.delete_subject(subject, permanent=True) == [1, 2]


def test_stock_avro_serde_round_trip(client: SchemaRegistryClient) -> None:
    topic = unique("serde")
    ctx = SerializationContext(topic, MessageField.VALUE)
    data = AvroSerializer(client, V1.schema_str)({"id": "p1", "likes": 3}, ctx)
    assert data is not None and data[0] == 0
    fresh = SchemaRegistryClient({"url": client._rest_client.base_urls[0]})
    assert AvroDeserializer(fresh)(data, ctx) == {"id": "p1", "likes": 3}


@pytest.fixture
def open_storage(stack: Settings) -> Callable[[], Storage]:
    """Kafka storages over one fresh topic: a second one is a 'restart'."""
    topic = unique("_schemas-contract")
    return lambda: KafkaStorage(stack.kafka_bootstrap, topic=topic, timeout_s=20)


class TestKafkaStorageContract(StorageContract):
    """Every storage contract test, against :class:`KafkaStorage` on real Kafka."""


def test_state_topic_is_compacted_single_partition(stack: Settings) -> None:
    topic = unique("_schemas-shape")
    storage = KafkaStorage(stack.kafka_bootstrap, topic=topic)
    storage.start()
    storage.close()
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    assert len(admin.list_topics(topic=topic, timeout=10).topics[topic].partitions) == 1
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["cleanup.policy"].value == "compact"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def own_registry(stack: Settings, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Start (and restart) a registry process of our own on a fresh topic; yields a starter."""
    port, topic = _free_port(), unique("_schemas-restart")
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> str:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)  # no graceful flush: durability must not need it
                p.wait(10)
        log = open(tmp_path / f"registry-{len(procs)}.log", "wb")  # noqa: SIM115
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "streams.registry", "--host", "127.0.0.1", "--port", str(port),
             "--bootstrap", stack.kafka_bootstrap, "--topic", topic],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        ))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if procs[-1].poll() is not None:
                raise AssertionError((tmp_path / f"registry-{len(procs) - 1}.log").read_text())
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("registry did not become healthy within 60 s")

    yield start
    for p in procs:
        if p.poll() is None:
            p.terminate()
            p.wait(10)


def test_restart_keeps_schemas_and_ids(own_registry: Callable[[], str]) -> None:
    url = own_registry()
    first = SchemaRegistryClient({"url": url})
    id_a = first.register_schema("a-value", V1)
    id_b = first.register_schema("a-value", V2)
    first.set_compatibility("a-value", "FULL_TRANSITIVE")

    url = own_registry()  # SIGKILLs the first process, starts a new one on the same topic
    second = SchemaRegistryClient({"url": url})
    assert json.loads(second.get_schema(id_a).schema_str) == json.loads(V1.schema_str)
    latest = second.get_latest_version("a-value")
    assert (latest.schema_id, latest.version) == (id_b, 2)
    assert second.get_compatibility("a-value") == "FULL_TRANSITIVE"
    assert second.register_schema("a-value", V2) == id_b
    assert second.register_schema("b-value", avro({"name": "x", "type": "long"})) == id_b + 1
