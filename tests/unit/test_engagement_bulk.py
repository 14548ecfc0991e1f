"""Issue 16 helpers without engines: the bulk emit of derived records and the cached row factory."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support.serde import mock_serde

from core.rows import Counts
from core.settings import get_settings
from stores.cassandra import cached_named_tuple_factory
from streams.errors import DeliveryError
from streams.serde import Serde
from topologies.engagement.app import notification_value
from topologies.engagement.logic import Notify
from topologies.engagement.runtime import counts_value
from topologies.fanout.runtime import BulkEmit


class FakeProducer:
    """Records what is produced; ``flush`` reports ``fail`` as a delivery error of every record."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, bytes, bytes, Any]] = []
        self.fail = fail
        self.callbacks: list[Any] = []

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Any, headers: Any) -> None:
        self.sent.append((topic, value, key, headers))
        self.callbacks.append(on_delivery)

    def poll(self, _timeout: float) -> int:
        return 0

    def flush(self, _timeout: float) -> int:
        if self.fail:
            class Err:
                def str(self) -> str:
                    return "broker down"
            for cb in self.callbacks:
                cb(Err(), None)
        return 0


def offline_serde() -> Serde:
    """A serde on the in-process mock registry."""
    return mock_serde()


def test_produce_records_encodes_what_the_serde_decodes() -> None:
    serde = offline_serde()
    bulk = BulkEmit(get_settings())
    bulk._producer = FakeProducer()
    note = Notify("n1", "bob", "ann", "LIKE", 1_750_000_000_000, 7, None)
    counts = [(7, counts_value(7, Counts(likes=2, reactions={"WOW": 1}), None, "e1"))]
    errors: list[str] = []
    bulk.produce_records(serde, "engagement-counts.v1", "EngagementCount",
                         ((str(p).encode(), v) for p, v in counts), [], errors)
    bulk.produce_records(serde, "notifications.v1", "Notification",
                         [(b"bob", notification_value(note))], [], errors)
    sent = bulk._producer.sent
    assert [(t, k) for t, _, k, _ in sent] == [("engagement-counts.v1", b"7"), ("notifications.v1", b"bob")]
    name, value = serde.decode(sent[0][1])
    assert name == "EngagementCount" and value["likes"] == 2 and value["reactions"] == {"WOW": 1}
    name, value = serde.decode(sent[1][1])
    assert name == "Notification" and value["recipient_id"] == "bob" and value["notification_id"] == "n1"
    assert sent[1][1] == serde.encode("Notification", notification_value(note), "notifications.v1")
    asyncio.run(bulk.flushed(errors, "records"))  # nothing failed: returns


def test_a_failed_delivery_raises_at_the_flush() -> None:
    serde = offline_serde()
    bulk = BulkEmit(get_settings())
    bulk._producer = FakeProducer(fail=True)
    errors: list[str] = []
    note = Notify("n2", "bob", "ann", "LIKE", 1_750_000_000_000, 7, None)
    bulk.produce_records(serde, "notifications.v1", "Notification",
                         [(b"bob", notification_value(note))], [], errors)
    with pytest.raises(DeliveryError, match="broker down"):
        asyncio.run(bulk.flushed(errors, "records"))


def test_cached_row_factory_reuses_one_class_and_cleans_names() -> None:
    a = cached_named_tuple_factory(["[applied]", "rev"], [(True, 1), (False, 2)])
    b = cached_named_tuple_factory(["[applied]", "rev"], [(True, 3)])
    assert type(a[0]) is type(b[0])
    assert [(x.applied, x.rev) for x in a + b] == [(True, 1), (False, 2), (True, 3)]
    assert cached_named_tuple_factory(["rev"], [(4,)])[0].rev == 4
