"""Idempotent Avro producer: a send returns only once Kafka has confirmed delivery."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Self

from confluent_kafka import KafkaError, Message, Producer

from core import tracing
from core.settings import Settings, get_settings
from streams.catalog import Topic, get_topic, topic_for
from streams.errors import DeliveryError, DeliveryInDoubt
from streams.lookup import find_event
from streams.serde import Serde

# Failures after which the record is certainly not in the log: refused by the broker, or never sent.
# Any other failure of a record that was routed to a partition (a timeout, a lost connection while
# in flight) may still have been written: it is reported as DeliveryInDoubt.
NOT_WRITTEN = frozenset({
    KafkaError._PURGE_QUEUE, KafkaError._UNKNOWN_TOPIC,
    KafkaError._UNKNOWN_PARTITION, KafkaError._INVALID_ARG, KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.INVALID_RECORD, KafkaError.INVALID_MSG, KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_REQUIRED_ACKS,
})
HEADER_EVENT_TYPE = "event-type"  # full record name, for routing without decoding (also the value's event_type)


def event_type_headers(fullname: str) -> list[tuple[str, bytes]]:
    """The record headers every feedstream producer sets: ``event-type`` = the record's full name."""
    return [(HEADER_EVENT_TYPE, fullname.encode())]


@dataclass(frozen=True)
class DeliveryReport:
    """Where Kafka stored a record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    record: str
    timestamp_ms: int


def delivery_failure(err: KafkaError, partition: int | None, what: str) -> DeliveryError:
    """The error of a failed delivery report: DeliveryInDoubt unless the record surely is not in the log.

    A record is only sent once routed to a partition (``partition >= 0``); one that never was, or
    that the broker refused, is a plain DeliveryError (safe to report as "not written").
    """
    text = f"{what} not delivered: {err.str()}"
    if partition is None or partition < 0 or err.code() in NOT_WRITTEN:
        return DeliveryError(text)
    return DeliveryInDoubt(f"{text} (it may still have been written)", partition)


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Return the librdkafka config every feedstream producer uses (idempotent, acks=all)."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "delivery.timeout.ms": 30_000,
        **overrides,
    }


class EventProducer:
    """Validate, encode and produce events; ``send`` blocks and ``send_async`` awaits delivery."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        serde: Serde | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.serde = serde or Serde(self.settings.registry_url)
        conf = producer_config(self.settings, **dict(config or {}))
        self._timeout_s = int(conf["delivery.timeout.ms"]) / 1000 + 5
        self._producer = Producer(conf)
        self._closed = threading.Event()
        self._outstanding: dict[str, Future[DeliveryReport]] = {}  # event id -> its unsettled delivery
        self._outstanding_lock = threading.Lock()
        self._poller = threading.Thread(target=self._poll_loop, name="event-producer-poll", daemon=True)
        self._poller.start()

    def _poll_loop(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.05)

    def submit(
        self,
        record: str,
        value: Mapping[str, Any],
        key: str | bytes | None = None,
        *,
        topic: Topic | str | None = None,
    ) -> Future[DeliveryReport]:
        """Produce without waiting; the future resolves on delivery or fails with DeliveryError.

        Validation errors (:class:`~streams.errors.SchemaValidationError`) raise here, before
        anything is sent. The key defaults to the event type's key field (see the catalog).
        """
        if self._closed.is_set():
            raise DeliveryError("producer is closed")
        target, fullname, key = self._route(record, value, key, topic)
        payload = self.serde.encode(fullname, value, target.name)
        future: Future[DeliveryReport] = Future()
        short = fullname.rpartition(".")[2]

        sp = tracing.start_span(f"{target.name} publish", kind=tracing.SpanKind.PRODUCER,
                                attributes={"messaging.destination.name": target.name,
                                            "feedstream.record": short}) if tracing.ENABLED else None

        event_id = str(value.get("event_id") or "")

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if sp is not None:
                tracing.end_delivery(sp, err, msg)
            if event_id:
                with self._outstanding_lock:
                    if self._outstanding.get(event_id) is future:
                        del self._outstanding[event_id]
            if err is not None:
                future.set_exception(delivery_failure(err, msg.partition(), f"{short} to {target.name}"))
            else:
                future.set_result(DeliveryReport(
                    target.name, msg.partition() or 0, msg.offset() or 0, msg.key(), short, msg.timestamp()[1]))

        headers = event_type_headers(fullname) if sp is None else tracing.with_parent(event_type_headers(fullname), sp)
        if event_id:  # before produce: the delivery report may come first
            with self._outstanding_lock:
                self._outstanding[event_id] = future
        while True:
            try:
                self._producer.produce(target.name, payload, key, on_delivery=on_delivery, headers=headers)
                return future
            except BufferError:  # local queue full: let the poll thread drain delivery reports
                time.sleep(0.005)
            except BaseException:
                if event_id:
                    with self._outstanding_lock:
                        if self._outstanding.get(event_id) is future:
                            del self._outstanding[event_id]
                raise

    def outstanding(self, event_id: str) -> Future[DeliveryReport] | None:
        """The delivery of an event this producer sent and librdkafka has not settled yet, if any.

        A send that timed out (DeliveryInDoubt) may still be queued or in flight here, and land
        later: a retry of the same event must wait for this outcome, not read the log and produce
        again (the log cannot show a record that has not arrived yet).
        """
        with self._outstanding_lock:
            return self._outstanding.get(event_id)

    def _route(self, record: str, value: Mapping[str, Any], key: str | bytes | None,
               topic: Topic | str | None) -> tuple[Topic, str, bytes | None]:
        """The topic, full record name and key bytes of an event."""
        target = topic_for(record) if topic is None else topic if isinstance(topic, Topic) else get_topic(topic)
        fullname = self.serde.schemas.fullname(record)
        if key is None:  # the key is a property of the event type, even on a non-catalog topic
            home = target if fullname in target.value_schemas else topic_for(fullname)
            key = home.key_for(fullname, value)
        elif isinstance(key, str):
            key = key.encode()
        return target, fullname, key

    def topic_of(self, record: str, value: Mapping[str, Any]) -> str:
        """The topic ``record`` is produced to."""
        return self._route(record, value, None, None)[0].name

    def find(self, record: str, value: Mapping[str, Any], partition: int | None, since_ms: int,
             timeout_s: float) -> tuple[int, int] | None:
        """``(partition, offset)`` of this event (by ``event_id``) if an earlier send of it reached the log.

        For a send that failed with DeliveryInDoubt; raises DeliveryInDoubt if the log can't be read.
        """
        target, _, key = self._route(record, value, None, None)
        return find_event(self.settings.kafka_bootstrap, self.serde, target.name, partition, key,
                          str(value["event_id"]), since_ms, timeout_s)

    def send(self, record: str, value: Mapping[str, Any], key: str | bytes | None = None,
             *, topic: Topic | str | None = None) -> DeliveryReport:
        """Produce one event and block until Kafka confirms it; raise DeliveryError otherwise."""
        future = self.submit(record, value, key, topic=topic)
        try:
            return future.result(timeout=self._timeout_s)
        except TimeoutError:
            raise DeliveryInDoubt(f"{record}: no delivery report within {self._timeout_s:.0f}s") from None

    async def send_async(self, record: str, value: Mapping[str, Any], key: str | bytes | None = None,
                         *, topic: Topic | str | None = None) -> DeliveryReport:
        """Produce one event and await Kafka's confirmation without blocking the event loop."""
        future = self.submit(record, value, key, topic=topic)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self._timeout_s)
        except TimeoutError:
            raise DeliveryInDoubt(f"{record}: no delivery report within {self._timeout_s:.0f}s") from None

    def send_many(self, events: Iterable[tuple[str, Mapping[str, Any]]],
                  *, topic: Topic | str | None = None) -> list[DeliveryReport]:
        """Produce ``(record, value)`` pairs pipelined, then wait for every confirmation."""
        futures = [self.submit(record, value, topic=topic) for record, value in events]
        deadline = time.monotonic() + self._timeout_s
        try:
            return [f.result(timeout=max(deadline - time.monotonic(), 0.001)) for f in futures]
        except TimeoutError:
            raise DeliveryInDoubt(f"no delivery report within {self._timeout_s:.0f}s") from None

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait for queued records; return how many are still undelivered."""
        if self._closed.is_set():
            return 0
        return self._producer.flush(timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        """Flush, stop the poll thread and destroy the librdkafka client.

        Without the destroy, the client's threads outlive the object's use until garbage
        collection and keep reconnecting to brokers that are gone (``Connection refused`` noise).
        """
        if self._closed.is_set():
            return
        remaining = self._producer.flush(timeout_s)
        self._closed.set()
        self._poller.join()
        if remaining:
            self._producer.purge()  # nothing left to wait for: the destroy must not
        self._producer.close()
        if remaining:
            raise DeliveryError(f"{remaining} records undelivered at close")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
