"""Runtime glue shared by the graph and fan-out workers: store handles, TimelineUpdate emission, the app."""

from __future__ import annotations

import asyncio
import io
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import fastavro
import faust
import redis as _redis
from cassandra.cluster import Session

from core.clock import millis
from core.events import envelope
from core.feed import TimelineWrite
from core.settings import Settings
from stores import cassandra, graph
from stores import redis as redis_store
from streams.catalog import TIMELINE_UPDATES, Topic
from streams.errors import DeliveryError, PoisonRecord
from streams.producer import event_type_headers
from streams.schemas import EVENT_TYPE
from streams.serde import HEADER, MAGIC, Serde
from streams.splice import Spliced
from streams.validation import validate_record
from topologies.faust_runtime import (
    SourceRecord,
    catalog_topic,
    create_faust_app,
    dead_letter_record,
    dlq_topic,
    in_thread,
    make_serde,
    register_batch_agent,
)

log = logging.getLogger(__name__)
# per record its timeline writes, or the PoisonRecord it was refused with (dead-lettered by the app)
Results = list[tuple[SourceRecord, "list[TimelineWrite] | PoisonRecord"]]
Process = Callable[[list[SourceRecord]], Results]
Emit = Callable[[Serde, faust.TopicT, Results, str], Awaitable[Awaitable[Any] | None]]


@dataclass
class Stores:
    """Lazily opened Redis client, Cassandra session and graph writer for one worker."""

    settings: Settings
    _r: _redis.Redis | None = None
    _s: Session | None = None
    _g: graph.GraphWriter | None = field(default=None, repr=False)

    @property
    def r(self) -> _redis.Redis:
        """The Redis client."""
        if self._r is None:
            self._r = redis_store.client(self.settings)
        return self._r

    @property
    def s(self) -> Session:
        """The Cassandra session (keyspace migrated on first use)."""
        if self._s is None:
            self._s = cassandra.session(self.settings)
        return self._s

    @property
    def graph(self) -> graph.GraphWriter:
        """The graph writer."""
        if self._g is None:
            self._g = graph.GraphWriter(self.r, self.s)
        return self._g


def occurred_ms(value: dict[str, Any]) -> int:
    """The event's occurred_at as epoch ms (fastavro decodes timestamp-millis to datetime)."""
    return millis(value["occurred_at"])


def source_of(rec: SourceRecord) -> dict[str, Any]:
    """The freshness fields for writes caused by ``rec`` (and its trace, for the realtime push)."""
    out = {"ts": occurred_ms(rec.value), "topic": rec.topic, "partition": rec.partition, "offset": rec.offset}
    if rec.trace:
        out["traceparent"] = rec.trace
    return out


def timeline_update(w: TimelineWrite, rec: SourceRecord, actor: str) -> dict[str, Any]:
    """The TimelineUpdate event for one write caused by ``rec``."""
    return {**envelope(actor), "reader_id": w.reader_id, "post_id": w.post_id,
            "author_id": w.author_id, "op": w.op, "source_topic": rec.topic,
            "source_partition": rec.partition, "source_offset": rec.offset}


_HEADERS = event_type_headers("io.feedstream.derived.TimelineUpdate")
_VARYING = ("event_id", "reader_id")  # the fields a post's TimelineUpdates differ in


async def start_emit(serde: Serde, topic: faust.TopicT,
                     results: Iterable[tuple[SourceRecord, list[TimelineWrite]]], actor: str) -> Any:
    """Hand a batch's TimelineUpdates to the producer; return an awaitable of all their deliveries."""
    futures = []
    for rec, writes in results:
        for w in writes:
            data = serde.encode("TimelineUpdate", timeline_update(w, rec, actor), TIMELINE_UPDATES.name)
            futures.append(await topic.send(key=w.reader_id.encode(), value=data, headers=_HEADERS))
    return asyncio.gather(*futures)


