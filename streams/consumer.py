"""Consumer helper: decode, call a handler, commit only after it returned, dead-letter poison records."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from core.events import dead_letter
from core.settings import Settings, get_settings
from streams.catalog import DEAD_LETTERS, Topic
from streams.errors import DecodeError, PoisonRecord, StreamsError
from streams.producer import EventProducer
from streams.serde import Serde

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumedEvent:
    """A decoded record and where it came from."""

    name: str
    value: dict[str, Any]
    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp_ms: int


Handler = Callable[[ConsumedEvent], None]


@dataclass
class ConsumerStats:
    """Counts since the consumer started."""

    handled: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    commits: int = 0
    last_offsets: dict[tuple[str, int], int] = field(default_factory=dict)


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """Return the librdkafka config every feedstream consumer uses (manual commits, from earliest)."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        **overrides,
    }


class EventConsumer:
    """Run ``handler`` on every event of ``topics``; handler errors propagate, poison records are dead-lettered.

    Offsets are committed after the handler returned for every record of a batch (and, when a
    handler raises, for the records before it). A record that cannot be decoded, or for which the
    handler raises :class:`PoisonRecord` (if ``dead_letter_poison``), is written to
    ``dead-letters.v1`` with its original bytes and source offset, and consumption carries on.
    """

    def __init__(
        self,
        topics: Iterable[Topic | str],
        group_id: str,
        handler: Handler,
        *,
        settings: Settings | None = None,
        serde: Serde | None = None,
        dead_letters: EventProducer | None = None,
        dead_letter_poison: bool = True,
        skip_tombstones: bool = True,
        batch_size: int = 500,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.group_id = group_id
        self.handler = handler
        self.serde = serde or Serde(self.settings.registry_url)
        self.dead_letter_poison = dead_letter_poison
        self.skip_tombstones = skip_tombstones
        self.batch_size = batch_size
        self.stats = ConsumerStats()
        self._dead_letters = dead_letters
        self._owns_dead_letters = dead_letters is None
        self._consumer = Consumer(consumer_config(self.settings, group_id, **dict(config or {})))
        self.assigned: list[TopicPartition] = []
        self._consumer.subscribe([t.name if isinstance(t, Topic) else t for t in topics],
                                 on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned = list(partitions)

    def _on_revoke(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        self.assigned = []

    def poll(self, timeout_s: float = 1.0) -> int:
        """Consume one batch, handle it, commit it; return how many records were consumed."""
        messages = self._consumer.consume(self.batch_size, timeout_s)
        done: dict[tuple[str, int], int] = {}
        try:
            for msg in messages:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(err)
                self._process(msg)
                done[(str(msg.topic()), int(msg.partition() or 0))] = int(msg.offset() or 0) + 1
        finally:
            self._commit(done)
        return len(messages)

    def _process(self, msg: Message) -> None:
        raw = msg.value()
        if raw is None and self.skip_tombstones:
            self.stats.skipped += 1
            return
        try:
            name, value = self.serde.decode(raw)
        except DecodeError as exc:
            self._dead_letter(msg, exc)
            return
        event = ConsumedEvent(name, value, str(msg.topic()), int(msg.partition() or 0),
                              int(msg.offset() or 0), msg.key(), msg.timestamp()[1])
        try:
            self.handler(event)
        except PoisonRecord as exc:
            if not self.dead_letter_poison:
                raise
            self._dead_letter(msg, exc)
            return
        self.stats.handled += 1

    def _dead_letter(self, msg: Message, exc: StreamsError) -> None:
        if self._dead_letters is None:
            self._dead_letters = EventProducer(self.settings, serde=self.serde)
        letter = dead_letter(group=self.group_id, topic=msg.topic(), partition=msg.partition(),
                             offset=msg.offset(), key=msg.key(), value=msg.value(), error=str(exc),
                             error_type=type(exc).__name__)
        log.warning("dead-lettering %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), exc)
        self._dead_letters.send("DeadLetter", letter, topic=DEAD_LETTERS)  # raises if not delivered
        self.stats.dead_lettered += 1

    def _commit(self, done: dict[tuple[str, int], int]) -> None:
        if not done:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in done.items()]
        self._consumer.commit(offsets=offsets, asynchronous=False)
        self.stats.commits += 1
        self.stats.last_offsets.update(done)

    def run(
        self,
        *,
        stop: threading.Event | None = None,
        max_records: int | None = None,
        idle_timeout_s: float | None = None,
        poll_timeout_s: float = 0.5,
    ) -> int:
        """Consume until ``stop`` is set, ``max_records`` were consumed, or nothing came for ``idle_timeout_s``.

        The idle clock only runs once the group has assigned partitions to this consumer.
        """
        total, idle_since = 0, time.monotonic()
        while not (stop and stop.is_set()) and (max_records is None or total < max_records):
            count = self.poll(poll_timeout_s)
            total += count
            if count or not self.assigned:
                idle_since = time.monotonic()
            elif idle_timeout_s is not None and time.monotonic() - idle_since >= idle_timeout_s:
                break
        return total

    def close(self) -> None:
        """Leave the group and close the dead-letter producer this consumer created."""
        self._consumer.close()
        if self._owns_dead_letters and self._dead_letters is not None:
            self._dead_letters.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
