"""The four engines, over real connections: Kafka (two clients), Cassandra, Redis, Flink SQL."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from core.settings import Settings


def _topic(admin_bootstrap: str, partitions: int = 1) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": admin_bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)
    return name


def _consume_all(bootstrap: str, topic: str, n: int, timeout_s: float = 30) -> list[bytes]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    out: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(out) < n and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is not None and msg.error() is None:
                out.append(msg.value())
    finally:
        c.close()
    return out


def test_confluent_kafka_round_trip(stack: Settings) -> None:
    topic = _topic(stack.kafka_bootstrap)
    p = Producer({"bootstrap.servers": stack.kafka_bootstrap, "enable.idempotence": True})
    for i in range(10):
        p.produce(topic, key=str(i).encode(), value=f"v{i}".encode())
    assert p.flush(30) == 0
    p.close()  # destroy now: an idle client outliving the stack reconnects noisily
    assert _consume_all(stack.kafka_bootstrap, topic, 10) == [f"v{i}".encode() for i in range(10)]


async def test_aiokafka_round_trip(stack: Settings) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = _topic(stack.kafka_bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(5):
            await producer.send_and_wait(topic, f"a{i}".encode(), key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=stack.kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=f"g-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    got: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            async for msg in consumer:
                got.append(msg.value)
                if len(got) == 5:
                    break
    finally:
        await consumer.stop()
    assert got == [f"a{i}".encode() for i in range(5)]


def test_cassandra_keyspace_table_round_trip(stack: Settings) -> None:
    from cassandra.cluster import Cluster

    cluster = Cluster(stack.cassandra_hosts, port=stack.cassandra_port)
    try:
        s = cluster.connect()
        ks = f"ks_{uuid.uuid4().hex[:8]}"
        s.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                  "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        s.execute(f"CREATE TABLE {ks}.kv (k text PRIMARY KEY, v int)")
        s.execute(f"INSERT INTO {ks}.kv (k, v) VALUES (%s, %s)", ("answer", 42))
        row = s.execute(f"SELECT v FROM {ks}.kv WHERE k = %s", ("answer",)).one()
        assert row.v == 42
        version = s.execute("SELECT release_version FROM system.local").one().release_version
        assert version.startswith("5.0")
        s.execute(f"DROP KEYSPACE {ks}")
    finally:
        cluster.shutdown()


def test_redis_round_trip(stack: Settings) -> None:
    import redis

    r = redis.Redis.from_url(stack.redis_url)
    key = f"t:{uuid.uuid4().hex}"
    r.zadd(key, {"a": 1, "b": 2})
    assert r.zrevrange(key, 0, -1) == [b"b", b"a"]
    assert r.delete(key) == 1


@pytest.mark.timeout(300)
def test_pyflink_sql_kafka_to_kafka(stack: Settings) -> None:
    from topologies.flink import table_env

    src, dst = _topic(stack.kafka_bootstrap), _topic(stack.kafka_bootstrap)
    p = Producer({"bootstrap.servers": stack.kafka_bootstrap})
    for i in range(6):
        p.produce(src, json.dumps({"tag": "a" if i % 2 else "b", "n": i}).encode())
    assert p.flush(30) == 0
    p.close()  # destroy now: an idle client outliving the stack reconnects noisily

    t_env = table_env(stack, streaming=True)
    t_env.execute_sql(f"""
        CREATE TABLE src (tag STRING, n INT) WITH (
          'connector' = 'kafka', 'topic' = '{src}',
          'properties.bootstrap.servers' = '{stack.kafka_bootstrap}',
          'properties.group.id' = 'flink-test', 'scan.startup.mode' = 'earliest-offset',
          'scan.bounded.mode' = 'latest-offset', 'format' = 'json')""")
    t_env.execute_sql(f"""
        CREATE TABLE dst (tag STRING, doubled INT) WITH (
          'connector' = 'kafka', 'topic' = '{dst}',
          'properties.bootstrap.servers' = '{stack.kafka_bootstrap}', 'format' = 'json')""")
    t_env.execute_sql("INSERT INTO dst SELECT UPPER(tag), n * 2 FROM src WHERE n >= 2").wait(240_000)  # ms

    rows = [json.loads(v) for v in _consume_all(stack.kafka_bootstrap, dst, 4)]
    assert sorted((r["tag"], r["doubled"]) for r in rows) == [("A", 6), ("A", 10), ("B", 4), ("B", 8)]
