"""streams.splice: spliced records are byte-identical to fastavro's encoding of the same values."""

from __future__ import annotations

import io

import fastavro
import pytest

from streams.schemas import default_schemas
from streams.splice import Spliced, avro_long


def fastavro_bytes(parsed, value) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, value)
    return out.getvalue()


def test_avro_long_matches_fastavro() -> None:
    for n in (0, 1, -1, 63, 64, -65, 2**31, -(2**53), 2**62):
        assert avro_long(n) == fastavro_bytes("long", n)


BASE = {"event_id": "x", "occurred_at": 1_733_000_000_123, "actor_id": "fanout", "schema_version": 1,
        "event_type": "TimelineUpdate", "reader_id": "x", "post_id": 2**52 + 7, "author_id": "a-ü",
        "op": "REMOVE", "source_topic": "posts.v1", "source_partition": 3, "source_offset": 10**9}


def test_timeline_updates_spliced_equal_fastavro() -> None:
    schemas = default_schemas()
    parsed = schemas.parsed[schemas.fullname("TimelineUpdate")]
    base = BASE
    t = Spliced(parsed, base, ["event_id", "reader_id"])
    for eid, reader in (("e1", "r"), ("0b9d6c52-1f5e-4c1b-9a55-3c7f0c1f2d10", "ü" * 70), ("", "")):
        assert t.encode({"event_id": eid, "reader_id": reader}) == \
            fastavro_bytes(parsed, {**base, "event_id": eid, "reader_id": reader})


def test_a_field_that_is_not_a_string_is_refused() -> None:
    schemas = default_schemas()
    parsed = schemas.parsed[schemas.fullname("TimelineUpdate")]
    with pytest.raises((ValueError, TypeError)):
        Spliced(parsed, BASE, ["source_partition"])  # an int field: a string does not fit


class Captured:
    """A librdkafka producer stand-in that keeps what it is asked to produce."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    def produce(self, topic: str, value: bytes, key: bytes, **_: object) -> None:
        self.sent.append((topic, value, key))

    def poll(self, _timeout: float) -> int:
        return 0


def test_bulk_emit_produces_updates_that_decode_to_each_write() -> None:
    from support.serde import as_millis, mock_serde

    from core.feed import TimelineWrite
    from core.settings import Settings
    from topologies.fanout.runtime import BulkEmit
    from topologies.faust_runtime import SourceRecord

    serde = mock_serde()
    emit = BulkEmit(Settings())
    emit._producer = Captured()
    rec = SourceRecord("posts.v1", 2, 41, None, "PostEdited", {"post_id": 9, "occurred_at": 5}, 5)
    writes = [TimelineWrite("a", 9, "a", "EDIT"), TimelineWrite("r1", 9, "a", "EDIT"),
              TimelineWrite("r2", 9, "a", "REMOVE"), TimelineWrite("r3", 9, "a", "EDIT")]
    assert emit.produce(serde, "timeline-updates.v1", [(rec, writes)], "fanout") == []
    got = [(key, serde.decode(value)) for _, value, key in emit._producer.sent]
    assert [k for k, _ in got] == [b"a", b"r1", b"r2", b"r3"]
    values = [as_millis(d.value) for _, d in got]
    assert all(d.name == "TimelineUpdate" for _, d in got)
    assert [(v["reader_id"], v["op"]) for v in values] == [(w.reader_id, w.op) for w in writes]
    assert all((v["post_id"], v["author_id"], v["source_topic"], v["source_partition"], v["source_offset"])
               == (9, "a", "posts.v1", 2, 41) for v in values)
    assert len({v["event_id"] for v in values}) == len(writes)  # one event id per update
