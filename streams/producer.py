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

from core.settings import Settings, get_settings
from streams.catalog import Topic, get_topic, topic_for
from streams.errors import DeliveryError
from streams.serde import Serde

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
        target = topic_for(record) if topic is None else topic if isinstance(topic, Topic) else get_topic(topic)
        fullname = self.serde.schemas.fullname(record)
        payload = self.serde.encode(fullname, value, target.name)
        if key is None:  # the key is a property of the event type, even on a non-catalog topic
            home = target if fullname in target.value_schemas else topic_for(fullname)
            key = home.key_for(fullname, value)
        elif isinstance(key, str):
            key = key.encode()
        future: Future[DeliveryReport] = Future()
        short = fullname.rpartition(".")[2]

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                future.set_exception(DeliveryError(f"{short} to {target.name} not delivered: {err.str()}"))
            else:
                future.set_result(DeliveryReport(
                    target.name, msg.partition() or 0, msg.offset() or 0, msg.key(), short, msg.timestamp()[1]))

        headers = event_type_headers(fullname)
        while True:
            try:
                self._producer.produce(target.name, payload, key, on_delivery=on_delivery, headers=headers)
                return future
            except BufferError:  # local queue full: let the poll thread drain delivery reports
                time.sleep(0.005)

    def send(self, record: str, value: Mapping[str, Any], key: str | bytes | None = None,
             *, topic: Topic | str | None = None) -> DeliveryReport:
        """Produce one event and block until Kafka confirms it; raise DeliveryError otherwise."""
        future = self.submit(record, value, key, topic=topic)
        try:
            return future.result(timeout=self._timeout_s)
        except TimeoutError:
            raise DeliveryError(f"{record}: no delivery report within {self._timeout_s:.0f}s") from None

    async def send_async(self, record: str, value: Mapping[str, Any], key: str | bytes | None = None,
                         *, topic: Topic | str | None = None) -> DeliveryReport:
        """Produce one event and await Kafka's confirmation without blocking the event loop."""
        future = self.submit(record, value, key, topic=topic)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self._timeout_s)
        except TimeoutError:
            raise DeliveryError(f"{record}: no delivery report within {self._timeout_s:.0f}s") from None

    def send_many(self, events: Iterable[tuple[str, Mapping[str, Any]]],
                  *, topic: Topic | str | None = None) -> list[DeliveryReport]:
        """Produce ``(record, value)`` pairs pipelined, then wait for every confirmation."""
        futures = [self.submit(record, value, topic=topic) for record, value in events]
        deadline = time.monotonic() + self._timeout_s
        try:
            return [f.result(timeout=max(deadline - time.monotonic(), 0.001)) for f in futures]
        except TimeoutError:
            raise DeliveryError(f"no delivery report within {self._timeout_s:.0f}s") from None

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
