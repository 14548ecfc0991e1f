"""Shared Faust glue: build an app from settings, and run decoded agents with a dead-letter topic.

Usage in ``topologies/<name>/app.py``::

    def create_app(settings, *, app_id=None):
        app = create_faust_app(settings, "fanout", app_id=app_id)
        serde = make_serde(settings)
        source = catalog_topic(app, POSTS, settings)

        async def handle(rec: SourceRecord) -> None:     # side effects; awaited before the ack
            ...                                          # raise PoisonRecord to dead-letter it

        register_agent(app, source, handle, serde=serde, name="fanout-posts")
        return app

Semantics of :func:`register_agent`:

- Records are read as raw bytes and decoded with :class:`streams.serde.Serde` (Confluent Avro).
- A record that does not decode (``DecodeError``), fails validation, or whose handler raises
  :class:`streams.errors.PoisonRecord` is sent to ``dead-letters.v1`` (with its source topic,
  partition, offset and original bytes), the send is awaited, and processing carries on.
- Any other exception is logged and crashes the worker (``app.crash``): nothing is swallowed,
  and the offset of the failed record is never committed, so a restart re-reads it.
- Faust acks an event only after the handler returned, so offsets commit after side effects.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import faust

from feedstream.settings import Settings
from streams.catalog import DEAD_LETTERS, Topic
from streams.errors import DecodeError, PoisonRecord, SchemaValidationError
from streams.events import envelope, now_ms
from streams.serde import Serde

log = logging.getLogger(__name__)

Handler = Callable[["SourceRecord"], Awaitable[None]]
POISON = (DecodeError, PoisonRecord, SchemaValidationError)


@dataclass(frozen=True)
class SourceRecord:
    """A decoded Kafka record with its coordinates (short record name, e.g. ``PostCreated``)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    name: str
    value: dict[str, Any]
    timestamp_ms: int


def lz4_block_decompress(src: bytes, out: bytearray) -> None:
    """Append the decompressed LZ4 block ``src`` to ``out`` (matches may reach into earlier output)."""
    i, n = 0, len(src)
    while i < n:
        token = src[i]
        i += 1
        length = token >> 4
        if length == 15:
            while True:
                b = src[i]
                i += 1
                length += b
                if b != 255:
                    break
        out += src[i:i + length]
        i += length
        if i >= n:
            break
        offset = src[i] | (src[i + 1] << 8)
        i += 2
        if offset == 0:
            raise ValueError("lz4: zero match offset")
        length = token & 15
        if length == 15:
            while True:
                b = src[i]
                i += 1
                length += b
                if b != 255:
                    break
        length += 4
        start = len(out) - offset
        if start < 0:
            raise ValueError("lz4: match offset before start of output")
        if offset >= length:
            out += out[start:start + length]
        else:
            for k in range(length):
                out.append(out[start + k])


def lz4_frame_decompress(data: bytes) -> bytes:
    """Decompress an LZ4 frame (what Kafka v2 record batches carry) in pure Python."""
    if data[:4] != b"\x04\x22\x4d\x18":
        raise ValueError("lz4: bad frame magic")
    flg = data[4]
    i = 6 + (8 if flg & 0x08 else 0) + (4 if flg & 0x01 else 0) + 1
    block_checksum = bool(flg & 0x10)
    out = bytearray()
    while True:
        size = int.from_bytes(data[i:i + 4], "little")
        i += 4
        if size == 0:
            break
        raw, size = bool(size & 0x80000000), size & 0x7FFFFFFF
        block = data[i:i + size]
        i += size + (4 if block_checksum else 0)
        if raw:
            out += block
        else:
            lz4_block_decompress(block, out)
    return bytes(out)


def install_lz4_fallback() -> bool:
    """Let aiokafka read lz4 batches without cramjam (pure-Python decoder); True if installed."""
    import importlib

    from aiokafka import codec

    if codec.has_lz4():
        return False
    for mod in ("aiokafka.codec", "aiokafka.record.default_records", "aiokafka.record.legacy_records",
                "aiokafka.record._crecords.default_records", "aiokafka.record._crecords.legacy_records"):
        try:
            m = importlib.import_module(mod)
        except ImportError:
            continue
        if hasattr(m, "has_lz4"):
            m.has_lz4 = lambda: True
        if hasattr(m, "lz4_decode"):
            m.lz4_decode = lz4_frame_decompress
    return True


