"""Ceilings measured in the same run as the platform figures: raw Redis, raw Kafka producer, raw
Cassandra INSERT, and the API's framework-only endpoint. Each returns a :func:`bench.report.ceiling`.

Ceilings use scratch keys/topics/tables named after the run and remove what they create.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import redis as _redis
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.report import Sample, ceiling
from core.settings import Settings

BENCH_KEYSPACE = "feedstream_bench"


def now_iso() -> str:
    """UTC now, ISO 8601 with microseconds (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _timed_loop(step: Callable[[], int], duration_s: float, max_ops: int) -> dict[str, Any]:
    """Run ``step`` (returns ops done) until the time or count budget is spent."""
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < duration_s and done < max_ops:
        done += step()
    elapsed = time.perf_counter() - t0
    return {"count": done, "errors": 0, "error_rate": 0.0, "duration_s": round(elapsed, 3),
            "rate_per_s": done / elapsed}


def redis_zadd(s: Settings, run_id: str, duration_s: float = 2.0, depth: int = 1000,
               keys: int = 1000) -> dict[str, Any]:
    """Pipelined ZADD of one time-sortable id per command, spread over ``keys`` timelines."""
    r = _redis.Redis.from_url(s.redis_url)
    prefix = f"bench:{run_id}:zadd:"
    seq = 0

    def step() -> int:
        nonlocal seq
        p = r.pipeline(transaction=False)
        for _ in range(depth):
            seq += 1
            p.zadd(f"{prefix}{seq % keys}", {str(seq): seq})
        p.execute()
        return depth

    at = now_iso()
    try:
        stats = _timed_loop(step, duration_s, 5_000_000)
    finally:
        for k in range(0, keys, 500):
            r.delete(*[f"{prefix}{i}" for i in range(k, min(keys, k + 500))])
        r.close()
    return ceiling("redis_zadd_pipelined", run_id, at, stats, "cmds/s",
                   f"ZADD 1 member, pipelined {depth} deep over {keys} keys, one connection")


def redis_zrevrange(s: Settings, run_id: str, duration_s: float = 2.0, depth: int = 100,
                    keys: int = 100, size: int = 800, page: int = 20) -> dict[str, Any]:
    """ZREVRANGE of a ``page``-item page with scores from ``size``-member timelines, pipelined."""
    r = _redis.Redis.from_url(s.redis_url)
    prefix = f"bench:{run_id}:zrev:"
    p = r.pipeline(transaction=False)
    for k in range(keys):
        p.zadd(f"{prefix}{k}", {str(i): i for i in range(size)})
    p.execute()
    n = 0

    def step() -> int:
        nonlocal n
        p = r.pipeline(transaction=False)
        for _ in range(depth):
            n += 1
            p.zrevrange(f"{prefix}{n % keys}", 0, page - 1, withscores=True)
        p.execute()
        return depth

    at = now_iso()
    try:
        stats = _timed_loop(step, duration_s, 5_000_000)
    finally:
        r.delete(*[f"{prefix}{k}" for k in range(keys)])
        r.close()
    return ceiling("redis_zrevrange", run_id, at, stats, "cmds/s",
                   f"ZREVRANGE 0 {page - 1} WITHSCORES of {size}-member zsets, pipelined {depth} deep")


def drop_topic(admin: Any, topic: str, timeout_s: float = 15.0) -> None:
    """Delete ``topic`` and wait until the cluster's metadata no longer lists it (bounded)."""
    admin.delete_topics([topic])[topic].result(timeout_s)
    deadline = time.monotonic() + timeout_s
    while topic in admin.list_topics(timeout=timeout_s).topics and time.monotonic() < deadline:
        time.sleep(0.1)


def kafka_producer(s: Settings, run_id: str, duration_s: float = 2.0, size: int = 300,
                   partitions: int = 3) -> dict[str, Any]:
    """Raw confluent-kafka producer with the platform's producer config into a scratch topic."""
    from streams.producer import producer_config

    admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap})
    topic = f"_bench.ceiling.{run_id}"
    admin.create_topics([NewTopic(topic, partitions, s.topic_replication,
                                  config={"retention.ms": "600000"})])[topic].result(30)
    producer = Producer(producer_config(s))
    payload = bytes(size)
    delivered, failed = [0], [0]

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is None:
            delivered[0] += 1
        else:
            failed[0] += 1

    at = now_iso()
    t0 = time.perf_counter()
    try:
        while time.perf_counter() - t0 < duration_s:
            try:
                for i in range(1000):
                    producer.produce(topic, payload, key=str(i % 64).encode(), on_delivery=on_delivery)
            except BufferError:
                pass
            producer.poll(0)
        remaining = producer.flush(30)
        elapsed = time.perf_counter() - t0
        failed[0] += remaining
    finally:
        drop_topic(admin, topic)
    total = delivered[0] + failed[0]
    stats = {"count": total, "errors": failed[0], "error_rate": failed[0] / total if total else 0.0,
             "duration_s": round(elapsed, 3), "rate_per_s": delivered[0] / elapsed}
    return ceiling("kafka_raw_producer", run_id, at, stats, "msgs/s",
                   f"{size}-byte records, acks=all, idempotent, lz4, {partitions} partitions, until flushed")


