"""Kafka-backed :class:`Storage`: a single-partition compacted topic (``_schemas`` by default)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from streams.registry.errors import StorageError
from streams.registry.records import StoredRecord

log = logging.getLogger(__name__)


class KafkaStorage:
    """Registry log in a compacted topic; every append waits for ``acks=all`` delivery."""

    name = "kafka"

    def __init__(
        self,
        bootstrap: str,
        topic: str = "_schemas",
        replication: int | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.replication = replication
        self.timeout_s = timeout_s
        self._admin: AdminClient | None = None
        self._producer: Producer | None = None

    def start(self) -> None:
        """Create the topic if missing, check it is compacted with one partition, open a producer."""
        self._admin = AdminClient({"bootstrap.servers": self.bootstrap})
        try:
            self._ensure_topic(self._admin)
        except KafkaException as exc:
            raise StorageError(f"Cannot prepare topic {self.topic!r}: {exc}") from exc
        self._producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 0,
                "message.timeout.ms": int(self.timeout_s * 1000),
            }
        )

    def _ensure_topic(self, admin: AdminClient) -> None:
        meta = admin.list_topics(timeout=self.timeout_s)
        if self.topic not in meta.topics:
            replication = self.replication or min(3, len(meta.brokers))
            new = NewTopic(
                self.topic,
                num_partitions=1,
                replication_factor=replication,
                config={"cleanup.policy": "compact"},
            )
            try:
                admin.create_topics([new])[self.topic].result(self.timeout_s)
                log.info("created topic %s (replication %d)", self.topic, replication)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
            meta = admin.list_topics(topic=self.topic, timeout=self.timeout_s)
            deadline = time.monotonic() + self.timeout_s
            while not meta.topics[self.topic].partitions and time.monotonic() < deadline:
                time.sleep(0.1)  # a just-created topic's partitions reach the metadata a moment later
                meta = admin.list_topics(topic=self.topic, timeout=self.timeout_s)
        partitions = len(meta.topics[self.topic].partitions)
        if partitions != 1:
            raise StorageError(f"Topic {self.topic!r} has {partitions} partitions; it must have 1")
        resource = ConfigResource(ResourceType.TOPIC, self.topic)
        configs = admin.describe_configs([resource])[resource].result(self.timeout_s)
        policy = configs["cleanup.policy"].value
        if policy != "compact":
            raise StorageError(
                f"Topic {self.topic!r} has cleanup.policy={policy}; it must be 'compact' "
                "or registry state would be lost to retention"
            )

    def replay(self) -> Iterator[StoredRecord]:
        """Read the topic from the beginning up to its end offset at call time."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"registry-replay-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                "isolation.level": "read_committed",
            }
        )
        try:
            tp = TopicPartition(self.topic, 0)
            low, high = consumer.get_watermark_offsets(tp, timeout=self.timeout_s)
            if high <= low:
                return
            consumer.assign([TopicPartition(self.topic, 0, low)])
            deadline = time.monotonic() + max(self.timeout_s, 60.0)
            position = low
            while position < high:
                if time.monotonic() > deadline:
                    raise StorageError(f"Timed out replaying {self.topic!r} at offset {position}/{high}")
                msg: Message | None = consumer.poll(1.0)
                if msg is None:
                    # Compaction can leave gaps; trust the consumer's position when it is known.
                    position = max(position, consumer.position([tp])[0].offset)
                    continue
                if msg.error():
                    raise StorageError(f"Error replaying {self.topic!r}: {msg.error()}")
                offset = msg.offset()
                position = (position if offset is None else offset) + 1
                yield StoredRecord(key=msg.key() or b"", value=msg.value())
        except KafkaException as exc:
            raise StorageError(f"Error replaying {self.topic!r}: {exc}") from exc
        finally:
            consumer.close()

    def append(self, records: Sequence[StoredRecord]) -> None:
        """Produce ``records`` and block until each is acknowledged by all in-sync replicas."""
        producer = self._require_producer()
        errors: list[str] = []
        pending = len(records)

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            nonlocal pending
            pending -= 1
            if err is not None:
                errors.append(str(err))

        try:
            for record in records:
                producer.produce(self.topic, key=record.key, value=record.value, partition=0,
                                 on_delivery=on_delivery)
            remaining = producer.flush(self.timeout_s + 5.0)
        except (KafkaException, BufferError) as exc:
            raise StorageError(f"Cannot write to {self.topic!r}: {exc}") from exc
        if errors or remaining or pending:
            detail = "; ".join(errors) or f"{pending} record(s) not confirmed in time"
            raise StorageError(f"Cannot write to {self.topic!r}: {detail}")

    def ping(self) -> None:
        """Fetch the topic's metadata, raising if the cluster does not answer."""
        admin = self._admin or AdminClient({"bootstrap.servers": self.bootstrap})
        try:
            meta = admin.list_topics(topic=self.topic, timeout=5)
        except KafkaException as exc:
            raise StorageError(f"Kafka unreachable at {self.bootstrap}: {exc}") from exc
        topic = meta.topics.get(self.topic)
        if topic is None or topic.error is not None:
            raise StorageError(f"Topic {self.topic!r} unavailable: {topic.error if topic else 'missing'}")

    def close(self) -> None:
        """Flush and close the producer; drop the admin client."""
        if self._producer is not None:
            self._producer.flush(self.timeout_s)
            self._producer.close()
            self._producer = None
        self._admin = None

    def _require_producer(self) -> Producer:
        if self._producer is None:
            raise StorageError("Kafka storage is not started")
        return self._producer