def create_faust_app(settings: Settings, name: str, *, app_id: str | None = None,
                     broker: str | None = None, **overrides: Any) -> faust.App:
    """A faust.App for ``name`` (group id ``app_id`` or ``feedstream-<name>``) with our defaults."""
    install_lz4_fallback()  # producers may use lz4; aiokafka needs cramjam to read it
    app_id = app_id or f"feedstream-{name}"
    datadir = settings.state_dir / "faust" / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    conf: dict[str, Any] = dict(
        broker=broker or f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        autodiscover=False,
        web_enabled=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        producer_acks=-1,
        broker_commit_interval=1.0,
        datadir=str(datadir),
        table_cleanup_interval=3600.0,
    )
    conf.update(overrides)
    return faust.App(app_id, **conf)


def catalog_topic(app: faust.App, topic: Topic, settings: Settings) -> faust.TopicT:
    """A raw-bytes faust topic for a catalog entry (partitions from the catalog or settings)."""
    resolved = topic.resolved(settings)
    return app.topic(resolved.name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", partitions=resolved.partitions,
                     replicas=resolved.replication)


def make_serde(settings: Settings) -> Serde:
    """A Serde on the configured schema registry."""
    return Serde(settings.registry_url)


def dead_letter_value(*, group: str, topic: str, partition: int, offset: int, key: bytes | None,
                      value: bytes | None, exc: BaseException) -> dict[str, Any]:
    """The DeadLetter event for a record that could not be processed."""
    return {**envelope(group), "source_topic": topic, "source_partition": partition,
            "source_offset": offset, "key": key, "value": value, "error": str(exc)[:2000],
            "error_type": type(exc).__name__, "failed_at": now_ms(), "consumer_group": group}


async def send_dead_letter(app: faust.App, serde: Serde, dlq: faust.TopicT, group: str,
                           message: Any, exc: BaseException) -> None:
    """Encode and send a DeadLetter for ``message`` (a faust Message), awaiting delivery."""
    dl = dead_letter_value(group=group, topic=message.topic, partition=message.partition,
                           offset=message.offset, key=message.key, value=message.value, exc=exc)
    data = serde.encode("DeadLetter", dl, DEAD_LETTERS.name)
    fut = await dlq.send(key=message.topic.encode(), value=data)
    await fut
    log.warning("dead-lettered %s[%d]@%d: %s: %s", message.topic, message.partition,
                message.offset, type(exc).__name__, exc)


def register_agent(app: faust.App, source: faust.TopicT, handler: Handler, *, serde: Serde,
                   name: str, settings: Settings | None = None, concurrency: int = 1) -> Any:
    """Register an agent on ``source`` that decodes, calls ``handler`` and dead-letters poison."""
    dlq = app.topic(DEAD_LETTERS.name, key_type=bytes, value_type=bytes, key_serializer="raw",
                    value_serializer="raw")
    group = app.conf.id

    async def process(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            try:
                decoded = serde.decode(msg.value)
                rec = SourceRecord(msg.topic, msg.partition, msg.offset, msg.key, decoded.name,
                                   decoded.value, int(msg.timestamp * 1000))
                await handler(rec)
            except POISON as exc:
                await send_dead_letter(app, serde, dlq, group, msg, exc)
            except Exception as exc:
                log.exception("%s crashed on %s[%d]@%d", name, msg.topic, msg.partition, msg.offset)
                await app.crash(exc)
                raise

    process.__name__ = name.replace("-", "_")
    return app.agent(source, name=name, concurrency=concurrency)(process)


def run_worker(app: faust.App, loglevel: str = "info") -> None:
    """Run ``app`` as a blocking worker in this process until interrupted or crashed."""
    from faust.worker import Worker

    worker = Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