class BulkEmit:
    """The default :data:`Emit`: a batch's TimelineUpdates through one librdkafka producer.

    Faust's per-message ``send`` (a future and a buffer hop per record) and per-record schema
    validation cost more than the Redis side of a delivery; here a post's updates, which differ
    only in reader and event id, are encoded once with the pre-parsed schema (and validated once)
    and spliced per reader (:class:`streams.splice.Spliced`), produced without a per-message await, and the batch's deliveries are awaited by one
    ``flush`` in a thread. A failed delivery raises (the worker crashes, the batch is not acked).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: Any = None

    @property
    def producer(self) -> Any:
        """The librdkafka producer (the platform's producer config), opened on first use."""
        if self._producer is None:
            from confluent_kafka import Producer

            from streams.producer import producer_config
            # delivery reports only for failures: no Python callback per delivered update
            self._producer = Producer(producer_config(self.settings, **{"queue.buffering.max.messages": 1_000_000,
                                                                         "delivery.report.only.error": True}))
        return self._producer

    def produce(self, serde: Serde, topic: str, results: Iterable[tuple[SourceRecord, list[TimelineWrite]]],
                actor: str) -> list[str]:
        """Encode and produce every update of ``results``; return the delivery errors seen so far."""
        fullname = serde.schemas.fullname("TimelineUpdate")
        parsed = serde.schemas.parsed[fullname]
        head = HEADER.pack(MAGIC, serde.schema_id(fullname, topic))
        errors: list[str] = []
        prod = self.producer

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(err.str())

        for rec, writes in results:
            templates: dict[tuple[int, str, str], Spliced] = {}  # per post and op (streams.splice)
            for w in writes:
                t = templates.get((w.post_id, w.author_id, w.op))
                if t is None:
                    value = {**timeline_update(w, rec, actor), EVENT_TYPE: "TimelineUpdate"}
                    validate_record(parsed, value)
                    t = templates[(w.post_id, w.author_id, w.op)] = Spliced(parsed, value, _VARYING)
                data = head + t.encode({"event_id": str(uuid.uuid4()), "reader_id": w.reader_id})
                while True:
                    try:
                        prod.produce(topic, data, w.reader_id.encode(), on_delivery=on_delivery,
                                     headers=_HEADERS)
                        break
                    except BufferError:  # local queue full: serve delivery reports, then retry
                        prod.poll(0.05)
            prod.poll(0)
        return errors

    def produce_records(self, serde: Serde, topic: str, record: str,
                        items: Iterable[tuple[bytes, dict[str, Any]]], headers: Any,
                        errors: list[str] | None = None) -> list[str]:
        """Encode ``(key, value)`` items as ``record`` with the pre-parsed schema (fastavro refuses
        a value of the wrong type) and produce them; return ``errors``, to which failed deliveries
        are appended (when :meth:`flushed` serves their reports)."""
        fullname = serde.schemas.fullname(record)
        parsed = serde.schemas.parsed[fullname]
        head = HEADER.pack(MAGIC, serde.schema_id(fullname, topic))
        typed = {EVENT_TYPE: fullname.rsplit(".", 1)[-1]} if fullname in serde.schemas.typed else {}
        errors = [] if errors is None else errors
        prod = self.producer
        write = fastavro.schemaless_writer

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(err.str())

        for key, value in items:
            out = io.BytesIO()
            out.write(head)
            write(out, parsed, {**value, **typed} if typed else value)
            while True:
                try:
                    prod.produce(topic, out.getvalue(), key, on_delivery=on_delivery, headers=headers)
                    break
                except BufferError:  # local queue full: serve delivery reports, then retry
                    prod.poll(0.05)
        prod.poll(0)
        return errors

    async def flushed(self, errors: list[str], what: str) -> None:
        """Wait (in a thread) until everything produced so far is delivered; raise if any failed."""
        left = await asyncio.to_thread(self.producer.flush, self.settings.topology_shutdown_grace_s + 30)
        if errors or left:
            raise DeliveryError(f"{what} not delivered: {left} pending, errors {errors[:3]}")

    async def __call__(self, serde: Serde, topic: faust.TopicT,
                       results: Iterable[tuple[SourceRecord, list[TimelineWrite]]], actor: str) -> Any:
        name = topic.get_topic_name()
        results = list(results)
        errors = await asyncio.to_thread(self.produce, serde, name, results, actor)
        timeout_s = self.settings.topology_shutdown_grace_s + 30

        async def delivered() -> None:
            left = await asyncio.to_thread(self.producer.flush, timeout_s)
            if errors or left:
                raise DeliveryError(f"TimelineUpdates to {name} not delivered: {left} pending, "
                                    f"errors {errors[:3]}")
        return delivered()


def timeline_app(settings: Settings, name: str, source: Topic, agent: str, *, process: Process,
                 validate: Callable[[SourceRecord], None], app_id: str | None = None,
                 serde: Serde | None = None, broker: str | None = None, emit: Emit | None = None,
                 max_batch: int | None = None, within_s: float | None = None) -> faust.App:
    """A timeline-writing Faust app: one batching agent on ``source`` that runs ``process`` on each
    batch in a thread, then hands the batch's TimelineUpdates to Kafka (``emit``, default
    :func:`start_emit`) when ``settings.emit_timeline_updates``; acked after both. Records ``process``
    refused (a :class:`PoisonRecord` in place of their writes) are dead-lettered before the ack.
    """
    app = create_faust_app(settings, name, app_id=app_id, broker=broker)
    serde = serde or make_serde(settings)
    send = emit or BulkEmit(settings)
    updates = catalog_topic(app, TIMELINE_UPDATES, settings)
    dlq = dlq_topic(app)

    async def handle(recs: list[SourceRecord]) -> Awaitable[Any] | None:
        t0 = time.time()
        results = []
        for rec, out in await in_thread(app, process, recs):
            if isinstance(out, PoisonRecord):
                await dead_letter_record(app, serde, dlq, app.conf.id, rec, out)
            else:
                results.append((rec, out))
        done = await send(serde, updates, results, name) if settings.emit_timeline_updates else None
        if settings.log_batches:  # lag: record timestamp -> batch start; stores: visible in Redis
            log.info("batch n=%d lag_ms=%.1f stores_ms=%.1f", len(recs),
                     t0 * 1000 - recs[0].timestamp_ms, (time.time() - t0) * 1000)
        return done

    extra: dict[str, Any] = {} if max_batch is None else {"max_batch": max_batch}
    if within_s is not None:
        extra["within_s"] = within_s
    register_batch_agent(app, catalog_topic(app, source, settings), handle, serde=serde, name=agent,
                         validate=validate, **extra)
    return app