def cassandra_insert(s: Settings, run_id: str, duration_s: float = 2.0, concurrency: int = 64) -> dict[str, Any]:
    """Raw prepared INSERTs with ``concurrency`` in flight into a scratch table of a bench keyspace."""
    from cassandra.concurrent import execute_concurrent_with_args

    from stores.cassandra import session

    sess = session(s)
    sess.execute(f"CREATE KEYSPACE IF NOT EXISTS {BENCH_KEYSPACE} WITH replication = "
                 "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    sess.execute(f"CREATE TABLE IF NOT EXISTS {BENCH_KEYSPACE}.ceiling (run text, k bigint, v text, "
                 "PRIMARY KEY ((run, k)))")
    stmt = sess.prepare(f"INSERT INTO {BENCH_KEYSPACE}.ceiling (run, k, v) VALUES (?, ?, ?) USING TTL 600")
    seq, errors = 0, 0

    def step() -> int:
        nonlocal seq, errors
        args = [(run_id, seq + i, "x" * 200) for i in range(1000)]
        seq += 1000
        results = execute_concurrent_with_args(sess, stmt, args, concurrency=concurrency,
                                               raise_on_first_error=False)
        errors += sum(1 for ok, _ in results if not ok)
        return len(args)

    at = now_iso()
    stats = _timed_loop(step, duration_s, 2_000_000)
    stats.update(errors=errors, error_rate=errors / stats["count"] if stats["count"] else 0.0,
                 rate_per_s=(stats["count"] - errors) / stats["duration_s"])
    return ceiling("cassandra_raw_insert", run_id, at, stats, "rows/s",
                   f"prepared INSERT, {concurrency} in flight, 200-byte value, one node")


def kafka_consume(s: Settings, topic: str, start: dict[int, int], end: dict[int, int],
                  timeout_s: float = 60.0) -> dict[str, Any]:
    """Raw confluent-kafka consume (no decode) of ``topic`` from ``start`` to ``end`` offsets per partition."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": f"ceiling-consume-{new_run_id()}",
                  "enable.auto.commit": False})
    want = sum(max(0, end[p] - start.get(p, 0)) for p in end)
    try:
        c.assign([TopicPartition(topic, p, start.get(p, 0)) for p in end])
        n, at, t0 = 0, now_iso(), time.perf_counter()
        deadline = t0 + timeout_s
        while n < want and time.perf_counter() < deadline:
            n += sum(1 for m in c.consume(1000, timeout=0.5) if m.error() is None)
        dt = time.perf_counter() - t0
    finally:
        c.close()
    stats = {"count": n, "duration_s": dt, "rate_per_s": n / dt if dt else 0.0}
    return ceiling("kafka_raw_consume", new_run_id(), at, stats, "msgs/s",
                   f"confluent-kafka consume of {want} records of {topic}, no decode")


async def closed_loop(call: Callable[[int], Awaitable[tuple[bool, str]]], concurrency: int,
                      duration_s: float, max_ops: int, t_origin: float) -> list[Sample]:
    """Run ``call(i)`` from ``concurrency`` workers until the time or count budget is spent."""
    samples: list[Sample] = []
    deadline = time.perf_counter() + duration_s
    counter = iter(range(max_ops))

    async def worker() -> None:
        for i in counter:
            if time.perf_counter() >= deadline:
                return
            t = time.perf_counter()
            ok, kind = await call(i)
            end = time.perf_counter()
            samples.append(Sample(end - t_origin, end - t, ok, kind))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


def api_noop(s: Settings, run_id: str, connections: int, duration_s: float) -> dict[str, Any]:
    """``GET /v1/_bench/noop`` of the same API server through wrk, as the HTTP platform figures are driven."""
    from bench.http_load import HttpReq, run_wrk

    at = now_iso()
    stats = run_wrk(s.api_url, [HttpReq("GET", "/v1/_bench/noop")], duration_s=duration_s,
                    connections=connections)
    return ceiling("api_noop", run_id, at, stats, "req/s",
                   f"GET /v1/_bench/noop, {stats['how']}, same server")


def new_run_id() -> str:
    """A short unique id for one bench run (names its scratch keys and topics too)."""
    return uuid.uuid4().hex[:12]
